"""A clinician's caseload: their patients with the numbers a morning triage needs, sorted by what
needs attention first, a page at a time.

A constant number of queries whatever the size of the caseload: one SELECT for the patients
(last log through an index seek per patient, current program and phase, open alerts counted by
one grouped subquery), one for the logs of the last 63 days of those patients (plain numbers
into one numpy array), one for pinned baselines; then every patient's trend, adherence, RTM
days and change against the detector's baseline in a few array operations (the baseline
through `rehab.charts.baseline.probe_levels`, one packed computation for all of them). Every
patient is computed and sorted; a page shows 50 (or all), and gets one audit row per patient
shown, since it shows each one's pain scores.

Attention order ("attention", the default): open urgent alerts, open routine alerts, the worst
change against baseline (mean of the last 7 days' logs minus the baseline they are judged
against: the open alert's while one is open, else the detector's), the longest silence.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from rehab.charts.baseline import Pin, probe_levels
from rehab.charts.sparkline import Sparkline, sparkline
from rehab.db import execute_core
from rehab.db.models import (
    Alert,
    AlertStatus,
    CareTeam,
    CareTeamMember,
    OutcomeMeasure,
    Patient,
    PinnedBaseline,
    Program,
    ProgramPhase,
    SessionLog,
    User,
)
from rehab.domain.config import DEFAULT_CONFIG
from rehab.domain.outcome_schedule import OutcomeDue
from rehab.domain.vocabulary import Instrument
from rehab.services import audit
from rehab.services.access import NotFound, visible_patient_ids
from rehab.services.actors import Actor
from rehab.services.outcome_schedule import outcome_interval_days, outcome_schedule
from rehab.services.paging import page_bounds
from rehab.services.time import clinic_today

ADHERENCE_DAYS = 7
TREND_DAYS = 30
CHANGE_DAYS = 7
# Remote therapeutic monitoring: data on at least 16 days of each 30-day period (counted from
# the first program's start) is the billing threshold.
RTM_PERIOD_DAYS = 30
RTM_THRESHOLD = 16
SILENT_DAYS = 3
PAGE_SIZE = 50
LOW_ADHERENCE = 0.5
PAIN_METRICS = ("leg_pain", "back_pain")
# Logs read per patient: the trend and the RTM period, and the history the detector's baseline
# of the last week's logs is read from: its level window (42 days) and the noise window (56)
# that caps flares in it. (The caps' own history reaches further back still; with noisy,
# flaring simulated patients the level read from these 63 days stays within 0.06 points of the
# full history's: tests/unit/test_charts.py.)
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
    "outcomes": "ODI/PSFS due",
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
    # No program in effect today, and the last one ended before today (a discharge): not
    # expected to log, so the caseload's attention and silence views put her last.
    program_ended_on: dt.date | None = None
    open_urgent: int = 0
    open_routine: int = 0
    acknowledged: int = 0
    # Mean of the last 7 days' logs minus their baseline, for the metric where it is largest.
    worst_change: float | None = None
    worst_metric: str | None = None
    rtm_days: int = 0
    rtm_period_start: dt.date | None = None
    rtm_period_end: dt.date | None = None
    # The last 30 days' leg and back pain, one value a day (NaN: no log).
    trend_leg: tuple[float, ...] = ()
    trend_back: tuple[float, ...] = ()
    # ODI or PSFS due today or overdue (a program in effect: rehab.domain.outcome_schedule).
    outcomes_due: tuple[OutcomeDue, ...] = ()

    @property
    def trend(self) -> Sparkline:
        """The trend lines as SVG paths (built for the rows a page shows, not all of them)."""
        return sparkline(self.trend_leg, self.trend_back, TREND_DAYS)

    @property
    def discharged(self) -> bool:
        return self.program_ended_on is not None

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


@functools.lru_cache(maxsize=256)
def _patients_query(actor: Actor, today: dt.date, searching: bool) -> sa.Select[tuple[object, ...]]:
    """The caseload's one row per patient. Built once per clinician and day and kept: building
    it costs more than a page's Python work on the figures (3 ms). Nothing about access is
    kept: the care teams are joined when it runs. `searching`: with the name filter, whose
    pattern is the `search_pattern` parameter."""
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
    ended = aliased(Program, name="ended")
    # The last day of the latest program that has ended (read when none is in effect today).
    program_ended_on = (
        sa.select(sa.func.max(ended.end_date))
        .where(ended.patient_id == Patient.id, ended.end_date < today)
        .correlate(Patient)
        .scalar_subquery()
    )

    # The latest ODI and PSFS of each patient (the schedule of outcome measures).
    scores = (
        sa.select(
            OutcomeMeasure.patient_id,
            *(
                sa.func.max(
                    sa.case((OutcomeMeasure.instrument == i, OutcomeMeasure.measured_on))
                ).label(f"last_{i.value}")
                for i in Instrument
            ),
        )
        .where(OutcomeMeasure.patient_id.in_(visible), OutcomeMeasure.current())
        .group_by(OutcomeMeasure.patient_id)
        .subquery("scores")
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
            current.start_date.label("program_start"),
            phase_name.label("phase_name"),
            first.c.first_start,
            program_ended_on.label("program_ended_on"),
            alerts.c.open_urgent,
            alerts.c.open_routine,
            alerts.c.acknowledged,
            alerts.c.leg_pain_baseline,
            alerts.c.back_pain_baseline,
            *(scores.c[f"last_{i.value}"] for i in Instrument),
        )
        .join(User, User.id == Patient.user_id)
        .outerjoin(last, sa.and_(last.patient_id == Patient.id, last.log_date == last_date))
        .outerjoin(current, current.id == current_program_id)
        .outerjoin(first, first.c.patient_id == Patient.id)
        .outerjoin(alerts, alerts.c.patient_id == Patient.id)
        .outerjoin(scores, scores.c.patient_id == Patient.id)
        .where(Patient.id.in_(visible))
    )
    if searching:
        query = query.where(
            User.display_name.ilike(sa.bindparam("search_pattern", type_=sa.String), escape="\\")
        )
    return query


def _day_index(session: Session, since: dt.date) -> sa.ColumnElement[int]:
    """Days from `since` to each log's date, as an integer computed by the database (numbers,
    not dates, come back: no date parsing for tens of thousands of rows)."""
    if session.get_bind().dialect.name == "sqlite":
        return sa.cast(
            sa.func.julianday(SessionLog.log_date) - sa.func.julianday(since.isoformat()),
            sa.Integer,
        )
    return sa.cast(SessionLog.log_date - sa.literal(since, sa.Date), sa.Integer)


# Each log comes back as one integer, ((patient id × 64 + day) × 16 + leg) × 16 + back: turning
# database values into Python objects is most of the cost of reading tens of thousands of logs,
# and one value a log costs a fifth of five.
_DAY_BITS, _PAIN_BITS = 6, 4
assert LOOKBACK_DAYS <= 1 << _DAY_BITS


def _recent_logs(
    session: Session, patient_ids: list[int], since: dt.date, today: dt.date
) -> npt.NDArray[np.int64]:
    """The logs of the window as an array of (patient id, day index, leg, back) rows, in no
    particular order."""
    code: sa.ColumnElement[int] = sa.cast(SessionLog.patient_id, sa.BigInteger)
    code = code * (1 << _DAY_BITS) + _day_index(session, since)
    code = code * (1 << _PAIN_BITS) + SessionLog.leg_pain
    code = code * (1 << _PAIN_BITS) + SessionLog.back_pain
    result = execute_core(
        session,
        sa.select(code).where(
            SessionLog.patient_id.in_(patient_ids), SessionLog.log_date.between(since, today)
        ),
    )
    try:
        # The DBAPI cursor's plain tuples, not a row object each.
        rows = result.cursor.fetchall()
    finally:
        result.close()
    codes = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    pain_mask = (1 << _PAIN_BITS) - 1
    back = codes & pain_mask
    leg = (codes >> _PAIN_BITS) & pain_mask
    day = (codes >> (2 * _PAIN_BITS)) & ((1 << _DAY_BITS) - 1)
    patient = codes >> (2 * _PAIN_BITS + _DAY_BITS)
    return np.stack([patient, day, leg, back], axis=1)


def _adherence_sums(session: Session, patient_ids: list[int], today: dt.date) -> dict[int, float]:
    """Per patient: the fractions of prescribed exercise done over the last 7 days, summed."""
    since = today - dt.timedelta(days=ADHERENCE_DAYS - 1)
    return {
        pid: float(done or 0.0)
        for pid, done in session.execute(
            sa.select(SessionLog.patient_id, sa.func.sum(SessionLog.adherence))
            .where(
                SessionLog.patient_id.in_(patient_ids), SessionLog.log_date.between(since, today)
            )
            .group_by(SessionLog.patient_id)
        )
    }


def _pins(session: Session, patient_ids: list[int]) -> dict[tuple[int, str], list[Pin]]:
    out: dict[tuple[int, str], list[Pin]] = defaultdict(list)
    for pid, metric, level, start, spread in session.execute(
        sa.select(
            PinnedBaseline.patient_id,
            PinnedBaseline.metric,
            PinnedBaseline.level,
            PinnedBaseline.effective_from,
            PinnedBaseline.spread,
        )
        .where(
            PinnedBaseline.patient_id.in_(patient_ids),
            PinnedBaseline.metric.in_(PAIN_METRICS),
            PinnedBaseline.current(),
        )
        # Of two pins of one date the later row wins (`pin_periods` keeps the order given).
        .order_by(PinnedBaseline.id)
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


@dataclass
class _Figures:
    """Per patient (in the order of the patients query): the numbers computed from the logs."""

    trend_leg: list[list[float]]
    trend_back: list[list[float]]
    rtm_days: list[int]
    worst_change: list[float | None]
    worst_metric: list[str | None]


def _figures(
    patients: list[Any],
    logs: npt.NDArray[np.int64],
    pins: dict[tuple[int, str], list[Pin]],
    since: dt.date,
    today: dt.date,
    periods: list[tuple[dt.date, dt.date]],
) -> _Figures:
    """Trend lines, 7-day adherence, RTM days and the change against baseline of every
    patient at once, in arrays: a few milliseconds for hundreds of patients."""
    n = len(patients)
    last = (today - since).days  # day index of today
    ids = np.array([p.id for p in patients], dtype=np.int64)
    order = np.argsort(ids)
    patient = order[np.searchsorted(ids[order], logs[:, 0])]
    day = logs[:, 1]
    columns = {
        "leg_pain": logs[:, 2].astype(np.float64),
        "back_pain": logs[:, 3].astype(np.float64),
    }

    first_trend = last - TREND_DAYS + 1
    in_trend = day >= first_trend
    trends = {}
    for metric, values in columns.items():
        grid = np.full((n, TREND_DAYS), np.nan)
        grid[patient[in_trend], day[in_trend] - first_trend] = values[in_trend]
        trends[metric] = grid.tolist()

    period_start = np.array([(start - since).days for start, _ in periods], dtype=np.int64)
    rtm = np.bincount(patient[day >= period_start[patient]], minlength=n)

    # Against baseline: the mean of the last 7 days' logs minus the baseline they are judged
    # against: an open alert's (the detector holds it), else the detector's own, read on the
    # day of the window's first log from the logs before it (pins applied).
    in_change = day >= last - CHANGE_DAYS + 1
    count = np.bincount(patient[in_change], minlength=n)
    first_recent = np.full(n, last + 1, dtype=np.int64)
    np.minimum.at(first_recent, patient[in_change], day[in_change])
    means = {
        metric: np.bincount(patient[in_change], weights=values[in_change], minlength=n)
        / np.maximum(count, 1)
        for metric, values in columns.items()
    }
    # Both metrics of every patient in one packed computation: series 2p (leg), 2p + 1 (back).
    metrics = list(columns)
    series = np.concatenate([2 * patient + k for k in range(len(metrics))])
    position = {p.id: i for i, p in enumerate(patients)}
    series_pins = {
        2 * position[pid] + metrics.index(metric): [
            ((pin.effective_from - since).days, pin.level, pin.spread) for pin in found
        ]
        for (pid, metric), found in pins.items()
        if pid in position and metric in metrics
    }
    levels = probe_levels(
        series,
        np.concatenate([day] * len(metrics)),
        np.concatenate([columns[m] for m in metrics]),
        np.repeat(first_recent, len(metrics)),
        series_pins,
    ).reshape(n, len(metrics))
    best_change = np.full(n, -np.inf)
    best_metric: list[str | None] = [None] * n
    for k, metric in enumerate(metrics):
        held = np.array(
            [getattr(p, f"{metric}_baseline") for p in patients], dtype=np.float64
        )  # None becomes NaN
        level = np.where(np.isnan(held), levels[:, k], held)
        change = np.where((count > 0) & ~np.isnan(level), means[metric] - level, -np.inf)
        better = change > best_change
        best_change = np.where(better, change, best_change)
        for i in np.flatnonzero(better).tolist():
            best_metric[i] = metric
    return _Figures(
        trend_leg=trends["leg_pain"],
        trend_back=trends["back_pain"],
        rtm_days=rtm.tolist(),
        worst_change=[None if c == -np.inf else round(c, 1) for c in best_change.tolist()],
        worst_metric=best_metric,
    )


@dataclass(frozen=True)
class CaseloadPage:
    rows: list[CaseloadRow]  # this page's rows
    total: int  # rows on all pages (after the filter and search)
    page: int
    pages: int
    per_page: int | None  # None: everything on one page


def caseload_page(
    session: Session,
    actor: Actor,
    search: str = "",
    sort: str = "attention",
    filter_by: str = "all",
    page: int = 1,
    per_page: int | None = PAGE_SIZE,
) -> CaseloadPage:
    """One page of the sorted caseload (every patient is computed and sorted; only the
    page's rows are audited and drawn)."""
    rows = _all_rows(session, actor, search, sort, filter_by)
    page, pages = page_bounds(len(rows), page, per_page) if per_page else (1, 1)
    shown = rows[(page - 1) * per_page : page * per_page] if per_page else rows
    for row in shown:
        audit.record(session, actor, "caseload.read", row.patient_id)
    return CaseloadPage(shown, len(rows), page, pages, per_page)


def caseload(
    session: Session,
    actor: Actor,
    search: str = "",
    sort: str = "attention",
    filter_by: str = "all",
) -> list[CaseloadRow]:
    """Every row of the caseload, sorted (one audit row per patient)."""
    return caseload_page(session, actor, search, sort, filter_by, per_page=None).rows


def _all_rows(
    session: Session, actor: Actor, search: str, sort: str, filter_by: str
) -> list[CaseloadRow]:
    if not actor.is_clinician:
        raise NotFound("caseload")
    today = clinic_today()
    search = search.strip()
    patients = list(
        session.execute(
            _patients_query(actor, today, bool(search)),
            {"search_pattern": f"%{_escape_like(search)}%"} if search else {},
        ).all()
    )
    ids = [p.id for p in patients]
    since = today - dt.timedelta(days=LOOKBACK_DAYS - 1)
    logs = _recent_logs(session, ids, since, today) if ids else np.zeros((0, 4), np.int64)
    done = _adherence_sums(session, ids, today) if ids else {}
    pins = _pins(session, ids) if ids else {}
    periods = [_rtm_period(p.first_start, today) for p in patients]
    interval = outcome_interval_days(session)
    figures = _figures(patients, logs, pins, since, today, periods)

    rows = []
    for i, p in enumerate(patients):
        adherence = None
        if p.title is not None:
            # A program younger than a week is judged on the days it has existed.
            days = ADHERENCE_DAYS
            if p.first_start is not None:
                days = max(1, min(ADHERENCE_DAYS, (today - p.first_start).days + 1))
            adherence = min(1.0, done.get(p.id, 0.0) / days)
        period_start, period_end = periods[i]
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
                program_ended_on=p.program_ended_on if p.title is None else None,
                open_urgent=int(p.open_urgent or 0),
                open_routine=int(p.open_routine or 0),
                acknowledged=int(p.acknowledged or 0),
                worst_change=figures.worst_change[i],
                worst_metric=figures.worst_metric[i],
                rtm_days=figures.rtm_days[i],
                rtm_period_start=period_start,
                rtm_period_end=period_end,
                trend_leg=tuple(figures.trend_leg[i]),
                trend_back=tuple(figures.trend_back[i]),
                outcomes_due=_outcomes_due_today(p, today, interval),
            )
        )
    return sort_rows(filter_rows(rows, filter_by), sort)


_LAST_SCORE_COLUMNS = tuple((i.value, f"last_{i.value}") for i in Instrument)


def _outcomes_due_today(p: Any, today: dt.date, interval: int) -> tuple[OutcomeDue, ...]:
    """The measures due or overdue for a row of the patients query (none without a program
    in effect)."""
    last = {name: getattr(p, column) for name, column in _LAST_SCORE_COLUMNS}
    return outcome_schedule(last, p.program_start, interval, due_by=today)


_FILTERS: dict[str, Callable[[CaseloadRow], bool]] = {
    "alerts": lambda r: r.open_alerts > 0,
    "urgent": lambda r: r.open_urgent > 0,
    "silent": lambda r: (
        not r.discharged and (r.days_since_log is None or r.days_since_log >= SILENT_DAYS)
    ),
    "rtm": lambda r: not r.discharged and not r.rtm_met,
    "adherence": lambda r: r.adherence_7d is not None and r.adherence_7d < LOW_ADHERENCE,
    "outcomes": lambda r: bool(r.outcomes_due),
}


def filter_rows(rows: list[CaseloadRow], filter_by: str) -> list[CaseloadRow]:
    keep = _FILTERS.get(filter_by)
    return [r for r in rows if keep(r)] if keep else rows


def attention_key(row: CaseloadRow) -> tuple[int, int, bool, float, int]:
    never = 10**6  # never logged: a new patient to get started, near the top
    return (
        -row.open_urgent,
        -row.open_routine,
        row.discharged,  # after everyone still in a program, unless an alert is open
        -(row.worst_change if row.worst_change is not None else -math.inf),
        -(row.days_since_log if row.days_since_log is not None else never),
    )


def sort_rows(rows: list[CaseloadRow], sort: str) -> list[CaseloadRow]:
    by_name = sorted(rows, key=lambda r: (r.name.casefold(), r.patient_id))
    if sort == "attention":
        return sorted(by_name, key=attention_key)
    if sort == "last_log":
        # Never logged first, then the longest silence; the discharged after the others.
        return sorted(
            by_name,
            key=lambda r: (
                r.discharged,
                -(r.days_since_log if r.days_since_log is not None else 10**6),
            ),
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
