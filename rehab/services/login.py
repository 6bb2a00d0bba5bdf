"""The login use case: password check with account lockout, then (for clinicians and
admins) the TOTP second factor; and "Forgot your password?", which e-mails a one-time link.
Every outcome is audited; the answer to a failure is the same whether the account exists,
the password is wrong or the account is locked."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import User, utcnow
from rehab.domain.vocabulary import AuditOutcome, Role
from rehab.services import accounts, audit, notifications, sessions, two_factor
from rehab.services.actors import Actor
from rehab.services.commands import InvalidInput

# After this many failures in a row the account is locked for LOCK_FOR (ASVS 2.2.1); the
# per-IP and per-account rate limits (flask-limiter) slow guessing before that.
LOCK_AFTER_FAILURES = 10
LOCK_FOR = dt.timedelta(minutes=15)
SECOND_FACTOR_ROLES = (Role.CLINICIAN, Role.ADMIN)


@dataclass(frozen=True)
class PasswordOutcome:
    user: User | None
    needs_second_factor: bool = False


def _anonymous_for(user: User | None) -> Actor:
    return Actor(user.id if user else None, user.role if user else None)


def check_password(
    session: Session, email: str, password: str, *, totp_required: bool
) -> PasswordOutcome:
    now = utcnow()
    user = session.scalars(sa.select(User).where(User.email == email.strip().lower())).first()
    locked = user is not None and user.locked_until is not None and user.locked_until > now
    # Verify even when locked or unknown: the same work, the same answer, the same time.
    verified = accounts.authenticate(session, email, password)
    if locked or verified is None:
        if user is not None and not locked:
            _count_failure(session, user, _anonymous_for(user), now)
        audit.record(session, _anonymous_for(user), "login", None, AuditOutcome.DENIED)
        return PasswordOutcome(None)
    verified.failed_logins = 0
    verified.locked_until = None
    needs = totp_required and verified.role in SECOND_FACTOR_ROLES
    if needs:
        audit.record(session, accounts.actor_for(verified), "login.password", None)
    return PasswordOutcome(verified, needs_second_factor=needs)


def _count_failure(session: Session, user: User, actor: Actor, now: dt.datetime) -> bool:
    """One more wrong password in a row; at LOCK_AFTER_FAILURES the account is locked for
    LOCK_FOR (audited). Returns whether it was locked now."""
    user.failed_logins += 1
    if user.failed_logins < LOCK_AFTER_FAILURES:
        return False
    user.locked_until = now + LOCK_FOR
    user.failed_logins = 0
    audit.record(session, actor, "login.lockout", None, AuditOutcome.DENIED)
    return True


class WrongPassword(InvalidInput):
    """The current password, asked for before a change to the login, was wrong. The caller
    commits before answering, so that the failure counts towards the lockout."""

    def __init__(self, field: str) -> None:
        super().__init__(field, "is not your current password")


def check_current_password(
    session: Session, user: User, password: str, action: str, field: str = "current_password"
) -> None:
    """A change to the login (password, address) asks for the password: a session left open
    on a shared computer is not enough. A wrong one is audited as a denied `action` and
    counts as a failed login: at the lockout every session of the account ends as well (ten
    guesses from a session are not its owner's)."""
    if accounts.authenticate(session, user.email, password) is not None:
        return
    actor = accounts.actor_for(user)
    if _count_failure(session, user, actor, utcnow()):
        sessions.end_all(session, user.id)
    audit.record(session, actor, action, None, AuditOutcome.DENIED)
    raise WrongPassword(field)


def check_second_factor(session: Session, user: User, secret: str, code: str) -> bool:
    """Verify a TOTP code (enrolment: `secret` not yet saved on the user). A used code is
    refused (replay)."""
    step = two_factor.accepted_step(secret, code, user.totp_last_step)
    actor = accounts.actor_for(user)
    if step is None:
        audit.record(session, actor, "login.second_factor", None, AuditOutcome.DENIED)
        return False
    if user.totp_secret != secret:
        user.totp_secret = secret
        audit.record(session, actor, "two_factor.enrol", None)
    user.totp_last_step = step
    return True


def choose_password(session: Session, user: User, password: str, action: str) -> None:
    """A password chosen through a one-time link (an invitation: `password.set`; "Forgot
    your password?": `password.reset`): every session of the account ends, and so does
    every API and device key (whoever knew the old password may have made one); audited.
    `InvalidInput` when the password policy refuses it. The caller commits."""
    accounts.set_password(session, user, password)
    sessions.end_all(session, user.id)
    actor = accounts.actor_for(user)
    if accounts.revoke_all_api_tokens(session, user):
        audit.record(session, actor, "api_token.revoke_all", None)
    audit.record(session, actor, action, None)


def request_password_reset(session: Session, email: str) -> None:
    """ "Forgot your password?": an active account with this address gets the e-mail with a
    one-time link (`notifications.queue_password_reset`, at most one per few minutes). The
    caller answers the same whatever happened here, so the page tells nobody whether an
    address has an account. Audited either way (an unknown address as an anonymous attempt;
    the address itself is never stored). The caller commits."""
    user = accounts.user_by_email(session, email)
    if user is None or not user.is_active:
        audit.record(
            session, _anonymous_for(user), "password.reset_request", None, AuditOutcome.DENIED
        )
        return
    queued = notifications.queue_password_reset(session, user.id)
    audit.record(
        session,
        accounts.actor_for(user),
        "password.reset_request",
        None,
        AuditOutcome.ALLOWED if queued is not None else AuditOutcome.DENIED,
        target=f"notification:{queued}" if queued is not None else None,
    )
