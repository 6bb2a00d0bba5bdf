"""The clinician's side of alerts: the inbox (a page at a time), acknowledging and resolving,
each audited, and each alert's history (who acknowledged or resolved it, and when).

The inbox order is open, then acknowledged, then resolved; urgent on top within each; newest
detected first; and the alert id last, so the order is total and paging by offset neither skips
nor repeats an alert. A page gets one audit row per patient it shows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import Alert, AlertJudgement, AlertStatus, Patient, User, utcnow
from rehab.domain.vocabulary import AuditOutcome
from rehab.services import audit
from rehab.services.access import NotFound, require_patient, visible_patient_ids
from rehab.services.actors import Actor
from rehab.services.commands import InvalidInput
from rehab.services.paging import page_bounds

MAX_NOTE = 2000
# What came of an alert, as the resolving clinician may say (the form's choices, the history,
# the admin's report).
JUDGEMENT_LABELS = {
    AlertJudgement.ACTED_ON: "Acted on (patient contacted or seen, program changed)",
    AlertJudgement.NO_ACTION: "A real change, no action needed",
    AlertJudgement.NOT_A_CHANGE: "Not a real change (a one-off day, a logging mistake)",
}
# The same, as the alert's history says it after "Resolved by …".
JUDGEMENT_SHORT = {
    AlertJudgement.ACTED_ON: "acted on",
    AlertJudgement.NO_ACTION: "a real change, no action needed",
    AlertJudgement.NOT_A_CHANGE: "not a real change",
}
STATUS_ORDER = sa.case(
    (Alert.status == AlertStatus.OPEN, 0),
    (Alert.status == AlertStatus.ACKNOWLEDGED, 1),
    else_=2,
)
URGENT_FIRST = sa.case((Alert.severity == "urgent", 0), else_=1)
INBOX_ORDER = (STATUS_ORDER, URGENT_FIRST, Alert.detected_on.desc(), Alert.id.desc())
PAGE_SIZE = 50


@dataclass(frozen=True)
class InboxRow:
    alert: Alert
    patient_id: int
    patient_name: str


@dataclass(frozen=True)
class InboxPage:
    rows: list[InboxRow]  # this page's rows
    total: int  # alerts on all pages
    page: int  # clamped to 1..pages
    pages: int
    per_page: int
    # Display names of the clinicians who acknowledged or resolved the page's alerts.
    names: dict[int, str]

    @property
    def first(self) -> int:
        """1-based position of the page's first row (0 on an empty inbox)."""
        return (self.page - 1) * self.per_page + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * self.per_page + len(self.rows)


def inbox_page(
    session: Session,
    actor: Actor,
    *,
    include_resolved: bool = False,
    page: int = 1,
    per_page: int = PAGE_SIZE,
) -> InboxPage:
    """One page of the alerts of the actor's patients: open first, urgent on top, newest
    first. A page number out of range is clamped to the first or last page. Only the
    patients of the page's alerts get an audit row."""
    where: list[sa.ColumnElement[bool]] = [Alert.patient_id.in_(visible_patient_ids(actor))]
    if not include_resolved:
        where.append(Alert.status != AlertStatus.RESOLVED)
    total = session.scalar(sa.select(sa.func.count()).select_from(Alert).where(*where)) or 0
    shown, pages = page_bounds(total, page, per_page)
    query = (
        sa.select(Alert, User.display_name)
        .join(Patient, Patient.id == Alert.patient_id)
        .join(User, User.id == Patient.user_id)
        .where(*where)
        .order_by(*INBOX_ORDER)
        .offset((shown - 1) * per_page)
        .limit(per_page)
    )
    rows = [InboxRow(alert, alert.patient_id, name) for alert, name in session.execute(query)]
    audit.record_per_patient(
        session, actor, "alert.list", (r.patient_id for r in rows), none_shown_row=False
    )
    names = clinician_names(session, (r.alert for r in rows))
    return InboxPage(rows, total, shown, pages, per_page, names)


# --- who did what, when ---------------------------------------------------------------------

# The notes `rehab.services.evaluation` writes when it resolves an alert itself (written and
# read back through these names only).
AUTO_BACK_NEAR_BASELINE = "Resolved automatically: back near baseline for a sustained period."
AUTO_SUPERSEDED = "Superseded by a newer alert of the same kind and metric (a further change)."
AUTO_ALREADY_RESOLVED = "Already resolved when first evaluated."
AUTO_NO_LONGER_SHOWN = (
    "Resolved automatically: the record as it now stands no longer shows it (a log, a pinned "
    "baseline, or an event or score marked entered in error changed after it was raised)."
)
# The same note as stored before entries could be marked entered in error.
_AUTO_NO_LONGER_SHOWN_BEFORE = (
    "Resolved automatically: the logs and baselines as they now stand no longer show it "
    "(a log or a pinned baseline changed after it was raised)."
)
AUTO_LOGGING_RESUMED = "Resolved automatically: a log arrived."
AUTO_ACTIVITIES_REPLACED = (
    "Resolved automatically: the PSFS activities it was raised on are no longer rated (they "
    "were replaced), so it can no longer be followed; later scores are compared with each other."
)
AUTO_PROGRAM_ENDED = (
    "Resolved automatically: the program ended (discharge or a break in care); no logs are "
    "asked for after it."
)


REOPENED = "by the detector: the record, corrected since, shows it ongoing again"
FOLLOWED_UP = (
    "not acknowledged in time: e-mailed again to the care team's active clinicians, and the"
    " active administrators told"
)


@dataclass(frozen=True)
class Step:
    """One step of an alert's lifecycle after it opened: followed up (urgent and nobody
    acknowledged it in time), acknowledged, reopened (by the detector), resolved."""

    action: str  # "followed up", "acknowledged", "reopened" or "resolved"
    by: str | None  # the clinician's display name; None: by the system (or unknown)
    at: dt.datetime | None  # when it was recorded (UTC)
    on: dt.date | None  # automatic resolution: the day the metric was back near baseline
    note: str  # the clinician's note ("" for none)
    # Automatic resolution or follow-up: why; a clinician's resolution: what came of it, as
    # she judged it; in words ("" otherwise).
    reason: str

    @property
    def automatic(self) -> bool:
        return self.action == "resolved" and self.by is None and bool(self.reason)


def clinician_names(session: Session, alerts: Iterable[Alert]) -> dict[int, str]:
    """Display names of the users who acknowledged or resolved these alerts (one query)."""
    ids: set[int] = set()
    for alert in alerts:
        ids.update(
            i for i in (alert.acknowledged_by_user_id, alert.resolved_by_user_id) if i is not None
        )
    return user_names(session, ids)


def user_names(session: Session, user_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = session.execute(sa.select(User.id, User.display_name).where(User.id.in_(ids)))
    return {user_id: name for user_id, name in rows}


def _name(names: Mapping[int, str], user_id: int | None) -> str | None:
    return None if user_id is None else names.get(user_id)


# Every note the detector has written for an alert the record no longer shows.
NO_LONGER_SHOWN_NOTES = (AUTO_NO_LONGER_SHOWN, _AUTO_NO_LONGER_SHOWN_BEFORE)


def no_longer_shown(alert: Alert) -> bool:
    """Whether the detector resolved the alert because the record, corrected since, no
    longer shows it: its words may cite what the correction took away."""
    return alert.resolved_by_user_id is None and alert.resolve_note in NO_LONGER_SHOWN_NOTES


def _auto_reason(note: str, kind: str) -> str:
    if note == AUTO_SUPERSEDED:
        return "superseded by a newer alert of the same kind and metric"
    if note == AUTO_ALREADY_RESOLVED:
        return "already over when first evaluated"
    if note in NO_LONGER_SHOWN_NOTES:
        return "no longer shown by the record as it now stands"
    if note == AUTO_ACTIVITIES_REPLACED:
        return "the PSFS activities it was raised on were replaced"
    if note == AUTO_PROGRAM_ENDED:
        return "the program ended: no logs asked for after it"
    if note == AUTO_LOGGING_RESUMED or kind == "missed_logs":
        # (Until these notes, a log closing a gap was noted as back near baseline.)
        return "a log arrived"
    return "back near baseline"


def history(alert: Alert, names: Mapping[int, str]) -> list[Step]:
    """Who acknowledged and resolved the alert and when, oldest step first (`names`: from
    `clinician_names`). A resolved alert without a resolving user was resolved by the
    detector (`rehab.services.evaluation`), on `resolved_on`."""
    steps = []
    if alert.followed_up_at is not None:
        steps.append(Step("followed up", None, alert.followed_up_at, None, "", FOLLOWED_UP))
    if alert.acknowledged_at is not None or alert.acknowledged_by_user_id is not None:
        steps.append(
            Step(
                "acknowledged",
                _name(names, alert.acknowledged_by_user_id),
                alert.acknowledged_at,
                None,
                alert.acknowledge_note,
                "",
            )
        )
    if alert.reopened_at is not None:
        steps.append(Step("reopened", None, alert.reopened_at, None, "", REOPENED))
    if alert.status is AlertStatus.RESOLVED:
        if alert.resolved_by_user_id is not None:
            judged = alert.resolve_judgement
            steps.append(
                Step(
                    "resolved",
                    _name(names, alert.resolved_by_user_id),
                    alert.resolved_at,
                    None,
                    alert.resolve_note,
                    JUDGEMENT_SHORT[judged] if judged else "",
                )
            )
        else:
            on = alert.resolved_on
            steps.append(
                Step(
                    "resolved",
                    None,
                    alert.resolved_at,
                    on,
                    "",
                    _auto_reason(alert.resolve_note, alert.kind),
                )
            )
    # Oldest first: an acknowledgement taken over on reopening may be older than the reopening.
    steps.sort(key=_step_time)
    return steps


def _step_time(step: Step) -> dt.datetime:
    return step.at if step.at is not None else _NO_TIME


_NO_TIME = dt.datetime.max.replace(tzinfo=dt.UTC)


def patient_alerts(session: Session, actor: Actor, patient_id: int) -> list[Alert]:
    require_patient(session, actor, patient_id, "alert.read")
    return list(
        session.scalars(
            sa.select(Alert).where(Alert.patient_id == patient_id).order_by(*INBOX_ORDER)
        )
    )


def _alert_for(session: Session, actor: Actor, alert_id: int, action: str) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        # Audited like a refusal: a missing alert and another team's answer alike.
        audit.record(session, actor, action, None, AuditOutcome.DENIED, f"alert:{alert_id}")
        raise NotFound(f"alert {alert_id}")
    require_patient(
        session, actor, alert.patient_id, action, f"alert:{alert_id}", clinician_only=True
    )
    return alert


def _note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput("note", f"must be at most {MAX_NOTE} characters")
    return note


def acknowledge(session: Session, actor: Actor, alert_id: int, note: str) -> Alert:
    alert = _alert_for(session, actor, alert_id, "alert.acknowledge")
    if alert.status is not AlertStatus.OPEN:
        raise InvalidInput("status", f"the alert is already {alert.status.value}")
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_by_user_id = actor.user_id
    alert.acknowledged_at = utcnow()
    alert.acknowledge_note = _note(note)
    audit.commit(session)
    return alert


def _judgement(value: str | None) -> AlertJudgement | None:
    if not value:
        return None
    try:
        return AlertJudgement(value)
    except ValueError:
        choices = ", ".join(j.value for j in AlertJudgement)
        raise InvalidInput(
            "judgement", f"what came of it must be one of {choices}, or left out"
        ) from None


def resolve(
    session: Session, actor: Actor, alert_id: int, note: str, judgement: str | None = None
) -> Alert:
    """Resolve the alert; `judgement` (optional): what came of it (`AlertJudgement`)."""
    alert = _alert_for(session, actor, alert_id, "alert.resolve")
    if alert.status is AlertStatus.RESOLVED:
        raise InvalidInput("status", "the alert is already resolved")
    alert.resolve_judgement = _judgement(judgement)
    alert.status = AlertStatus.RESOLVED
    alert.resolved_by_user_id = actor.user_id
    alert.resolved_at = utcnow()
    alert.resolve_note = _note(note)
    audit.commit(session)
    return alert
