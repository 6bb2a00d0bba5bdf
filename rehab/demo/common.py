"""Helpers shared by the seed case and the cohort: random streams, noise, logs, questionnaires."""

from __future__ import annotations

import datetime as dt
import math
import random

from rehab.demo.plan import (
    EntryPlan,
    LogPlan,
    OutcomePlan,
    PatientPlan,
    adherence_of,
)
from rehab.domain.questionnaires import ODI_MAX_PER_SECTION, ODI_SECTIONS, score_odi, score_psfs
from rehab.domain.vocabulary import Instrument, RedFlag, Side


def stream(seed: int, *names: object) -> random.Random:
    """An independent random stream per (seed, names): one patient's draws never depend on
    how many other patients there are. String seeds hash with SHA-512: stable everywhere."""
    return random.Random(":".join(["rehab-demo", str(seed), *map(str, names)]))


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def ar1(rng: random.Random, n: int, sd: float, phi: float) -> list[float]:
    """Autocorrelated day-to-day noise (design §3: within-person SD ≈ 1–1.6, autocorrelated)."""
    out = [rng.gauss(0.0, sd)]
    shock = sd * math.sqrt(1.0 - phi * phi)
    for _ in range(n - 1):
        out.append(phi * out[-1] + rng.gauss(0.0, shock))
    return out


def pain(value: float, low: int = 0, high: int = 10) -> int:
    return max(low, min(high, round(value)))


def logging_mask(rng: random.Random, n: int, rate: float, mean_gap_days: float = 1.6) -> list[bool]:
    """Bursty logging: a two-state chain whose long-run share of logged days is `rate`."""
    resume = 1.0 / mean_gap_days
    stop = min(0.9, resume * (1.0 - rate) / rate)
    logged, state = [], True
    for _ in range(n):
        logged.append(state)
        draw = rng.random()
        state = draw >= stop if state else draw < resume
    if logged:
        logged[0] = True
    return logged


def entries_for(
    rng: random.Random, plan: PatientPlan, program_index: int, p_done: float
) -> list[EntryPlan]:
    """What the patient ticked on the phone form: every prescription, done or not; a done
    exercise sometimes with fewer sets than prescribed."""
    program = plan.programs[program_index]
    entries = []
    for position, prescription in enumerate(program.prescriptions):
        if rng.random() < p_done:
            sets = prescription.sets
            if sets > 1 and rng.random() < 0.12:
                sets = rng.randint(1, sets - 1)
            entries.append(EntryPlan(position, True, sets, prescription.reps))
        else:
            entries.append(EntryPlan(position, False, 0, 0))
    return entries


def add_log(
    plan: PatientPlan,
    rng: random.Random,
    day: dt.date,
    *,
    back_pain: int,
    leg_pain: int,
    side: Side | None,
    p_done: float,
    location: str | None = None,
    red_flags: tuple[RedFlag, ...] = (),
    note: str = "",
) -> LogPlan | None:
    """Append the day's log (None if no program is in effect: the service would refuse it)."""
    program_index = plan.program_index_on(day)
    if program_index is None:
        return None
    if rng.random() < 0.02 + 0.1 * (1.0 - p_done):
        entries = entries_for(rng, plan, program_index, 0.0)  # a day off the exercises
    else:
        entries = entries_for(rng, plan, program_index, p_done)
    log = LogPlan(
        day=day,
        program=program_index,
        back_pain=back_pain,
        leg_pain=leg_pain,
        leg_side=side if leg_pain > 0 else None,
        entries=entries,
        pain_location=location if leg_pain > 0 or back_pain > 0 else None,
        red_flags=red_flags,
        note=note,
    )
    log.adherence = adherence_of(plan, log)
    plan.logs.append(log)
    return log


# --- questionnaires -----------------------------------------------------------------------


def odi_answers(target: float, rng: random.Random) -> list[int | None]:
    """Ten ODI section scores (0–5) whose index is as close to `target` % as possible."""
    total = max(0, min(ODI_SECTIONS * ODI_MAX_PER_SECTION, round(target / 2.0)))
    sections = [0] * ODI_SECTIONS
    order = list(range(ODI_SECTIONS))
    rng.shuffle(order)
    # Pain intensity (0), sitting (4) and standing (5) carry a back patient's score first.
    order.sort(key=lambda i: 0 if i in (0, 4, 5) else 1)
    while total > 0:
        for i in order:
            if total == 0:
                break
            if sections[i] < ODI_MAX_PER_SECTION:
                sections[i] += 1
                total -= 1
    return list(sections)


def odi_measure(day: dt.date, target: float, rng: random.Random) -> OutcomePlan:
    answers = odi_answers(target, rng)
    return OutcomePlan(day, Instrument.ODI, score_odi(answers), {"sections": answers})


def psfs_measure(day: dt.date, ratings: dict[str, int]) -> OutcomePlan:
    clipped = {name: max(0, min(10, r)) for name, r in ratings.items()}
    activities = [{"activity": name, "rating": r} for name, r in clipped.items()]
    return OutcomePlan(
        day, Instrument.PSFS, score_psfs(list(clipped.values())), {"activities": activities}
    )
