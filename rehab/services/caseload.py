"""A clinician's caseload: their patients with the numbers a morning triage needs, sorted by what
needs attention first.

A constant number of queries whatever the size of the caseload: one SELECT for the patients
(last log through an index seek per patient, current program and phase, open alerts counted by
one grouped subquery), one for the logs of the last 63 days of the patients listed, one for
pinned baselines; then one packed computation of the detector's baseline for all of them
(`rehab.charts.baseline`). One audit row per patient listed, since the page shows each one's
pain scores.

Attention order ("attention", the default): open urgent alerts, open routine alerts, the worst
change against baseline (mean of the last 7 days' logs minus the baseline they are judged
against: the open alert's while one is open, else the detector's), the longest silence.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from rehab.charts.baseline import Pin, SeriesQuery, levels_before
from rehab.charts.sparkline import Sparkline, sparkline
from rehab.db.models import (
    Alert,
    AlertStatus,
    CareTeam,
    CareTeamMember,
    Patient,
    PinnedBaseline,
    Program,
    ProgramPhase,
    SessionLog,
    User,
)
from rehab.domain.config import DEFAULT_CONFIG
from rehab.services import audit
from rehab.services.access import NotFound, visible_patient_ids
from rehab.services.actors import Actor
from rehab.services.time import clinic_today

ADHERENCE_DAYS = 7
TREND_DAYS = 30
CHANGE_DAYS = 7
# Remote therapeutic monitoring: data on at least 16 days of each 30-day period (counted from
# the first program's start) is the billing threshold.
RTM_PERIOD_DAYS = 30
RTM_THRESHOLD = 16
SILENT_DAYS = 3
LOW_ADHERENCE = 0.5
PAIN_METRICS = ("leg_pain", "back_pain")
# Logs read per patient: the trend and the RTM period, and the history the detector's baseline
# of the last week's logs is read from (its 56-day noise window before them).
LOOKBACK_DAYS = CHANGE_DAYS + max(
    DEFAULT_CONFIG.noise_window_days, DEFAULT_CONFIG.baseline_window_days, TREND_DAYS
)

SORTS: dict[str, str] = {
    "attention": "Needs attention",
    "name": "Name",
    "last_log": "Longest without a log",
    "change": "Largest rise against baseline",
    "leg_pain": "Highest leg pain",
    "back_pain": "Highest back pain",
    "adherence": "Lowest adherence",
    "rtm": "Fewest RTM days",
}
FILTERS: dict[str, str] = {
    "all": "All patients",
    "alerts": "Open alerts",
    "urgent": "Open urgent alerts",
    "silent": f"No log for {SILENT_DAYS} days or more",
    "rtm": f"Under {RTM_THRESHOLD} RTM days",
    "adherence": f"Adherence under {round(100 * LOW_ADHERENCE)} %",
}


@dataclass(frozen=True)
class CaseloadRow:
    patient_id: int
    name: str
    condition_summary: str
    last_log_date: dt.date | None
    days_since_log: int | None
    back_pain: int | None
    leg_pain: int | None
    leg_side: str | None
    # Share of the last 7 days' prescribed exercise done; a day without a log counts as 0.
    # None when no program is in effect.
    adherence_7d: float | None
    program_title: str | None
    phase_name: str | None = None
    open_urgent: int = 0
    open_routine: int = 0
    acknowledged: int = 0
    # Mean of the last 7 days' logs minus their baseline, for the metric where it is largest.
    worst_change: float | None = None
    worst_metric: str | None = None
    rtm_days: int = 0
    rtm_period_start: dt.date | None = None
    rtm_period_end: dt.date | None = None
    trend: Sparkline | None = None

    @property
    def open_alerts(self) -> int:
        return self.open_urgent + self.open_routine

    @property
    def rtm_met(self) -> bool:
        return self.rtm_days >= RTM_THRESHOLD

    def rtm_days_left(self, today: dt.date) -> int | None:
        if self.rtm_period_end is None:
            return None
        return max(0, (self.rtm_period_end - today).days)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _patients_query(actor: Actor, today: dt.date, search: str) -> sa.Select[tuple[object, ...]]:
    visible = visible_patient_ids(actor)
    last_date = (
        sa.select(sa.func.max(SessionLog.log_date))
        .where(SessionLog.patient_id == Patient.id)
        .correlate(Patient)
        .scalar_subquery()
    )
    last = aliased(SessionLog, name="last_log")
    candidate = aliased(Program, name="candidate")
    current_program_id = (
        sa.select(candidate.id)
        .where(
            candidate.patient_id == Patient.id,
            candidate.start_date <= today,
            sa.or_(candidate.end_date.is_(None), candidate.end_date >= today),
        )
        .order_by(candidate.start_date.desc(), candidate.id.desc())
        .limit(1)
        .correlate(Patient)
        .scalar_subquery()
    )
    current = aliased(Program, name="current_program")
    phase_name = (
        sa.select(ProgramPhase.name)
        .where(ProgramPhase.program_id == current.id, ProgramPhase.start_date <= today)
        .order_by(ProgramPhase.start_date.desc(), ProgramPhase.id.desc())
        .limit(1)
        .correlate(current)
        .scalar_subquery()
    )
    first = (
        sa.select(Program.patient_id, sa.func.min(Program.start_date).label("first_start"))
        .where(Program.patient_id.in_(visible), Program.start_date <= today)
        .group_by(Program.patient_id)
        .subquery("first")
    )
    unresolved = Alert.status != AlertStatus.RESOLVED
    is_open = Alert.status == AlertStatus.OPEN

    def count_if(condition: sa.ColumnElement[bool], label: str) -> sa.Label[int]:
        return sa.func.sum(sa.case((condition, 1), else_=0)).label(label)

    def pain_baseline(metric: str) -> sa.Label[float]:
        return sa.func.max(
            sa.case(
                (sa.and_(Alert.kind == "pain_regression", Alert.metric == metric), Alert.baseline)
            )
        ).label(f"{metric}_baseline")

    alerts = (
        sa.select(
            Alert.patient_id,
            count_if(sa.and_(is_open, Alert.severity == "urgent"), "open_urgent"),
            count_if(sa.and_(is_open, Alert.severity != "urgent"), "open_routine"),
            count_if(Alert.status == AlertStatus.ACKNOWLEDGED, "acknowledged"),
            *(pain_baseline(m) for m in PAIN_METRICS),
        )
        .where(Alert.patient_id.in_(visible), unresolved)
        .group_by(Alert.patient_id)
        .subquery("alerts")
    )
    query = (
        sa.select(
            Patient.id,
            User.display_name,
            Patient.condition_summary,
            last.log_date,
            last.back_pain,
            last.leg_pain,
            last.leg_side,
            current.title,
            phase_name.label("phase_name"),
            first.c.first_start,
            alerts.c.open_urgent,
            alerts.c.open_routine,
            alerts.c.acknowledged,
            alerts.c.leg_pain_baseline,
            alerts.c.back_pain_baseline,
        )
        .join(User, User.id == Patient.user_id)
        .outerjoin(last, sa.and_(last.patient_id == Patient.id, last.log_date == last_date))
        .outerjoin(current, current.id == current_program_id)
        .outerjoin(first, first.c.patient_id == Patient.id)
        .outerjoin(alerts, alerts.c.patient_id == Patient.id)
        .where(Patient.id.in_(visible))
    )
    search = search.strip()
    if search:
        query = query.where(User.display_name.ilike(f"%{_escape_like(search)}%", escape="\\"))
    return query


@dataclass
class _Recent:
    dates: list[dt.date]
    leg: list[int]
    back: list[int]
    adherence: list[float | None]


def _recent_logs(
    session: Session, patient_ids: list[int], since: dt.date, today: dt.date
) -> dict[int, _Recent]:
    out: dict[int, _Recent] = {}
    rows = session.execute(
        sa.select(
            SessionLog.patient_id,
            SessionLog.log_date,
            SessionLog.leg_pain,
            SessionLog.back_pain,
            SessionLog.adherence,
        )
        .where(SessionLog.patient_id.in_(patient_ids), SessionLog.log_date.between(since, today))
        .order_by(SessionLog.patient_id, SessionLog.log_date)
    )
    for pid, day, leg, back, adherence in rows:
        recent = out.get(pid)
        if recent is None:
            recent = out[pid] = _Recent([], [], [], [])
        recent.dates.append(day)
        recent.leg.append(leg)
        recent.back.append(back)
        recent.adherence.append(adherence)
    return out


def _pins(session: Session, patient_ids: list[int]) -> dict[tuple[int, str], list[Pin]]:
    out: dict[tuple[int, str], list[Pin]] = defaultdict(list)
    for pid, metric, level, start, spread in session.execute(
        sa.select(
            PinnedBaseline.patient_id,
            PinnedBaseline.metric,
            PinnedBaseline.level,
            PinnedBaseline.effective_from,
            PinnedBaseline.spread,
        ).where(PinnedBaseline.patient_id.in_(patient_ids), PinnedBaseline.metric.in_(PAIN_METRICS))
    ):
        out[(pid, metric)].append(Pin(level, start, spread))
    return out


def _rtm_period(first_start: dt.date | None, today: dt.date) -> tuple[dt.date, dt.date]:
    """The current 30-day monitoring period: counted from the first program's start, or the
    last 30 days without a program."""
    if first_start is None or first_start > today:
        return today - dt.timedelta(days=RTM_PERIOD_DAYS - 1), today
    index = (today - first_start).days // RTM_PERIOD_DAYS
    start = first_start + dt.timedelta(days=index * RTM_PERIOD_DAYS)
    return start, start + dt.timedelta(days=RTM_PERIOD_DAYS - 1)


def caseload(
    session: Session,
    actor: Actor,
    search: str = "",
    sort: str = "attention",
    filter_by: str = "all",
) -> list[CaseloadRow]:
    if not actor.is_clinician:
        raise NotFound("caseload")
    today = clinic_today()
    patients = session.execute(_patients_query(actor, today, search)).all()
    ids = [p.id for p in patients]
    since = today - dt.timedelta(days=LOOKBACK_DAYS - 1)
    recent = _recent_logs(session, ids, since, today) if ids else {}
    pins = _pins(session, ids) if ids else {}

    change_from = today - dt.timedelta(days=CHANGE_DAYS - 1)
    trend_from = today - dt.timedelta(days=TREND_DAYS - 1)
    adherence_from = today - dt.timedelta(days=ADHERENCE_DAYS - 1)
    # (patient, metric) → (mean of the last 7 days, baseline from an open alert or None)
    currents: dict[tuple[int, str], tuple[float, float | None]] = {}
    queries: list[SeriesQuery] = []
    query_keys: list[tuple[int, str]] = []
    for p in patients:
        logs = recent.get(p.id)
        if logs is None:
            continue
        for metric, column in (("leg_pain", logs.leg), ("back_pain", logs.back)):
            first_recent = next(
                (i for i, d in enumerate(logs.dates) if d >= change_from), len(logs.dates)
            )
            values = column[first_recent:]
            if not values:
                continue
            alert_baseline = getattr(p, f"{metric}_baseline")
            currents[(p.id, metric)] = (sum(values) / len(values), alert_baseline)
            if alert_baseline is None:
                query_keys.append((p.id, metric))
                queries.append(
                    SeriesQuery(
                        logs.dates[:first_recent],
                        [float(v) for v in column[:first_recent]],
                        logs.dates[first_recent],
                        pins.get((p.id, metric), ()),
                    )
                )
    detector = {
        key: levels[-1] for key, levels in zip(query_keys, levels_before(queries), strict=True)
    }

    rows = []
    for p in patients:
        logs = recent.get(p.id) or _Recent([], [], [], [])
        adherence = None
        if p.title is not None:
            # A program younger than a week is judged on the days it has existed.
            days = ADHERENCE_DAYS
            if p.first_start is not None:
                days = max(1, min(ADHERENCE_DAYS, (today - p.first_start).days + 1))
            done = sum(
                a or 0.0
                for d, a in zip(logs.dates, logs.adherence, strict=True)
                if d >= adherence_from
            )
            adherence = min(1.0, done / days)
        worst: tuple[float, str] | None = None
        for metric in PAIN_METRICS:
            current = currents.get((p.id, metric))
            if current is None:
                continue
            level = current[1] if current[1] is not None else detector.get((p.id, metric))
            if level is None:
                continue
            change = current[0] - level
            if worst is None or change > worst[0]:
                worst = (change, metric)
        period_start, period_end = _rtm_period(p.first_start, today)
        leg_trend: list[float | None] = [None] * TREND_DAYS
        back_trend: list[float | None] = [None] * TREND_DAYS
        for d, leg, back in zip(logs.dates, logs.leg, logs.back, strict=True):
            i = (d - trend_from).days
            if i >= 0:
                leg_trend[i], back_trend[i] = leg, back
        rows.append(
            CaseloadRow(
                patient_id=p.id,
                name=p.display_name,
                condition_summary=p.condition_summary,
                last_log_date=p.log_date,
                days_since_log=(today - p.log_date).days if p.log_date else None,
                back_pain=p.back_pain,
                leg_pain=p.leg_pain,
                leg_side=p.leg_side.value if p.leg_side else None,
                adherence_7d=adherence,
                program_title=p.title,
                phase_name=p.phase_name,
                open_urgent=int(p.open_urgent or 0),
                open_routine=int(p.open_routine or 0),
                acknowledged=int(p.acknowledged or 0),
                worst_change=round(worst[0], 1) if worst else None,
                worst_metric=worst[1] if worst else None,
                rtm_days=sum(1 for d in logs.dates if d >= period_start),
                rtm_period_start=period_start,
                rtm_period_end=period_end,
                trend=sparkline(leg_trend, back_trend, TREND_DAYS),
            )
        )
    rows = filter_rows(rows, filter_by)
    rows = sort_rows(rows, sort)
    for row in rows:
        audit.record(session, actor, "caseload.read", row.patient_id)
    return rows


_FILTERS: dict[str, Callable[[CaseloadRow], bool]] = {
    "alerts": lambda r: r.open_alerts > 0,
    "urgent": lambda r: r.open_urgent > 0,
    "silent": lambda r: r.days_since_log is None or r.days_since_log >= SILENT_DAYS,
    "rtm": lambda r: not r.rtm_met,
    "adherence": lambda r: r.adherence_7d is not None and r.adherence_7d < LOW_ADHERENCE,
}


def filter_rows(rows: list[CaseloadRow], filter_by: str) -> list[CaseloadRow]:
    keep = _FILTERS.get(filter_by)
    return [r for r in rows if keep(r)] if keep else rows


def attention_key(row: CaseloadRow) -> tuple[int, int, float, int]:
    never = 10**6  # never logged: a new patient to get started, near the top
    return (
        -row.open_urgent,
        -row.open_routine,
        -(row.worst_change if row.worst_change is not None else -math.inf),
        -(row.days_since_log if row.days_since_log is not None else never),
    )


def sort_rows(rows: list[CaseloadRow], sort: str) -> list[CaseloadRow]:
    by_name = sorted(rows, key=lambda r: (r.name.casefold(), r.patient_id))
    if sort == "attention":
        return sorted(by_name, key=attention_key)
    if sort == "last_log":
        # Never logged first, then the longest silence.
        return sorted(
            by_name, key=lambda r: -(r.days_since_log if r.days_since_log is not None else 10**6)
        )
    if sort in ("leg_pain", "back_pain"):
        return sorted(
            by_name,
            key=lambda r: (
                getattr(r, sort) is None,
                -(getattr(r, sort) or 0),
            ),
        )
    if sort == "change":
        return sorted(by_name, key=lambda r: (r.worst_change is None, -(r.worst_change or 0.0)))
    if sort == "adherence":
        return sorted(by_name, key=lambda r: (r.adherence_7d is None, r.adherence_7d or 0.0))
    if sort == "rtm":
        return sorted(by_name, key=lambda r: r.rtm_days)
    return by_name


def care_teams_of(session: Session, actor: Actor) -> list[CareTeam]:
    """The care teams a clinician belongs to (where they may add patients)."""
    if not actor.is_clinician or actor.clinician_id is None:
        return []
    return list(
        session.scalars(
            sa.select(CareTeam)
            .join(CareTeamMember, CareTeamMember.care_team_id == CareTeam.id)
            .where(CareTeamMember.clinician_id == actor.clinician_id)
            .order_by(CareTeam.name)
        )
    )
