"""How the clinic responds to its alerts (the admin page `/admin/alerts`): for each month and
care team, how many alerts were raised and how soon a clinician responded (acknowledged it,
or resolved it herself); for each kind of alert, what came of those clinicians resolved, as
they judged it (`AlertJudgement`): the clinic's own measure of how often alerts were worth
their attention.

Counts and times only: no patient, no alert text (an administrator sees no clinical data).
An alert counts in the month (clinic calendar) its care team was told of it: urgent ones
from their first urgent e-mail (`notifications.urgent_since`), routine ones from when they
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
from rehab.services.time import clinic_date, clinic_day_start

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


def _month(moment: dt.datetime) -> dt.date:
    return clinic_date(moment).replace(day=1)


def _months_back(today: dt.date, months: int) -> dt.date:
    index = today.year * 12 + today.month - 1 - (months - 1)
    return dt.date(index // 12, index % 12 + 1, 1)


def alert_report(
    session: Session, actor: Actor, today: dt.date, limit_minutes: int, months: int = MONTHS
) -> AlertReport:
    """The last `months` calendar months up to `today`'s, newest first."""
    if not actor.is_admin:
        raise NotFound("admin page")
    first_month = _months_back(today, months)
    told = sa.case(
        (Alert.severity == URGENT, notifications.urgent_since()), else_=Alert.created_at
    ).label("told")
    rows = session.execute(
        sa.select(
            Alert.kind,
            Alert.severity,
            told,
            Alert.acknowledged_at,
            Alert.resolved_at,
            Alert.resolved_by_user_id,
            Alert.followed_up_at,
            Alert.status,
            Alert.resolve_judgement,
            CareTeam.id,
            CareTeam.name,
        )
        .join(Patient, Patient.id == Alert.patient_id)
        .join(CareTeam, CareTeam.id == Patient.care_team_id)
        .where(told >= clinic_day_start(first_month))
    )
    lines: dict[tuple[dt.date, int, str], ResponseLine] = {}
    judgements: dict[str, JudgementLine] = {}
    limit = dt.timedelta(minutes=limit_minutes)
    for (
        kind,
        severity,
        told_at,
        acknowledged_at,
        resolved_at,
        resolved_by,
        followed_up_at,
        status,
        judgement,
        team_id,
        team,
    ) in rows:
        month = _month(told_at)
        line = lines.setdefault(
            (month, team_id, severity), ResponseLine(month, team_id, team, severity)
        )
        line.raised += 1
        line.followed_up += followed_up_at is not None
        by_clinician = resolved_at if resolved_by is not None else None
        responses = [t for t in (acknowledged_at, by_clinician) if t is not None]
        if responses:
            # Acknowledged before it became urgent (an escalation): at once.
            waited = max(min(responses) - told_at, dt.timedelta())
            line.responded += 1
            line.within_limit += waited <= limit
            line.response_minutes.append(waited.total_seconds() / 60)
        elif status is AlertStatus.RESOLVED:
            line.resolved_unanswered += 1
        else:
            line.waiting += 1
        if resolved_by is not None:
            judged = judgements.setdefault(kind, JudgementLine(kind))
            judged.resolved_by_clinician += 1
            if judgement is not None:
                judged.judged[judgement] += 1
    ordered = sorted(lines.values(), key=lambda x: (-x.month.toordinal(), x.team, x.team_id))
    audit.record(session, actor, "alert.report", None)
    return AlertReport(
        first_month=first_month,
        limit_minutes=limit_minutes,
        urgent=[x for x in ordered if x.severity == URGENT],
        routine=[x for x in ordered if x.severity != URGENT],
        judgements=sorted(judgements.values(), key=lambda x: x.kind),
    )
