"""The clinic's policy settings (`config.settings.ClinicPolicy`): how many days without a log
make a missed-logs alert, when an unacknowledged urgent alert is followed up, how often ODI and
PSFS are due, the hour of the clinicians' digest, and the patients' reminders.

The environment (`REHAB_*`) gives their defaults; an administrator changes them in the app
(`/admin/settings`), so a clinic sets its own policy without asking whoever runs its servers.
Every change is a row of `clinic_setting_changes` (the latest row of a setting is its value;
NULL: back to the default) and an audit row. Web requests and worker tasks read the policy
once each (`current`), so a change applies from the next request or task of every process.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app, g
from pydantic import ValidationError
from sqlalchemy.orm import Session

from config.settings import ClinicPolicy, Settings
from rehab.db.models import ClinicSettingChange, User
from rehab.services import audit
from rehab.services.access import require_admin
from rehab.services.actors import Actor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SettingText:
    label: str
    unit: str
    effect: str


# What each setting does, in the admin's words (the page, its errors, the history).
TEXT: dict[str, SettingText] = {
    "missed_logs_days": SettingText(
        "Missed logs",
        "days",
        "A patient with a program in effect who logs nothing for this many days raises a"
        " missed-logs alert. A gap already alerted stays one alert whatever the number"
        " (nobody is told again), resolved when she logs again or her program ends.",
    ),
    "urgent_follow_up_minutes": SettingText(
        "Urgent alert follow-up",
        "minutes",
        "An urgent alert nobody on the care team has acknowledged this long after the team"
        " was told is e-mailed to the team again, and the administrators are told.",
    ),
    "outcome_interval_days": SettingText(
        "ODI and PSFS interval",
        "days",
        "ODI and PSFS are due at the start of a program, then this many days after the last"
        " score (the caseload's “ODI/PSFS due” view, the patient record).",
    ),
    "digest_hour": SettingText(
        "Daily digest",
        "(hour of the day, clinic time)",
        "Clinicians who chose the daily summary get their routine alerts at this hour.",
    ),
    "reminder_after_days": SettingText(
        "Patient reminder after",
        "days",
        "Patients who asked for reminders get one after this many days without a log.",
    ),
    "reminder_hour": SettingText(
        "Patient reminder hour",
        "(hour of the day, clinic time)",
        "Reminders are sent from this hour on.",
    ),
}
assert tuple(TEXT) == ClinicPolicy.names()

_CACHE_KEY = "rehab_clinic_policy"


def bounds(name: str) -> tuple[int, int]:
    """A setting's lowest and highest value (`ClinicPolicy`'s constraints), for the page."""
    low = high = None
    for rule in ClinicPolicy.model_fields[name].metadata:
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    assert low is not None and high is not None, name
    return low, high


def _settings() -> Settings:
    settings: Settings = current_app.config["REHAB_SETTINGS"]
    return settings


def _latest(session: Session) -> dict[str, ClinicSettingChange]:
    """Each setting's latest change, if it was ever changed."""
    latest = sa.select(sa.func.max(ClinicSettingChange.id)).group_by(ClinicSettingChange.name)
    rows = session.scalars(sa.select(ClinicSettingChange).where(ClinicSettingChange.id.in_(latest)))
    return {row.name: row for row in rows if row.name in TEXT}


def _apply(defaults: ClinicPolicy, latest: dict[str, ClinicSettingChange]) -> ClinicPolicy:
    values = defaults.model_dump()
    for name, row in latest.items():
        if row.value is None:
            continue
        try:
            ClinicPolicy.model_validate({**values, name: row.value})
        except ValidationError:
            # Only a later release narrowing a setting's bounds can leave a stored value
            # outside them: the default holds until an administrator sets it again.
            log.warning("clinic setting %s: stored value out of bounds, default used", name)
            continue
        values[name] = row.value
    return ClinicPolicy.model_validate(values)


def current(session: Session) -> ClinicPolicy:
    """The policy in effect. Read once per web request or worker task (each has its own
    application context) and kept for the rest of it."""
    cached: ClinicPolicy | None = g.get(_CACHE_KEY)
    if cached is not None:
        return cached
    policy = _apply(_settings().clinic_policy(), _latest(session))
    setattr(g, _CACHE_KEY, policy)
    return policy


@dataclass(frozen=True)
class SettingLine:
    name: str
    text: SettingText
    low: int
    high: int
    value: int
    default: int
    changed_at: dt.datetime | None
    changed_by: str

    @property
    def is_default(self) -> bool:
        return self.changed_at is None


@dataclass(frozen=True)
class ChangeLine:
    at: dt.datetime
    by: str
    label: str
    previous_value: int
    value: int | None  # None: back to the default
    default: int


@dataclass(frozen=True)
class PolicyPage:
    lines: list[SettingLine]
    history: list[ChangeLine]
    version: int  # `version`: for the form, which sends it back


HISTORY_SHOWN = 50


def policy_page(session: Session, actor: Actor) -> PolicyPage:
    """The admin's page: each setting's value, default and last change; the latest changes."""
    require_admin(actor)
    defaults = _settings().clinic_policy()
    latest = _latest(session)
    policy = _apply(defaults, latest)
    rows = list(
        session.scalars(
            sa.select(ClinicSettingChange)
            .where(ClinicSettingChange.name.in_(TEXT))
            .order_by(ClinicSettingChange.id.desc())
            .limit(HISTORY_SHOWN)
        )
    )
    user_ids = {row.changed_by_user_id for row in rows} | {
        row.changed_by_user_id for row in latest.values()
    }
    names = dict(
        session.execute(sa.select(User.id, User.display_name).where(User.id.in_(user_ids))).all()
    )
    lines = []
    for name, text in TEXT.items():
        row = latest.get(name)
        if row is not None and row.value is None:
            row = None  # set back to the default: shown as the default
        lines.append(
            SettingLine(
                name=name,
                text=text,
                low=bounds(name)[0],
                high=bounds(name)[1],
                value=getattr(policy, name),
                default=getattr(defaults, name),
                changed_at=row.changed_at if row else None,
                changed_by=names.get(row.changed_by_user_id, "") if row else "",
            )
        )
    history = [
        ChangeLine(
            at=row.changed_at,
            by=names.get(row.changed_by_user_id, ""),
            label=TEXT[row.name].label,
            previous_value=row.previous_value,
            value=row.value,
            default=getattr(defaults, row.name),
        )
        for row in rows
    ]
    return PolicyPage(lines, history, version(session))


class ChangedMeanwhile(Exception):
    """The settings were changed since the admin's page showed them (`version`)."""


def version(session: Session) -> int:
    """The latest change's id (0: none): what a page showing the settings was read at."""
    latest = session.scalar(sa.select(sa.func.max(ClinicSettingChange.id)))
    return int(latest or 0)


def change(session: Session, actor: Actor, wanted: ClinicPolicy, read_at: int) -> list[str]:
    """Store the settings whose value differs from the one in effect, one change row and
    one audit row each, and commit; returns their names. A value equal to the configured
    default is stored as "the default" (NULL), so it follows the environment again.

    `read_at`: the `version` the admin's page showed. If anyone changed a setting since,
    nothing is stored (`ChangedMeanwhile`): the page sends every value, and saving it would
    put back the other administrator's changes without a word."""
    require_admin(actor)
    assert actor.user_id is not None
    defaults = _settings().clinic_policy()
    # Two administrators saving at once: the second waits here, then finds the version
    # moved on (on SQLite the database's single writer orders them, less strictly).
    _lock_changes(session)
    if version(session) != read_at:
        raise ChangedMeanwhile
    before = _apply(defaults, _latest(session))
    changed = []
    for name in TEXT:
        old, new = getattr(before, name), getattr(wanted, name)
        if old == new:
            continue
        session.add(
            ClinicSettingChange(
                name=name,
                value=None if new == getattr(defaults, name) else new,
                previous_value=old,
                changed_by_user_id=actor.user_id,
            )
        )
        audit.record(session, actor, "clinic_settings.change", None, target=f"setting:{name}")
        changed.append(name)
    if "digest_hour" in changed:
        # (Here, not at module level: notifications reads the policy too.)
        from rehab.services import notifications

        notifications.reschedule_digests(session, wanted.digest_hour)
    if changed:
        session.flush()
        audit.commit(session)
        setattr(g, _CACHE_KEY, wanted)
    return changed


def _lock_changes(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("LOCK TABLE clinic_setting_changes IN EXCLUSIVE MODE"))
