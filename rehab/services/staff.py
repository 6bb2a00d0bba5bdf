"""Administration: staff accounts, enabling and disabling users, care-team membership, and
reading the audit log. Admins manage people; they never see clinical data.

Every function checks that the actor is an admin (the pages do too) and audits what it changes
with `patient_id=None`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import Field, StringConstraints, model_validator
from sqlalchemy.orm import Session, selectinload

from rehab.db.models import AuditEvent, CareTeam, CareTeamMember, Clinician, Patient, User
from rehab.domain.vocabulary import AuditOutcome, Role
from rehab.services import accounts, audit
from rehab.services.access import NotFound, require_admin
from rehab.services.actors import Actor
from rehab.services.commands import ClinicDate, Command, EmailAddress, InvalidInput
from rehab.services.paging import page_bounds

AUDIT_PAGE_SIZE = 50


class StaffInput(Command):
    display_name: Annotated[
        str, StringConstraints(min_length=1, max_length=120, strip_whitespace=True)
    ]
    email: EmailAddress
    role: Literal[Role.CLINICIAN, Role.ADMIN]


class CareTeamInput(Command):
    name: Annotated[str, StringConstraints(min_length=1, max_length=120, strip_whitespace=True)]


class AuditQuery(Command):
    user_id: Annotated[int, Field(gt=0, lt=2**31)] | None = None
    patient_id: Annotated[int, Field(gt=0, lt=2**31)] | None = None
    action: Annotated[str, StringConstraints(max_length=64, strip_whitespace=True)] = ""
    date_from: ClinicDate | None = None
    date_to: ClinicDate | None = None
    page: Annotated[int, Field(ge=1, le=100_000)] = 1

    @model_validator(mode="after")
    def _ordered(self) -> AuditQuery:
        if self.date_from and self.date_to and self.date_to < self.date_from:
            raise ValueError("date_to: is before date_from")
        return self


def _user_target(user_id: int) -> str:
    return f"user:{user_id}"


# --- users --------------------------------------------------------------------------------


def list_users(session: Session, actor: Actor) -> list[User]:
    """Every account, for managing them; patients' names and addresses among them, so the
    read is audited against each patient listed."""
    require_admin(actor)
    rows = session.execute(
        sa.select(User, Patient.id)
        .outerjoin(Patient, Patient.user_id == User.id)
        .order_by(User.role, User.display_name, User.id)
    ).all()
    audit.record_per_patient(
        session, actor, "user.list", (pid for _, pid in rows if pid is not None)
    )
    return [user for user, _ in rows]


def create_staff(
    session: Session, actor: Actor, data: StaffInput, secret_key: str
) -> tuple[User, str]:
    """A clinician or admin account without a password, and its one-time set-password token."""
    require_admin(actor)
    if accounts.email_taken(session, data.email):
        raise InvalidInput("email", "is already registered")
    user = accounts.create_staff_user(
        session, data.email, data.display_name, Role(data.role), password=None
    )
    audit.record(session, actor, "user.create", None, target=_user_target(user.id))
    audit.commit(session)
    return user, accounts.make_invite_token(user, secret_key)


def new_invite(session: Session, actor: Actor, user_id: int, secret_key: str) -> tuple[User, str]:
    """A fresh set-password link for an account whose password was never set."""
    require_admin(actor)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id}")
    token = accounts.fresh_invite_token(user, secret_key)
    audit.record(session, actor, "user.invite", None, target=_user_target(user.id))
    audit.commit(session)
    return user, token


def set_active(
    session: Session, actor: Actor, user_id: int, active: bool
) -> tuple[User, list[UnattendedTeam]]:
    """Enable or disable an account; disabling ends every session of that user at once.
    Also returns the care teams this left with patients and no active clinician."""
    require_admin(actor)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id}")
    if not active and user.id == actor.user_id:
        raise InvalidInput("user", "you cannot disable your own account")
    before = _unattended_ids(session)
    if user.is_active != active:
        user.is_active = active
        if not active:
            user.session_epoch = (user.session_epoch or 0) + 1
    audit.record(
        session,
        actor,
        "user.enable" if active else "user.disable",
        None,
        target=_user_target(user.id),
    )
    left = _left_unattended(session, before)
    audit.commit(session)
    return user, left


# --- care teams -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClinicianItem:
    clinician_id: int
    user_id: int
    name: str
    email: str
    active: bool


@dataclass(frozen=True)
class TeamItem:
    team_id: int
    name: str
    members: list[ClinicianItem]
    patient_count: int


def _clinician_item(clinician: Clinician) -> ClinicianItem:
    return ClinicianItem(
        clinician_id=clinician.id,
        user_id=clinician.user_id,
        name=clinician.user.display_name,
        email=clinician.user.email,
        active=clinician.user.is_active,
    )


def list_clinicians(session: Session, actor: Actor) -> list[ClinicianItem]:
    require_admin(actor)
    clinicians = session.scalars(
        sa.select(Clinician)
        .join(User, User.id == Clinician.user_id)
        .order_by(User.display_name, Clinician.id)
        .options(selectinload(Clinician.user))
    )
    return [_clinician_item(c) for c in clinicians]


def list_care_teams(session: Session, actor: Actor) -> list[TeamItem]:
    require_admin(actor)
    counts: dict[int, int] = {
        team_id: count
        for team_id, count in session.execute(
            sa.select(Patient.care_team_id, sa.func.count(Patient.id)).group_by(
                Patient.care_team_id
            )
        )
    }
    teams = session.scalars(
        sa.select(CareTeam)
        .order_by(CareTeam.name)
        .options(
            selectinload(CareTeam.members)
            .selectinload(CareTeamMember.clinician)
            .selectinload(Clinician.user)
        )
    )
    return [
        TeamItem(
            team_id=team.id,
            name=team.name,
            members=sorted(
                (_clinician_item(m.clinician) for m in team.members),
                key=lambda c: (c.name.casefold(), c.clinician_id),
            ),
            patient_count=counts.get(team.id, 0),
        )
        for team in teams
    ]


@dataclass(frozen=True)
class UnattendedTeam:
    team_id: int
    name: str
    patient_count: int


def unattended_teams(session: Session) -> list[UnattendedTeam]:
    """Care teams with patients and no active clinician: no one can open those records, and
    their alerts are stored but e-mailed to no one (`notifications.queue_for_alerts` writes
    to the team's active clinicians). Disabling a clinician or taking her off a team is never
    refused (a departure or a stolen account cannot wait), so this says what it left behind.
    Names and counts only: no patient."""
    attended = (
        sa.select(CareTeamMember.care_team_id)
        .join(Clinician, Clinician.id == CareTeamMember.clinician_id)
        .join(User, User.id == Clinician.user_id)
        .where(User.is_active.is_(True))
    )
    rows = session.execute(
        sa.select(CareTeam.id, CareTeam.name, sa.func.count(Patient.id))
        .join(Patient, Patient.care_team_id == CareTeam.id)
        .where(CareTeam.id.not_in(attended))
        .group_by(CareTeam.id, CareTeam.name)
        .order_by(CareTeam.name, CareTeam.id)
    )
    return [UnattendedTeam(team_id, name, count) for team_id, name, count in rows]


def _unattended_ids(session: Session) -> set[int]:
    return {team.team_id for team in unattended_teams(session)}


def _left_unattended(session: Session, before: set[int]) -> list[UnattendedTeam]:
    session.flush()
    return [team for team in unattended_teams(session) if team.team_id not in before]


def create_care_team(session: Session, actor: Actor, data: CareTeamInput) -> CareTeam:
    require_admin(actor)
    if session.scalar(sa.select(CareTeam.id).where(CareTeam.name == data.name)) is not None:
        raise InvalidInput("name", "a care team with this name exists")
    team = CareTeam(name=data.name)
    session.add(team)
    session.flush()
    audit.record(session, actor, "care_team.create", None, target=f"care_team:{team.id}")
    audit.commit(session)
    return team


def add_member(session: Session, actor: Actor, team_id: int, clinician_id: int) -> None:
    require_admin(actor)
    team = session.get(CareTeam, team_id)
    clinician = session.get(Clinician, clinician_id)
    if team is None:
        raise NotFound(f"care team {team_id}")
    if clinician is None:
        raise InvalidInput("clinician_id", "is not a clinician")
    if session.get(CareTeamMember, (team_id, clinician_id)) is not None:
        raise InvalidInput("clinician_id", "is already on this care team")
    session.add(CareTeamMember(care_team_id=team_id, clinician_id=clinician_id))
    audit.record(session, actor, "care_team.member_add", None, target=f"clinician:{clinician_id}")
    audit.commit(session)


def remove_member(
    session: Session, actor: Actor, team_id: int, clinician_id: int
) -> list[UnattendedTeam]:
    """Take a clinician off a team; returns the team if this left it with patients and no
    active clinician."""
    require_admin(actor)
    member = session.get(CareTeamMember, (team_id, clinician_id))
    if member is None:
        raise NotFound(f"member {clinician_id} of care team {team_id}")
    before = _unattended_ids(session)
    session.delete(member)
    audit.record(
        session, actor, "care_team.member_remove", None, target=f"clinician:{clinician_id}"
    )
    left = _left_unattended(session, before)
    audit.commit(session)
    return left


# --- audit log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditEvent]
    total: int
    page: int
    pages: int


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def search_audit(
    session: Session, actor: Actor, query: AuditQuery, page_size: int = AUDIT_PAGE_SIZE
) -> AuditPage:
    """Audit rows matching the filters, newest first; dates are UTC days, both ends included;
    `action` matches as a prefix ("patient." finds every patient.* action)."""
    require_admin(actor)
    conditions: list[sa.ColumnElement[bool]] = []
    if query.user_id is not None:
        conditions.append(AuditEvent.user_id == query.user_id)
    if query.patient_id is not None:
        conditions.append(AuditEvent.patient_id == query.patient_id)
    if query.action:
        escaped = query.action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(AuditEvent.action.like(f"{escaped}%", escape="\\"))
    if query.date_from is not None:
        conditions.append(AuditEvent.at >= _day_start(query.date_from))
    if query.date_to is not None:
        conditions.append(AuditEvent.at < _day_start(query.date_to + dt.timedelta(days=1)))
    total = session.scalar(sa.select(sa.func.count(AuditEvent.id)).where(*conditions)) or 0
    page, pages = page_bounds(total, query.page, page_size)
    rows = list(
        session.scalars(
            sa.select(AuditEvent)
            .where(*conditions)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
    )
    audit.record(session, actor, "audit.read", None, AuditOutcome.ALLOWED)
    return AuditPage(rows=rows, total=total, page=page, pages=pages)
