"""How the clinic responds to its alerts (the admin page `/admin/alerts`): for each month and
care team, how many alerts were raised and how soon a clinician responded (acknowledged it,
or resolved it herself); for each kind of alert, what came of those clinicians resolved, as
they judged it (`AlertJudgement`): the clinic's own measure of how often alerts were worth
their attention.

Counts and times only: no patient, no alert text (an administrator sees no clinical data).
An alert counts in the month (clinic calendar) its care team was told of it: urgent ones
from their first urgent e-mail (`notifications.first_urgent_emails`), routine ones from when they
were stored. The care team is the patient's team now.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import Alert, AlertJudgement, AlertStatus, CareTeam, Patient
from rehab.services import audit, notifications
from rehab.services.access import NotFound
from rehab.services.actors import Actor
from rehab.services.alerts import AUTO_ALREADY_RESOLVED
from rehab.services.time import clinic_day_start

MONTHS = 12
URGENT = "urgent"


def elapsed_text(minutes: float) -> str:
    """E.g. "35 min", "4 h 05 min", "2 d 3 h"."""
    whole = round(minutes)
    if whole < 60:
        return f"{whole} min"
    hours, rest = divmod(whole, 60)
    if hours < 48:
        return f"{hours} h {rest:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@dataclass
class ResponseLine:
    """One month, one care team, one severity."""

    month: dt.date  # its first day
    team_id: int
    team: str
    severity: str
    raised: int = 0
    responded: int = 0  # acknowledged, or resolved by a clinician
    timed: int = 0  # of those, responded after their team was told: the median's
    within_limit: int = 0  # responded within `urgent_follow_up_minutes` (urgent alerts)
    followed_up: int = 0
    resolved_unanswered: int = 0  # resolved automatically before anyone responded
    waiting: int = 0  # not responded to, not resolved
    response_minutes: list[float] = field(default_factory=list)

    @property
    def median_response(self) -> str:
        if not self.response_minutes:
            return "—"
        return elapsed_text(statistics.median(self.response_minutes))


@dataclass
class JudgementLine:
    """One kind of alert: those resolved by a clinician, by what came of them."""

    kind: str
    resolved_by_clinician: int = 0
    judged: dict[AlertJudgement, int] = field(
        default_factory=lambda: dict.fromkeys(AlertJudgement, 0)
    )

    @property
    def not_said(self) -> int:
        return self.resolved_by_clinician - sum(self.judged.values())

    @property
    def not_a_change_share(self) -> float | None:
        """Of the alerts judged, the share judged no real change."""
        judged = sum(self.judged.values())
        return self.judged[AlertJudgement.NOT_A_CHANGE] / judged if judged else None


@dataclass(frozen=True)
class AlertReport:
    first_month: dt.date
    limit_minutes: int
    urgent: list[ResponseLine]
    routine: list[ResponseLine]
    judgements: list[JudgementLine]


def _months_back(today: dt.date, months: int) -> list[dt.date]:
    """The first days of the last `months` months up to `today`'s, oldest first, and of the
    month after."""
    index = today.year * 12 + today.month - 1 - (months - 1)
    return [dt.date((index + n) // 12, (index + n) % 12 + 1, 1) for n in range(months + 1)]


def alert_report(
    session: Session, actor: Actor, today: dt.date, limit_minutes: int, months: int = MONTHS
) -> AlertReport:
    """The last `months` calendar months up to `today`'s, newest first.

    The database counts the alerts by month, team and outcome (a year of a large clinic is
    ~10^5 alerts); only those a clinician responded to come back one by one, for the times.
    The month is found by comparing with the months' starts in UTC (the clinic's midnights),
    which both databases can do."""
    if not actor.is_admin:
        raise NotFound("admin page")
    firsts = _months_back(today, months)
    starts = [clinic_day_start(first) for first in firsts]
    emailed = notifications.first_urgent_emails()
    told = sa.case(
        (Alert.severity == URGENT, sa.func.coalesce(emailed.c.at, Alert.created_at)),
        else_=Alert.created_at,
    )
    by_clinician = sa.case((Alert.resolved_by_user_id.is_not(None), Alert.resolved_at))
    alerts = (
        sa.select(
            told.label("told"),
            Alert.kind,
            Alert.severity,
            Alert.acknowledged_at,
            by_clinician.label("resolved_by_clinician_at"),
            (Alert.followed_up_at.is_not(None)).label("followed_up"),
            (Alert.status == AlertStatus.RESOLVED).label("resolved"),
            Alert.resolve_judgement,
            (Alert.resolve_note == AUTO_ALREADY_RESOLVED).label("stored_over"),
            Patient.care_team_id,
        )
        .join(Patient, Patient.id == Alert.patient_id)
        .outerjoin(emailed, emailed.c.alert_id == Alert.id)
        .subquery()
    )
    c = alerts.c
    month = sa.case(
        *((c.told < start, index - 1) for index, start in enumerate(starts[1:], start=1)),
        else_=-1,
    ).label("month")
    responded = sa.or_(c.acknowledged_at.is_not(None), c.resolved_by_clinician_at.is_not(None))
    in_window = sa.and_(
        c.told >= starts[0],
        c.told < starts[-1],
        # An episode the replay of a history stored already over was never told to anyone.
        sa.not_(c.stored_over),
    )
    teams: dict[int, str] = {
        i: name for i, name in session.execute(sa.select(CareTeam.id, CareTeam.name))
    }
    lines: dict[tuple[int, int, str], ResponseLine] = {}

    def line(index: int, team_id: int, severity: str) -> ResponseLine:
        return lines.setdefault(
            (index, team_id, severity),
            ResponseLine(firsts[index], team_id, teams[team_id], severity),
        )

    counted = session.execute(
        sa.select(
            month,
            c.care_team_id,
            c.severity,
            responded.label("responded"),
            c.resolved,
            c.followed_up,
            sa.func.count(),
        )
        .where(in_window)
        .group_by(month, c.care_team_id, c.severity, responded, c.resolved, c.followed_up)
    )
    for index, team_id, severity, was_responded, resolved, followed_up, count in counted:
        counts = line(index, team_id, severity)
        counts.raised += count
        counts.followed_up += count if followed_up else 0
        if not was_responded:
            if resolved:
                counts.resolved_unanswered += count
            else:
                counts.waiting += count
    limit = dt.timedelta(minutes=limit_minutes)
    timed = session.execute(
        sa.select(
            month,
            c.care_team_id,
            c.severity,
            c.told,
            c.acknowledged_at,
            c.resolved_by_clinician_at,
        ).where(in_window, responded)
    )
    for index, team_id, severity, told_at, acknowledged_at, resolved_at in timed:
        times = line(index, team_id, severity)
        first = min(t for t in (acknowledged_at, resolved_at) if t is not None)
        times.responded += 1
        if first < told_at:
            # Acknowledged before it became urgent (an escalation), or before its team was
            # told (a record brought in with its history): no time to report.
            continue
        waited = first - told_at
        times.timed += 1
        times.within_limit += waited <= limit
        times.response_minutes.append(waited.total_seconds() / 60)
    judgements: dict[str, JudgementLine] = {}
    for kind, judgement, count in session.execute(
        sa.select(c.kind, c.resolve_judgement, sa.func.count())
        .where(in_window, c.resolved_by_clinician_at.is_not(None))
        .group_by(c.kind, c.resolve_judgement)
    ):
        judged = judgements.setdefault(kind, JudgementLine(kind))
        judged.resolved_by_clinician += count
        if judgement is not None:
            judged.judged[AlertJudgement(judgement)] += count
    ordered = sorted(lines.values(), key=lambda x: (-x.month.toordinal(), x.team, x.team_id))
    audit.record(session, actor, "alert.report", None)
    return AlertReport(
        first_month=firsts[0],
        limit_minutes=limit_minutes,
        urgent=[x for x in ordered if x.severity == URGENT],
        routine=[x for x in ordered if x.severity != URGENT],
        judgements=sorted(judgements.values(), key=lambda x: x.kind),
    )
