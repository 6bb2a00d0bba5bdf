"""Clinician-pinned pain baselines (design §2 Baseline; issue 3): pin one, or return a metric
to the automatic baseline.

What a pin means is the detector's rule (`rehab.domain.baseline.pin_periods`, which the
detector, the chart and the caseload all apply): a pin is in force from its `effective_from`
until the metric's next row (of two rows of one date, the later wins); a row with no level
returns the metric to the automatic baseline from its date. So the rows of a metric are a
sequence of periods, and this module keeps them that way:

- pinning from a date D replaces the metric's rows from D on (the clinician's latest statement
  must be the one in force); earlier rows keep governing the days before D, so past decisions
  stay as they were made;
- returning to automatic (from today) adds a row with no level, after replacing any row dated
  today: the pin keeps governing the days it was in force, so the next evaluation does not
  replay months of history as if it had never been pinned (which stored alerts those months
  never had).

A replaced row is not deleted: it stays, marked replaced (who, when), for the baseline's
history and the FHIR export's retraction; only current rows count (`PinnedBaseline.current`).
Who pinned and un-pinned what, and when, is also in the audit trail (`baseline.pin`,
`baseline.unpin`).

Each write is one access check and one audit row (care team only, clinician writes), takes
the patient's evaluation lock first (two pins at once, or a pin and an evaluation, take turns:
each reads the rows the other committed), and asks for the patient to be re-evaluated once it
commits.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from rehab.db.models import Alert, PinnedBaseline, Program, SessionLog, User, utcnow
from rehab.domain.baseline import pin_in_force, pin_periods
from rehab.domain.config import DEFAULT_CONFIG
from rehab.domain.explain import metric_label
from rehab.domain.series import PAIN_METRICS
from rehab.services import audit, evaluation, trajectory
from rehab.services.access import require_patient
from rehab.services.actors import Actor
from rehab.services.commands import InvalidInput
from rehab.services.dispatch import EVALUATE_PATIENT_TASK, enqueue_after_commit
from rehab.services.time import clinic_today

PIN_ACTION = "baseline.pin"
UNPIN_ACTION = "baseline.unpin"
# The metrics a clinician pins here: the pain ratings (0–10) the pain detector reads.
PINNABLE_METRICS: tuple[str, ...] = tuple(sorted(PAIN_METRICS, key=lambda m: m != "leg_pain"))
LEVEL_MIN, LEVEL_MAX = 0.0, 10.0
# A pinned spread replaces the detector's estimate of the day-to-day noise: never below the
# floor the detector puts under its own estimate (a smaller one would make every 1-point day a
# "change"), and no wider than half the scale.
SPREAD_MIN, SPREAD_MAX = DEFAULT_CONFIG.noise_floor, 5.0


@dataclass(frozen=True)
class PinInput:
    """A pin as the clinician gives it."""

    metric: str
    level: float
    effective_from: dt.date
    spread: float | None = None


@dataclass(frozen=True)
class PinView:
    """A stored pin, with the clinician's name."""

    id: int
    level: float | None  # None: back to the automatic baseline from `effective_from`
    spread: float | None
    effective_from: dt.date
    pinned_by: str
    pinned_at: dt.datetime
    # A pin replaced by one from an earlier date (it counts nowhere now): when, by whom.
    replaced_at: dt.datetime | None = None
    replaced_by: str = ""


@dataclass(frozen=True)
class BaselineStatus:
    """How one metric's baseline is obtained today: the current pins on record (oldest
    first) and the one in force, if any; else automatic. `replaced`: the pins replaced by one
    from an earlier date, for the history (latest replaced first)."""

    metric: str
    pins: tuple[PinView, ...]
    today: dt.date
    replaced: tuple[PinView, ...] = ()

    @property
    def label(self) -> str:
        return metric_label(self.metric)

    @property
    def in_force(self) -> PinView | None:
        """The pin the detector applies to a log today (the detector's rule, `pin_periods`)."""
        periods = pin_periods(
            [(p.effective_from.toordinal(), p.level, p.spread) for p in self.pins]
        )
        found = pin_in_force(periods, self.today.toordinal())
        return None if found is None else self.pins[found.position]

    @property
    def is_pinned(self) -> bool:
        return self.in_force is not None

    @property
    def periods(self) -> list[tuple[PinView, dt.date | None]]:
        """Each row on record with the day its period ends (None: still in force), latest
        first, for the record's history."""
        if not self.pins:  # (only replaced ones, if any: the history lists those apart)
            return []
        ends = [p.effective_from for p in self.pins[1:]] + [None]
        return list(reversed(list(zip(self.pins, ends, strict=True))))

    @property
    def method(self) -> str:
        """How the baseline is computed, in words (design §2: always shown with its method)."""
        pin = self.in_force
        if pin is not None:
            spread = (
                f", day-to-day spread {pin.spread:g}"
                if pin.spread is not None
                else ", day-to-day spread estimated from the logs"
            )
            return (
                f"Pinned by {pin.pinned_by} from {pin.effective_from.isoformat()}"
                f" at {pin.level:g}/10{spread}"
            )
        if self.pins:
            back = self.pins[-1]
            return (
                f"{automatic_method()}; back to automatic from {back.effective_from.isoformat()}"
                f" ({back.pinned_by})"
            )
        return automatic_method()


def automatic_method() -> str:
    config = DEFAULT_CONFIG
    return (
        f"Automatic: robust mean of the logs of the previous {config.baseline_window_days} days"
        f" (the last {config.baseline_recent_days} days once pain has fallen by"
        f" {config.follow_down_min_drop:g} point or more), from {config.baseline_min_logs} logs on"
    )


def pin_baseline(session: Session, actor: Actor, patient_id: int, data: PinInput) -> PinnedBaseline:
    """Pin `data.metric` at `data.level` from `data.effective_from` on (replacing the pins of
    that metric from that date on). Raises `NotFound` (audited as denied) off the care team,
    `InvalidInput` naming the field for a value refused."""
    require_patient(
        session, actor, patient_id, PIN_ACTION, audit_target(data.metric), clinician_only=True
    )
    evaluation.lock_patients(session, [patient_id])
    _check_metric(data.metric)
    level = _number("level", data.level, LEVEL_MIN, LEVEL_MAX)
    spread = None if data.spread is None else _number("spread", data.spread, SPREAD_MIN, SPREAD_MAX)
    today = clinic_today()
    if data.effective_from > today:
        raise InvalidInput("effective_from", f"is in the future (today is {today.isoformat()})")
    earliest = earliest_pin_date(session, patient_id, today)
    if data.effective_from < earliest:
        raise InvalidInput(
            "effective_from",
            f"is before the patient's first log or program ({earliest.isoformat()})",
        )
    assert actor.user_id is not None
    pin = PinnedBaseline(
        patient_id=patient_id,
        metric=data.metric,
        level=level,
        spread=spread,
        effective_from=data.effective_from,
        pinned_by_user_id=actor.user_id,
    )
    _replace_from(session, actor, patient_id, data.metric, data.effective_from, pin)
    enqueue_after_commit(session, EVALUATE_PATIENT_TASK, patient_id)
    session.flush()
    audit.commit(session)
    return pin


def unpin_baseline(session: Session, actor: Actor, patient_id: int, metric: str) -> bool:
    """Return `metric` to the automatic baseline from today: the pin in force ends today (the
    days it governed keep it). False: it was automatic already, and nothing changes (still
    audited). `NotFound` off the care team."""
    require_patient(
        session, actor, patient_id, UNPIN_ACTION, audit_target(metric), clinician_only=True
    )
    evaluation.lock_patients(session, [patient_id])
    _check_metric(metric)
    today = clinic_today()
    status = baseline_statuses(session, patient_id, today)[metric]
    if status.in_force is None:
        audit.commit(session)
        return False
    assert actor.user_id is not None
    # A pin from today governed no day yet: it goes; an earlier one ends here (a row with
    # no level).
    ends_earlier = any(p.effective_from < today for p in status.pins)
    automatic = PinnedBaseline(
        patient_id=patient_id, metric=metric, effective_from=today, pinned_by_user_id=actor.user_id
    )
    _replace_from(session, actor, patient_id, metric, today, automatic if ends_earlier else None)
    enqueue_after_commit(session, EVALUATE_PATIENT_TASK, patient_id)
    session.flush()
    audit.commit(session)
    return True


def _replace_from(
    session: Session,
    actor: Actor,
    patient_id: int,
    metric: str,
    day: dt.date,
    row: PinnedBaseline | None,
) -> None:
    """The metric's current rows from `day` on give way to `row` (None: to nothing): they
    stay, marked replaced by the actor now (the baseline's history; an export retracts them)."""
    session.execute(
        sa.update(PinnedBaseline)
        .where(
            PinnedBaseline.patient_id == patient_id,
            PinnedBaseline.metric == metric,
            PinnedBaseline.effective_from >= day,
            PinnedBaseline.current(),
        )
        .values(replaced_at=utcnow(), replaced_by_user_id=actor.user_id)
        .execution_options(synchronize_session=False)
    )
    if row is not None:
        session.add(row)


def baseline_statuses(
    session: Session, patient_id: int, today: dt.date | None = None
) -> dict[str, BaselineStatus]:
    """Each pinnable metric's status, for a page whose access was already checked and
    audited (the patient page, the pin form): no audit row of its own."""
    today = today or clinic_today()
    replacer = aliased(User)
    rows = session.execute(
        sa.select(
            PinnedBaseline.id,
            PinnedBaseline.metric,
            PinnedBaseline.level,
            PinnedBaseline.spread,
            PinnedBaseline.effective_from,
            User.display_name,
            PinnedBaseline.created_at,
            PinnedBaseline.replaced_at,
            replacer.display_name,
        )
        .join(User, User.id == PinnedBaseline.pinned_by_user_id)
        .outerjoin(replacer, replacer.id == PinnedBaseline.replaced_by_user_id)
        .where(
            PinnedBaseline.patient_id == patient_id,
            PinnedBaseline.metric.in_(PINNABLE_METRICS),
        )
        # The detector's order: by date, and of two pins of one date the later row wins.
        .order_by(PinnedBaseline.effective_from, PinnedBaseline.id)
    ).all()
    pins: dict[str, list[PinView]] = {metric: [] for metric in PINNABLE_METRICS}
    replaced: dict[str, list[PinView]] = {metric: [] for metric in PINNABLE_METRICS}
    for pin_id, metric, level, spread, effective_from, name, created_at, gone, by in rows:
        view = PinView(pin_id, level, spread, effective_from, name, created_at, gone, by or "")
        # Only current pins count (`PinnedBaseline.current`); the replaced are history.
        (pins if gone is None else replaced)[metric].append(view)
    return {
        metric: BaselineStatus(
            metric,
            tuple(items),
            today,
            tuple(sorted(replaced[metric], key=lambda p: (p.replaced_at, p.id), reverse=True)),
        )
        for metric, items in pins.items()
    }


def earliest_pin_date(session: Session, patient_id: int, today: dt.date | None = None) -> dt.date:
    """The first day a pin may take effect: the patient's first log or program start,
    whichever is earlier (today when there is neither: a pin for the logs to come)."""
    first_log = session.scalar(
        sa.select(sa.func.min(SessionLog.log_date)).where(SessionLog.patient_id == patient_id)
    )
    first_program = session.scalar(
        sa.select(sa.func.min(Program.start_date)).where(Program.patient_id == patient_id)
    )
    known = [d for d in (first_log, first_program) if d is not None]
    return min(known) if known else (today or clinic_today())


def audit_target(metric: str) -> str:
    # Audit targets are "kind:id" without spaces; an unknown metric is not echoed.
    return f"baseline:{metric if metric in PINNABLE_METRICS else 'unknown'}"


def _check_metric(metric: str) -> None:
    if metric not in PINNABLE_METRICS:
        raise InvalidInput("metric", f"must be one of {', '.join(PINNABLE_METRICS)}")


def _number(field: str, value: float, low: float, high: float) -> float:
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidInput(field, f"must be a number from {low:g} to {high:g}")
    return number


def current_levels(session: Session, patient_id: int, today: dt.date) -> dict[str, float | None]:
    """Each pinnable metric's baseline today as the patient page's chart shows it (the
    detector's, with the pins, held at an open pain alert's baseline); None: too few logs.
    For a page whose access was already checked and audited."""
    logs = trajectory.daily_logs(session, patient_id, today)
    alerts = list(
        session.scalars(
            sa.select(Alert).where(
                Alert.patient_id == patient_id,
                Alert.kind == "pain_regression",
                Alert.metric.in_(PINNABLE_METRICS),
            )
        )
    )
    bands = trajectory.baseline_bands(session, patient_id, logs, alerts, today, today)
    return {metric: bands[metric].current() for metric in PINNABLE_METRICS}
