"""The other demo patients: fictional people on the trajectory classes of design §3.

The mix is fixed (so every demo has recovering patients, persistent ones, a few recent red
flags, a few who stopped logging, ...); the numbers within each story come from a random stream
per (seed, patient), and every date is placed relative to the demo's "today" (`as_of`).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass

from rehab.demo.common import (
    add_log,
    ar1,
    days_between,
    logging_mask,
    odi_measure,
    pain,
    psfs_measure,
    stream,
)
from rehab.demo.plan import (
    CLINICIAN,
    PATIENT,
    EventPlan,
    FindingPlan,
    PatientPlan,
    PhasePlan,
    PrescriptionPlan,
    ProgramPlan,
    chain_programs,
)
from rehab.domain.vocabulary import (
    EventType,
    FallLocation,
    FindingKind,
    ImagingModality,
    LandedOn,
    NeurodynamicTest,
    RedFlag,
    Side,
    TestResult,
)
from rehab.services.library import EXERCISES

DOMAIN = "demo.rehab.invalid"

FIRST_NAMES = (
    "Amara", "Bruno", "Carla", "Devan", "Eamon", "Fatima", "Gideon", "Hana", "Idris",
    "Johanna", "Kofi", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Samir",
    "Tove", "Ulla", "Viktor", "Wren", "Yusuf", "Zara", "Anneke", "Bastian", "Celine", "Dario",
    "Esme", "Farid", "Greta", "Hugo", "Ines", "Jonah", "Keiko", "Luca", "Mirela", "Nils",
    "Olga", "Pavel", "Rhea", "Soren", "Talia", "Uma", "Vera", "Willem", "Yara",
)  # fmt: skip
SURNAMES = (
    "Achterberg", "Banerjee", "Castellanos", "Dunmore", "Eriksen", "Fairweather", "Galloway",
    "Hartigan", "Ibarra", "Jankowski", "Kessler", "Lindqvist", "Moreau", "Nakamura",
    "Oyelaran", "Petrakis", "Quilliam", "Rasmussen", "Sandoval", "Thorne", "Underhill", "Varga",
    "Whitlock", "Yilmaz", "Zielinski", "Ashdown", "Brennan", "Coutinho", "Elsworth", "Ferreira",
    "Gunnarsson", "Holloway", "Iversen", "Juarez", "Kowalczyk", "Lachance", "Mwangi", "Novak",
    "Okonkwo", "Pellegrini", "Rautio", "Szabo", "Tanaka", "Vasquez", "Wexford", "Aldana",
    "Bjork", "Carver",
)  # fmt: skip


@dataclass(frozen=True)
class Condition:
    summary: str  # {side}, {level}, {root} filled in
    leg: bool  # radicular: leg pain leads
    surgery: str | None = None  # procedure, if the story starts after an operation
    both_legs: bool = False
    template: str = "back"


CONDITIONS: dict[str, Condition] = {
    "radiculopathy": Condition(
        "{Side} {root} radiculopathy ({level} disc protrusion), conservative care",
        leg=True,
        template="leg",
    ),
    "microdiscectomy": Condition(
        "{Side} {root} radiculopathy; {level} microdiscectomy",
        leg=True,
        surgery="Microdiscectomy",
        template="postop",
    ),
    "decompression": Condition(
        "{Side} {root} symptoms; {level} decompression",
        leg=True,
        surgery="Decompression (laminotomy)",
        template="postop",
    ),
    "fusion": Condition(
        "Low back pain after {level} instrumented fusion",
        leg=False,
        surgery="Instrumented fusion",
        template="postop",
    ),
    "stenosis": Condition(
        "Lumbar spinal stenosis ({level}), neurogenic claudication in both legs",
        leg=True,
        both_legs=True,
        template="stenosis",
    ),
    "nslbp": Condition("Persistent non-specific low back pain", leg=False),
    "disc": Condition("Discogenic low back pain ({level})", leg=False),
    "spondylolisthesis": Condition("Grade 1 {level} spondylolisthesis", leg=False),
}

LEVELS = (("L4-L5", "L5"), ("L5-S1", "S1"), ("L3-L4", "L4"))
ROOT_LOCATION = {"L5": "outer shin", "S1": "calf and sole", "L4": "front of thigh"}


@dataclass(frozen=True)
class Scenario:
    trajectory: str
    condition: str
    tags: frozenset[str] = frozenset()
    red_flags: tuple[RedFlag, ...] = ()


def _s(trajectory: str, condition: str, *tags: str, flags: tuple[RedFlag, ...] = ()) -> Scenario:
    return Scenario(trajectory, condition, frozenset(tags), flags)


NUMB, WEAK = RedFlag.NEW_NUMBNESS, RedFlag.NEW_WEAKNESS
BLADDER, SADDLE = RedFlag.BLADDER_BOWEL_CHANGE, RedFlag.SADDLE_NUMBNESS

# 44 stories. Tags: short/long (follow-up length), stopped (no log for 4–12 days), discharged
# (program ended, logs stopped), red_flag (in the last three days), old_red_flag, adherence_drop
# (recent), fall_flare / fall_quiet (recent fall with / without a pain flare), old_fall,
# old_injury (flare long ago, settled), regression (recent rise, no event), gap (holiday).
SCENARIOS: tuple[Scenario, ...] = (
    _s("persistent_mild", "nslbp"),
    _s("persistent_mild", "disc", "gap"),
    _s("persistent_mild", "radiculopathy", "fall_quiet"),
    _s("persistent_mild", "microdiscectomy", "long"),
    _s("persistent_mild", "nslbp", "adherence_drop"),
    _s("persistent_mild", "spondylolisthesis", "short"),
    _s("persistent_mild", "disc", "stopped"),
    _s("persistent_mild", "nslbp", "old_fall"),
    _s("persistent_mild", "fusion", "long"),
    _s("persistent_mild", "radiculopathy", "old_red_flag"),
    _s("recovering", "radiculopathy"),
    _s("recovering", "radiculopathy", "short"),
    _s("recovering", "microdiscectomy", "fall_flare"),
    _s("recovering", "decompression", "gap"),
    _s("recovering", "disc", "discharged"),
    _s("recovering", "radiculopathy", "discharged", "long"),
    _s("recovering", "nslbp", "short"),
    _s("recovering", "microdiscectomy", "red_flag", flags=(NUMB, WEAK)),
    _s("recovering", "fusion", "short"),
    _s("recovering", "radiculopathy", "long", "old_injury"),
    _s("persistent_moderate", "stenosis"),
    _s("persistent_moderate", "nslbp", "adherence_drop"),
    _s("persistent_moderate", "radiculopathy", "regression"),
    _s("persistent_moderate", "fusion", "stopped"),
    _s("persistent_moderate", "disc", "old_injury"),
    _s("persistent_moderate", "spondylolisthesis", "long"),
    _s("persistent_severe", "stenosis", "red_flag", flags=(SADDLE, BLADDER)),
    _s("persistent_severe", "radiculopathy"),
    _s("persistent_severe", "nslbp", "stopped"),
    _s("fluctuating", "nslbp"),
    _s("fluctuating", "disc", "gap", "long"),
    _s("fluctuating", "radiculopathy", "fall_flare"),
    _s("fluctuating", "spondylolisthesis", "adherence_drop"),
    _s("fluctuating", "stenosis", "old_fall"),
    _s("fluctuating", "nslbp", "short"),
    _s("fluctuating", "radiculopathy", "regression"),
    _s("relapsing", "radiculopathy"),
    _s("relapsing", "microdiscectomy", "long"),
    _s("relapsing", "disc"),
    _s("relapsing", "decompression", "red_flag", flags=(NUMB,)),
    _s("relapsing", "nslbp", "stopped", "adherence_drop"),
    _s("relapsing", "radiculopathy", "fall_flare", "long"),
    _s("recovering", "spondylolisthesis", "discharged"),
    _s("persistent_mild", "decompression", "fall_quiet", "long"),
)

# --- the library, by the kind of program --------------------------------------------------

_DEFAULTS = {e.slug: e for e in EXERCISES}

TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # (always, pick some of)
    "leg": (
        ("sciatic-nerve-slider", "walking"),
        ("abdominal-bracing", "pelvic-tilt", "knee-to-chest", "prone-press-up", "glute-bridge"),
    ),
    "back": (
        ("walking",),
        (
            "pelvic-tilt",
            "cat-camel",
            "abdominal-bracing",
            "knee-to-chest",
            "lumbar-rotation",
            "childs-pose",
            "glute-bridge",
            "bird-dog",
        ),
    ),
    "postop": (
        ("walking", "abdominal-bracing"),
        ("pelvic-tilt", "glute-bridge", "sciatic-nerve-slider", "clamshell", "sit-to-stand"),
    ),
    "stenosis": (
        ("walking", "knee-to-chest"),
        ("childs-pose", "cat-camel", "sit-to-stand", "abdominal-bracing", "clamshell"),
    ),
    "advanced": (
        ("walking",),
        (
            "bird-dog",
            "dead-bug",
            "glute-bridge",
            "side-plank-knees",
            "front-plank",
            "wall-squat",
            "sit-to-stand",
            "hip-hinge",
            "pallof-press",
            "step-up",
            "single-leg-balance",
            "clamshell",
            "hamstring-stretch",
            "hip-flexor-stretch",
            "piriformis-stretch",
            "prone-hip-extension",
            "thoracic-extension",
        ),
    ),
}
FIRST_TITLES = {
    "leg": ("Nerve mobility and walking", "Settling the nerve root"),
    "back": ("Lumbar stabilisation", "Graded activity for low back pain", "Core and mobility"),
    "postop": ("Post-operative rehabilitation", "Return after spinal surgery"),
    "stenosis": ("Flexion-based program for stenosis", "Walking tolerance program"),
}
SECOND_TITLES = ("Progression: strength and function", "Return to activity", "Strength phase")
FIRST_PHASES = (("Settle symptoms", "Calm things down; walk every day."), ("Build capacity", ""))
SECOND_PHASES = (("Build strength", ""), ("Return to activity", "Back to the usual week."))


def _prescriptions(rng: random.Random, template: str) -> list[PrescriptionPlan]:
    always, optional = TEMPLATES[template]
    chosen = list(always) + rng.sample(optional, rng.randint(3, min(5, len(optional))))
    out = []
    for slug in chosen:
        item = _DEFAULTS[slug]
        if slug == "walking":
            minutes = rng.choice((15, 20, 25, 30, 40))
            out.append(PrescriptionPlan(slug, 1, minutes, notes="Minutes."))
        else:
            out.append(PrescriptionPlan(slug, item.sets, item.reps, item.hold_seconds))
    return out


# --- events -------------------------------------------------------------------------------

FALLS: tuple[tuple[FallLocation, int | None, int | None, LandedOn, str, str], ...] = (
    (FallLocation.STAIRS, 3, None, LandedOn.BUTTOCKS, "buttocks", "Missed the last steps at home."),
    (FallLocation.ICE_OR_WET, None, None, LandedOn.BACK, "low back", "Slipped on ice outside."),
    (FallLocation.LEVEL_GROUND, None, None, LandedOn.HIP, "hip", "Tripped on a kerb."),
    (FallLocation.FROM_HEIGHT, None, 100, LandedOn.FEET, "low back", "Fell off a ladder."),
    (FallLocation.ICE_OR_WET, None, None, LandedOn.SIDE, "hip", "Slipped in the shower."),
    (FallLocation.STAIRS, 5, None, LandedOn.BACK, "low back", "Slipped on wet stairs at work."),
    (FallLocation.LEVEL_GROUND, None, None, LandedOn.HANDS, "wrists", "Tripped over the dog."),
)  # fmt: skip
INJURIES = (
    "Lifted a heavy suitcase and felt a twinge in the low back.",
    "Rear-ended at low speed in the car.",
    "Twisted while gardening.",
)
MEDICATIONS = (
    "Started pregabalin for the leg pain.",
    "Stopped naproxen.",
    "Started amitriptyline at night.",
    "Reduced codeine to as needed.",
)
OTHERS = ("Started a new desk job.", "Moved house.", "Bought a sit-stand desk.")
ACTIVITIES = (
    "Walking the dog",
    "Sitting at work",
    "Gardening",
    "Playing with the grandchildren",
    "Cycling",
    "Driving for an hour",
    "Lifting shopping",
    "Swimming",
)
NOTES = (
    "Busy day, did the exercises in the evening.",
    "Felt good after the walk.",
    "Stiff in the morning, eased with movement.",
    "Slept badly.",
    "Long car journey today.",
    "Did the exercises before work.",
)
BAD_DAY_NOTES = (
    "Bad night, pain kept me awake.",
    "Flare-up after lifting at work.",
    "Could not do much today.",
)
RED_FLAG_NOTES = {
    (NUMB, WEAK): "Foot feels numb and it slaps when I walk since this morning.",
    (SADDLE, BLADDER): "Numb around the groin and trouble passing urine today.",
    (NUMB,): "New numbness down the outside of the foot.",
}


def _names(seed: int, count: int) -> list[tuple[str, str]]:
    rng = stream(seed, "names")
    firsts, lasts = list(FIRST_NAMES), list(SURNAMES)
    rng.shuffle(firsts)
    rng.shuffle(lasts)
    return list(zip(firsts, lasts, strict=False))[:count]


# --- pain -----------------------------------------------------------------------------------


def _class_level(rng: random.Random, trajectory: str, n: int) -> list[float]:
    """The underlying pain level of the main metric over the days, by trajectory class."""
    if trajectory == "persistent_mild":
        return [rng.uniform(1.0, 2.8)] * n
    if trajectory == "persistent_moderate":
        return [rng.uniform(3.5, 5.5)] * n
    if trajectory == "persistent_severe":
        return [rng.uniform(6.0, 7.3)] * n
    if trajectory == "fluctuating":
        base, amp = rng.uniform(3.0, 4.5), rng.uniform(1.2, 2.2)
        period, phase = rng.uniform(18.0, 45.0), rng.uniform(0.0, 2 * math.pi)
        return [base + amp * math.sin(2 * math.pi * t / period + phase) for t in range(n)]
    start, floor = rng.uniform(5.5, 8.0), rng.uniform(0.6, 2.0)
    tau = rng.uniform(0.12, 0.3) * n
    level = [floor + (start - floor) * math.exp(-t / tau) for t in range(n)]
    if trajectory == "relapsing":
        onset = int(n * rng.uniform(0.6, 0.8))
        size, rise = rng.uniform(2.5, 3.5), rng.randint(8, 18)
        for t in range(onset, n):
            level[t] += size * min(1.0, (t - onset + 1) / rise)
    return level


def _flare(n: int, day: int, size: float, half_life: float, delay: int = 0) -> list[float]:
    return [
        0.0 if t < day + delay else size * 0.5 ** ((t - day - delay) / half_life) for t in range(n)
    ]


def _ramp(n: int, onset: int, size: float, rise: int) -> list[float]:
    return [0.0 if t < onset else size * min(1.0, (t - onset + 1) / rise) for t in range(n)]


def _benign_flares(rng: random.Random, n: int) -> list[float]:
    """One-day (sometimes two-day) bad days that are not regressions (Suri 2011)."""
    out = [0.0] * n
    for _ in range(round(n / 30 * rng.uniform(0.3, 0.9))):
        day, size = rng.randrange(n), rng.uniform(2.0, 3.5)
        for t in range(day, min(n, day + (2 if rng.random() < 0.25 else 1))):
            out[t] = max(out[t], size)
    return out


# --- one patient ------------------------------------------------------------------------------


def cohort_patient(
    seed: int, index: int, scenario: Scenario, as_of: dt.date, name: tuple[str, str]
) -> PatientPlan:
    rng = stream(seed, "patient", index)
    tags = scenario.tags
    condition = CONDITIONS[scenario.condition]
    level_name, root = rng.choice(LEVELS)
    side = Side.BOTH if condition.both_legs else rng.choice((Side.LEFT, Side.RIGHT))

    length = (
        rng.randint(60, 120)
        if "short" in tags
        else rng.randint(360, 500)
        if "long" in tags
        else rng.randint(120, 360)
    )
    last = as_of
    if "stopped" in tags:
        last = as_of - dt.timedelta(days=rng.randint(4, 12))
    elif "discharged" in tags:
        last = as_of - dt.timedelta(days=rng.randint(20, 120))
    start = last - dt.timedelta(days=length - 1)
    days = days_between(start, last)
    n = len(days)

    first, surname = name
    plan = PatientPlan(
        key=f"p{index + 1:02d}",
        display_name=f"{first} {surname}",
        email=f"{first}.{surname}@{DOMAIN}".lower(),
        year_of_birth=rng.randint(1948, 1998),
        condition_summary=condition.summary.format(
            Side=side.value.capitalize(), level=level_name, root=root
        ),
        team=0 if index % 4 else 1,
        registered_on=start - dt.timedelta(days=rng.randint(1, 10)),
        trajectory=scenario.trajectory,
    )

    # Programs: a first one, often a progression later; a discharged patient's last one ends.
    plan.programs.append(
        ProgramPlan(
            rng.choice(FIRST_TITLES[condition.template]),
            start,
            None,
            _phases(FIRST_PHASES, start, rng.randint(28, 42), last),
            _prescriptions(rng, condition.template),
        )
    )
    if n >= 150 and rng.random() < 0.65:
        second = start + dt.timedelta(days=int(n * rng.uniform(0.35, 0.6)))
        plan.programs.append(
            ProgramPlan(
                rng.choice(SECOND_TITLES),
                second,
                None,
                _phases(SECOND_PHASES, second, rng.randint(42, 70), last),
                _prescriptions(rng, "advanced"),
            )
        )
    chain_programs(plan.programs)
    if "discharged" in tags:
        plan.programs[-1].end = last

    # Pain: the class level of the main metric; the other metric follows at a lower level.
    main = _class_level(rng, scenario.trajectory, n)
    excess = [0.0] * n
    events: list[EventPlan] = []
    findings: list[FindingPlan] = []
    red_flag_day: int | None = None
    forced: set[int] = {0}

    if condition.surgery:
        before = rng.randint(14, 60) if rng.random() < 0.7 else rng.randint(200, 900)
        events.append(
            EventPlan(
                start - dt.timedelta(days=before),
                EventType.SURGERY,
                CLINICIAN,
                f"Procedure: {condition.surgery.lower()}. Level: {level_name}. Side: {side.value}.",
                side=side,
                body_region="lumbar spine",
            )
        )
    if condition.leg and rng.random() < 0.6:
        when = start - dt.timedelta(days=rng.randint(3, 30))
        text = (
            f"Lumbar MRI: {level_name} narrowing of the spinal canal, worst centrally."
            if condition.both_legs
            else f"Lumbar MRI: {level_name} disc protrusion contacting the {side.value} "
            f"{root} nerve root."
        )
        events.append(EventPlan(when, EventType.IMAGING, CLINICIAN, text, body_region="lumbar"))
        findings.append(
            FindingPlan(
                when,
                FindingKind.IMAGING,
                text.removeprefix("Lumbar MRI: "),
                modality=ImagingModality.MRI,
                side=None if condition.both_legs else side,
                body_region="lumbar spine",
            )
        )

    def fall_event(day: int) -> EventPlan:
        location, steps, height, landed, region, text = rng.choice(FALLS)
        return EventPlan(
            days[day],
            EventType.FALL,
            PATIENT,
            text,
            side=rng.choice((Side.LEFT, Side.RIGHT)),
            body_region=region,
            fall_location=location,
            fall_steps=steps,
            fall_height_cm=height,
            fall_landed_on=landed,
        )

    if "fall_flare" in tags:
        day = n - 1 - rng.randint(4, 10)
        events.append(fall_event(day))
        flare = _flare(n, day, rng.uniform(3.0, 4.5), rng.uniform(8.0, 14.0), rng.randint(0, 1))
        excess = [a + b for a, b in zip(excess, flare, strict=True)]
        forced.update(range(day, n))
        review = day + rng.randint(2, 4)
        if review < n:
            findings += _post_fall_review(days[review], side, condition.leg)
    if "fall_quiet" in tags:
        day = n - 1 - rng.randint(3, 8)
        events.append(fall_event(day))
        forced.add(day)
    for tag in ("old_fall", "old_injury"):
        if tag in tags:
            day = int(n * rng.uniform(0.3, 0.6))
            if tag == "old_fall":
                events.append(fall_event(day))
            else:
                events.append(EventPlan(days[day], EventType.INJURY, PATIENT, rng.choice(INJURIES)))
            flare = _flare(n, day, rng.uniform(3.0, 4.5), rng.uniform(4.0, 9.0))
            excess = [a + b for a, b in zip(excess, flare, strict=True)]
            forced.update(range(day, min(n, day + 5)))
    if "regression" in tags:
        onset = n - 1 - rng.randint(10, 16)
        ramp = _ramp(n, onset, rng.uniform(3.0, 4.0), rng.randint(4, 7))
        excess = [a + b for a, b in zip(excess, ramp, strict=True)]
        forced.update(range(onset, n))
    if "red_flag" in tags:
        red_flag_day = n - 1 - rng.randint(0, 2)
        ramp = _ramp(n, red_flag_day - 4, 2.5, 4)
        excess = [a + b for a, b in zip(excess, ramp, strict=True)]
        forced.update(range(red_flag_day - 4, n))
    old_flag_day = None
    if "old_red_flag" in tags:
        old_flag_day = int(n * rng.uniform(0.3, 0.6))
        forced.add(old_flag_day)
        findings.append(
            FindingPlan(
                days[min(n - 1, old_flag_day + 1)],
                FindingKind.OBSERVATION,
                "Seen after reporting numbness: leg sensation, strength and reflexes normal; "
                "the numbness had gone. Advised what to watch for.",
                body_region="legs",
            )
        )
    gap: range = range(0)
    if "gap" in tags:
        begin = int(n * rng.uniform(0.3, 0.7))
        gap = range(begin, min(n - 3, begin + rng.randint(8, 18)))
        events.append(
            EventPlan(
                days[begin],
                EventType.TRAVEL,
                PATIENT,
                f"Away for {len(gap)} days; no exercise equipment.",
            )
        )
    if rng.random() < 0.35:
        events.append(
            EventPlan(
                days[rng.randrange(n)],
                EventType.MEDICATION_CHANGE,
                PATIENT,
                rng.choice(MEDICATIONS),
            )
        )
    if rng.random() < 0.15:
        events.append(
            EventPlan(days[rng.randrange(n)], EventType.OTHER, PATIENT, rng.choice(OTHERS))
        )

    main = [m + e for m, e in zip(main, excess, strict=True)]
    benign = _benign_flares(rng, n)
    main_noise = ar1(rng, n, rng.uniform(0.6, 1.0), rng.uniform(0.3, 0.6))
    other_noise = ar1(rng, n, rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.6))
    other_scale, other_offset = rng.uniform(0.4, 0.7), rng.uniform(0.3, 1.2)
    no_leg_level = rng.uniform(0.0, 0.6)

    # Adherence: a usual share of exercises done, a recent drop for some.
    usual = rng.uniform(0.7, 0.98)
    drop_from = n - 1 - rng.randint(12, 20) if "adherence_drop" in tags else n
    drop_factor = rng.uniform(0.1, 0.35)

    # Logging: bursty gaps, always on the days the story needs; the regular loggers have
    # logged the last two days (today's log is there for some).
    logged = logging_mask(rng, n, rng.uniform(0.75, 0.97), rng.uniform(1.3, 2.2))
    if last == as_of:
        forced.update({n - 2, n - 3})
        if rng.random() >= 0.6:
            logged[n - 1] = False
            forced.discard(n - 1)
    if "stopped" in tags or "discharged" in tags:
        forced.add(n - 1)
    location = (
        None
        if not condition.leg
        else rng.choice(
            (ROOT_LOCATION[root], None) if not condition.both_legs else ("both calves", None)
        )
    )

    for t, log_day in enumerate(days):
        if t in gap or not (logged[t] or t in forced):
            continue
        primary = pain(main[t] + benign[t] + main_noise[t])
        secondary = pain(other_offset + other_scale * (main[t] + benign[t]) + other_noise[t])
        if condition.leg:
            leg, back = primary, secondary
        else:
            back = primary
            leg = pain(no_leg_level + 0.5 * excess[t] + 0.4 * other_noise[t])
        p_done = usual * (drop_factor if t >= drop_from else 1.0)
        p_done = max(0.0, p_done - 0.05 * max(0, max(leg, back) - 6))
        flags: tuple[RedFlag, ...] = ()
        note = ""
        if t == red_flag_day:
            flags = scenario.red_flags
            note = RED_FLAG_NOTES.get(flags, "New numbness.")
        elif t == old_flag_day:
            flags, note = (NUMB,), "Pins and needles in the toes this morning, gone by lunch."
        elif rng.random() < 0.07:
            note = rng.choice(BAD_DAY_NOTES if primary >= main[t] + 2.5 else NOTES)
        add_log(
            plan,
            rng,
            log_day,
            back_pain=back,
            leg_pain=leg,
            side=side,
            p_done=p_done,
            location=location if leg >= 3 else None,
            red_flags=flags,
            note=note,
        )

    findings += _first_assessment(rng, start, side, condition, main[0])
    if scenario.trajectory == "recovering" and condition.leg and n > 120:
        findings.append(
            FindingPlan(
                days[n // 2],
                FindingKind.NEURODYNAMIC_TEST,
                "No leg symptoms.",
                test_name=NeurodynamicTest.STRAIGHT_LEG_RAISE,
                side=Side.LEFT if side is Side.BOTH else side,
                result=TestResult.NEGATIVE,
            )
        )
    plan.events = sorted(events, key=lambda e: e.day)
    plan.findings = sorted(findings, key=lambda f: f.day)
    activities = rng.sample(ACTIVITIES, 3)
    day_index = 0
    while day_index < n:
        around = main[max(0, day_index - 7) : day_index + 8]
        level = sum(around) / len(around)
        plan.outcomes.append(odi_measure(days[day_index], 6 + 6.5 * level + rng.gauss(0, 3), rng))
        plan.outcomes.append(
            psfs_measure(
                days[day_index],
                {a: round(10 - level + rng.gauss(0, 1)) for a in activities},
            )
        )
        day_index += rng.randint(80, 100)
    plan.truncate(as_of)
    return plan


def _phases(
    names: tuple[tuple[str, str], ...], start: dt.date, second_after: int, last: dt.date
) -> list[PhasePlan]:
    phases = [PhasePlan(names[0][0], start, names[0][1])]
    second = start + dt.timedelta(days=second_after)
    if second <= last:
        phases.append(PhasePlan(names[1][0], second, names[1][1]))
    return phases


def _first_assessment(
    rng: random.Random, day: dt.date, side: Side, condition: Condition, level: float
) -> list[FindingPlan]:
    if rng.random() >= 0.75:
        return []
    tested = Side.LEFT if side is Side.BOTH else side
    out = []
    if condition.leg and not condition.both_legs:
        result = TestResult.POSITIVE if level >= 4 else TestResult.EQUIVOCAL
        out.append(
            FindingPlan(
                day,
                FindingKind.NEURODYNAMIC_TEST,
                f"Leg pain reproduced at {rng.choice((35, 40, 50, 60))} degrees."
                if result is TestResult.POSITIVE
                else "Tightness only, no clear leg pain.",
                test_name=NeurodynamicTest.STRAIGHT_LEG_RAISE,
                side=tested,
                result=result,
            )
        )
        out.append(
            FindingPlan(
                day,
                FindingKind.NEURODYNAMIC_TEST,
                "",
                test_name=NeurodynamicTest.SLUMP,
                side=tested,
                result=result,
            )
        )
    else:
        out.append(
            FindingPlan(
                day,
                FindingKind.NEURODYNAMIC_TEST,
                "",
                test_name=NeurodynamicTest.STRAIGHT_LEG_RAISE,
                side=tested,
                result=TestResult.NEGATIVE,
            )
        )
    out.append(
        FindingPlan(
            day,
            FindingKind.OBSERVATION,
            rng.choice(
                (
                    "Guarded lumbar movement; flexion limited to mid-shin.",
                    "Walks 10 minutes before needing to sit (claudication)."
                    if condition.both_legs
                    else "Flexion and extension both uncomfortable; good hip mobility.",
                    "Reduced lumbar extension; tender over the lower lumbar segments.",
                )
            ),
            body_region="lumbar spine",
        )
    )
    return out


def _post_fall_review(day: dt.date, side: Side, leg: bool) -> list[FindingPlan]:
    tested = Side.LEFT if side is Side.BOTH else side
    return [
        FindingPlan(
            day,
            FindingKind.NEURODYNAMIC_TEST,
            "No neural reproduction.",
            test_name=NeurodynamicTest.STRAIGHT_LEG_RAISE,
            side=tested,
            result=TestResult.NEGATIVE,
        ),
        FindingPlan(
            day,
            FindingKind.NEURODYNAMIC_TEST,
            "",
            test_name=NeurodynamicTest.SLUMP,
            side=tested,
            result=TestResult.EQUIVOCAL if leg else TestResult.NEGATIVE,
        ),
        FindingPlan(
            day,
            FindingKind.OBSERVATION,
            "Seen after the fall: bruising where they landed, no deformity; neurological "
            "examination of the legs normal.",
        ),
    ]


def cohort(seed: int, as_of: dt.date) -> list[PatientPlan]:
    names = _names(seed, len(SCENARIOS))
    return [
        cohort_patient(seed, index, scenario, as_of, names[index])
        for index, scenario in enumerate(SCENARIOS)
    ]
