"""Accounts: password hashing (argon2id), one-time invitations, API tokens, patient creation."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.orm import Session, joinedload

from rehab.db import execute_core, rows_matched
from rehab.db.models import (
    ApiToken,
    CareTeamMember,
    Clinician,
    EmailChange,
    Patient,
    User,
    utcnow,
)
from rehab.domain.vocabulary import AuditOutcome, Role
from rehab.services import audit, password_policy
from rehab.services.access import require_patient
from rehab.services.actors import Actor
from rehab.services.commands import InvalidInput, PatientDetailsInput, PatientInput

# argon2-cffi's defaults are argon2id with RFC 9106's "low memory" profile.
_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = password_policy.MIN_LENGTH
API_TOKEN_PREFIX = "rhb_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


# A real hash to verify against when the account does not exist, so that unknown e-mail
# addresses take as long as wrong passwords (no account enumeration by timing).
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def user_by_email(session: Session, email: str) -> User | None:
    """The account with this address (addresses are stored stripped and lower-case)."""
    return session.scalars(sa.select(User).where(User.email == email.strip().lower())).first()


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = user_by_email(session, email)
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.password_hash or not user.is_active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def actor_for(user: User) -> Actor:
    return Actor(
        user_id=user.id,
        role=user.role,
        patient_id=user.patient.id if user.patient else None,
        clinician_id=user.clinician.id if user.clinician else None,
    )


# --- invitations --------------------------------------------------------------------------


INVITE = "rehab.invite"
PASSWORD_RESET = "rehab.password-reset"
EMAIL_CHANGE = "rehab.email-change"
# How long the link confirming a new login address works.
EMAIL_CHANGE_VALID_HOURS = 24


def _link_serializer(secret_key: str, purpose: str) -> URLSafeTimedSerializer:
    # The purpose is the salt: an invitation's token does not open the reset page, nor the
    # other way round.
    return URLSafeTimedSerializer(secret_key, salt=purpose)


def _password_fingerprint(user: User) -> str:
    # Part of the signed token: once a password is set the fingerprint changes and the link
    # stops working, which makes it one-time without storing it. The e-mail is part of it
    # too: a link made before the address was corrected (it may have gone to someone else)
    # stops working with the correction.
    state = f"{user.password_hash or 'unset'}\n{user.email}"
    return hashlib.sha256(state.encode()).hexdigest()[:16]


def make_email_change_token(user: User, change: EmailChange, secret_key: str) -> str:
    """The link that confirms a change of login address, sent to the new address. Its
    fingerprint is the account's (password and address): once the change is confirmed, or
    the password changes, the link stops working."""
    payload = [change.id, _password_fingerprint(user)]
    return _link_serializer(secret_key, EMAIL_CHANGE).dumps(payload)


def email_change_usable(user: User, change: EmailChange) -> bool:
    """Whether a change may still be confirmed (or its link sent): not confirmed, asked for
    less than EMAIL_CHANGE_VALID_HOURS ago, and no password chosen since (whoever changed the
    password, perhaps to shut someone out, did not necessarily ask for the address). The
    caller checks that it is the account's latest request (`latest_email_change`)."""
    if change.confirmed_at is not None or change.user_id != user.id or not user.is_active:
        return False
    if utcnow() - change.requested_at >= dt.timedelta(hours=EMAIL_CHANGE_VALID_HOURS):
        return False
    changed = user.password_changed_at
    return changed is None or changed <= change.requested_at


def email_change_for_link(session: Session, token: str, secret_key: str) -> EmailChange:
    """The change a confirmation link is for, if it is still usable and the account's latest
    request; `InvalidInput` (field "token") otherwise."""
    change_id, fingerprint = _link_payload(
        token, secret_key, EMAIL_CHANGE, EMAIL_CHANGE_VALID_HOURS * 3600
    )
    change = session.get(EmailChange, change_id) if isinstance(change_id, int) else None
    user = session.get(User, change.user_id) if change is not None else None
    if (
        change is None
        or user is None
        or _password_fingerprint(user) != fingerprint
        or latest_email_change(session, user.id) is not change
        or not email_change_usable(user, change)
    ):
        raise InvalidInput(
            "token", "this link was already used, or a newer change was asked for since"
        )
    return change


def latest_email_change(session: Session, user_id: int) -> EmailChange | None:
    """The account's latest change of address not confirmed yet (an older one gave way)."""
    latest = session.scalars(
        sa.select(EmailChange)
        .where(EmailChange.user_id == user_id)
        .order_by(EmailChange.id.desc())
        .limit(1)
    ).first()
    return latest if latest is not None and latest.confirmed_at is None else None


def _link_payload(token: str, secret_key: str, purpose: str, max_age_seconds: int) -> list[Any]:
    """The [id, fingerprint] a one-time link signs, or `InvalidInput` (field "token")."""
    try:
        payload = _link_serializer(secret_key, purpose).loads(token, max_age=max_age_seconds)
    except SignatureExpired:
        raise InvalidInput("token", "this link has expired; ask for a new one") from None
    except BadSignature:
        raise InvalidInput("token", "this link is not valid") from None
    if not isinstance(payload, list) or len(payload) != 2:
        raise InvalidInput("token", "this link is not valid")
    return payload


def make_link_token(user: User, secret_key: str, purpose: str = INVITE) -> str:
    """A one-time set-password link's token: an invitation, or a reset asked for by e-mail."""
    return _link_serializer(secret_key, purpose).dumps([user.id, _password_fingerprint(user)])


def make_invite_token(user: User, secret_key: str) -> str:
    return make_link_token(user, secret_key, INVITE)


def user_for_link(
    session: Session, token: str, secret_key: str, max_age_seconds: int, purpose: str = INVITE
) -> User:
    user_id, fingerprint = _link_payload(token, secret_key, purpose, max_age_seconds)
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.is_active or _password_fingerprint(user) != fingerprint:
        raise InvalidInput("token", "this link was already used or is not valid")
    return user


def revoke_all_api_tokens(session: Session, user: User) -> int:
    """Every device key and API key of the account stops working (a new password: whoever
    knew the old one may have made one)."""
    result = session.execute(
        sa.update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return rows_matched(result)


def set_password(session: Session, user: User, password: str) -> None:
    password_policy.check(password, email=user.email or "")
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.session_epoch = (user.session_epoch or 0) + 1
    # Whoever holds the e-mailed link proved the address: a lockout from failed guesses ends.
    user.failed_logins = 0
    user.locked_until = None


# --- API tokens ---------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(session: Session, user: User, device_name: str) -> tuple[ApiToken, str]:
    """Create a device token; the clear token is returned once and never stored."""
    clear = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=device_name[:80], token_hash=token_hash(clear))
    session.add(token)
    session.flush()
    return token, clear


# The user, and the patient or clinician behind them (which actor_for() reads), in one round
# trip instead of three.
_TOKEN_LOOKUP = (
    sa.select(ApiToken)
    .where(ApiToken.token_hash == sa.bindparam("token_hash"), ApiToken.revoked_at.is_(None))
    .options(
        joinedload(ApiToken.user).joinedload(User.patient),
        joinedload(ApiToken.user).joinedload(User.clinician),
    )
)


def user_for_api_token(session: Session, clear: str) -> User | None:
    token = session.scalars(_TOKEN_LOOKUP, {"token_hash": token_hash(clear)}).first()
    if token is None or not token.user.is_active:
        return None
    now = utcnow()
    # Touch at most once a minute: a write per request would double the cost of logging.
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1):
        token.last_used_at = now
    return token.user


# Every API request starts here: one query, plain columns (no objects to load), and the
# patient or clinician id that the access check needs.
_TOKENS = cast(sa.Table, ApiToken.__table__)
_USERS = cast(sa.Table, User.__table__)
_PATIENTS = cast(sa.Table, Patient.__table__)
_CLINICIANS = cast(sa.Table, Clinician.__table__)
# Table columns, not ORM attributes: a plain Core statement skips the ORM's result layer.
_ACTOR_FOR_TOKEN = (
    sa.select(
        _TOKENS.c.id,
        _TOKENS.c.last_used_at,
        _USERS.c.id.label("user_id"),
        _USERS.c.role,
        _PATIENTS.c.id.label("patient_id"),
        _CLINICIANS.c.id.label("clinician_id"),
    )
    .select_from(_TOKENS)
    .join(_USERS, _USERS.c.id == _TOKENS.c.user_id)
    .outerjoin(_PATIENTS, _PATIENTS.c.user_id == _USERS.c.id)
    .outerjoin(_CLINICIANS, _CLINICIANS.c.user_id == _USERS.c.id)
    .where(
        _TOKENS.c.token_hash == sa.bindparam("token_hash"),
        _TOKENS.c.revoked_at.is_(None),
        _USERS.c.is_active,
    )
)
_TOUCH_TOKEN = (
    sa.update(_TOKENS)
    .where(_TOKENS.c.id == sa.bindparam("token_id"))
    .values(last_used_at=sa.bindparam("now", type_=_TOKENS.c.last_used_at.type))
)


def actor_for_api_token(session: Session, clear: str) -> Actor | None:
    """`actor_for(user_for_api_token(...))` in one query and without ORM objects: the same
    rules (token not revoked, user active; last use touched at most once a minute, in the
    request's transaction)."""
    row = execute_core(session, _ACTOR_FOR_TOKEN, {"token_hash": token_hash(clear)}).first()
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=1):
        execute_core(session, _TOUCH_TOKEN, {"token_id": row.id, "now": now})
    return Actor(
        user_id=row.user_id,
        role=row.role,
        patient_id=row.patient_id,
        clinician_id=row.clinician_id,
    )


def revoke_api_token(session: Session, user: User, token_id: int) -> bool:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    return True


# --- people -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewPatient:
    patient: Patient
    invite_token: str


def create_patient(
    session: Session, actor: Actor, data: PatientInput, secret_key: str
) -> NewPatient:
    """A clinician adds a patient to one of their care teams and gets a one-time link."""
    member = session.scalar(
        sa.select(CareTeamMember).where(
            CareTeamMember.care_team_id == data.care_team_id,
            CareTeamMember.clinician_id == actor.clinician_id,
        )
    )
    if not actor.is_clinician or member is None:
        raise InvalidInput("care_team_id", "is not one of your care teams")
    if email_taken(session, data.email):
        raise InvalidInput("email", "is already registered")
    user = User(email=data.email, display_name=data.display_name, role=Role.PATIENT)
    patient = Patient(
        user=user,
        care_team_id=data.care_team_id,
        year_of_birth=data.year_of_birth,
        condition_summary=data.condition_summary,
    )
    session.add(patient)
    session.flush()
    audit.record(session, actor, "patient.create", patient.id, AuditOutcome.ALLOWED)
    audit.commit(session)
    return NewPatient(patient, make_invite_token(user, secret_key))


def update_patient_details(
    session: Session, actor: Actor, patient_id: int, data: PatientDetailsInput
) -> Patient:
    """A clinician of the care team corrects the patient's name, year of birth or working
    summary, and her e-mail while the invitation is pending: once she has set a password the
    address is her login (and where a reset link goes), not the clinic's to move."""
    patient = require_patient(session, actor, patient_id, "patient.update", clinician_only=True)
    user = patient.user
    if data.email != user.email:
        if user.password_hash is not None:
            raise InvalidInput(
                "email", "is the patient's login now that she has set a password: it stays"
            )
        if email_taken(session, data.email):
            raise InvalidInput("email", "is already registered")
        user.email = data.email
    user.display_name = data.display_name
    patient.year_of_birth = data.year_of_birth
    patient.condition_summary = data.condition_summary
    audit.commit(session)
    return patient


def invitation_pending(session: Session, patient_id: int) -> bool:
    """Whether the patient has yet to set a password (the caller has checked access)."""
    password_hash = session.scalar(
        sa.select(User.password_hash)
        .join(Patient, Patient.user_id == User.id)
        .where(Patient.id == patient_id)
    )
    return password_hash is None


def new_patient_invite(
    session: Session, actor: Actor, patient_id: int, secret_key: str
) -> tuple[Patient, str]:
    """A fresh set-password link for a patient of the care team who has not set a password
    (the first one expired, or went to a mistyped address)."""
    patient = require_patient(session, actor, patient_id, "patient.invite", clinician_only=True)
    token = fresh_invite_token(patient.user, secret_key)
    audit.commit(session)
    return patient, token


def fresh_invite_token(user: User, secret_key: str) -> str:
    """A new set-password link's token, for an account whose password was never set (the
    admin's for any account, a clinician's for a patient of the care team)."""
    if user.password_hash is not None:
        raise InvalidInput("user", "has already set a password")
    if not user.is_active:
        raise InvalidInput("user", "is disabled: the account must be enabled first")
    return make_invite_token(user, secret_key)


def email_taken(session: Session, email: str) -> bool:
    return session.scalar(sa.select(User.id).where(User.email == email)) is not None


def create_staff_user(
    session: Session, email: str, display_name: str, role: Role, password: str | None
) -> User:
    """Clinician or admin account (admin pages and the demo use it)."""
    user = User(email=email.strip().lower(), display_name=display_name, role=role)
    if password is not None:
        set_password(session, user, password)
    if role is Role.CLINICIAN:
        user.clinician = Clinician()
    session.add(user)
    session.flush()
    return user
