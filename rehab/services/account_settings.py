"""A person's own account settings: her password and login address, reminder e-mails and API
device tokens."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from pydantic import StringConstraints
from sqlalchemy.orm import Session

from rehab.db.models import ApiToken, EmailChange, User, utcnow
from rehab.domain.vocabulary import AuditOutcome
from rehab.services import accounts, audit, notifications, sessions
from rehab.services.access import NotFound
from rehab.services.actors import Actor
from rehab.services.commands import Command, EmailChangeInput, InvalidInput

MAX_ACTIVE_TOKENS = 20


class DeviceTokenInput(Command):
    device_name: Annotated[
        str, StringConstraints(min_length=1, max_length=80, strip_whitespace=True)
    ]


def _own_user(session: Session, actor: Actor) -> User:
    user = session.get(User, actor.user_id) if actor.user_id is not None else None
    if user is None:
        raise NotFound("user")
    return user


def reminder_opt_in(session: Session, actor: Actor) -> bool:
    return _own_user(session, actor).reminder_opt_in


def set_reminder_opt_in(session: Session, actor: Actor, opt_in: bool) -> None:
    user = _own_user(session, actor)
    user.reminder_opt_in = opt_in
    audit.record(session, actor, "account.reminders", None, target=f"user:{user.id}")
    audit.commit(session)


def list_device_tokens(session: Session, actor: Actor) -> list[ApiToken]:
    """The actor's tokens, newest first, revoked ones included (greyed out by the page)."""
    _own_user(session, actor)
    return list(
        session.scalars(
            sa.select(ApiToken)
            .where(ApiToken.user_id == actor.user_id)
            .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc())
        )
    )


def create_device_token(session: Session, actor: Actor, data: DeviceTokenInput) -> str:
    """A new token; the clear value is returned once and never stored."""
    user = _own_user(session, actor)
    active = session.scalar(
        sa.select(sa.func.count(ApiToken.id)).where(
            ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
        )
    )
    if (active or 0) >= MAX_ACTIVE_TOKENS:
        raise InvalidInput("device_name", f"at most {MAX_ACTIVE_TOKENS} devices; revoke one")
    token, clear = accounts.issue_api_token(session, user, data.device_name)
    audit.record(session, actor, "api_token.create", None, target=f"api_token:{token.id}")
    audit.commit(session)
    return clear


def revoke_device_token(session: Session, actor: Actor, token_id: int) -> None:
    user = _own_user(session, actor)
    if not accounts.revoke_api_token(session, user, token_id):
        raise NotFound(f"token {token_id}")
    audit.record(session, actor, "api_token.revoke", None, target=f"api_token:{token_id}")
    audit.commit(session)


def change_password(session: Session, actor: Actor, current: str, new: str) -> User:
    """A logged-in person changes her password, knowing the current one. Every session of
    the account ends (the caller starts a fresh one for the browser she is using); her device
    and API keys stay (her keys page lists them); the account's address gets a notice, so a
    change she did not make does not go unseen. `InvalidInput` names `current_password` or
    `password`; a wrong current password is audited as denied. The caller commits."""
    user = _own_user(session, actor)
    _check_current_password(session, actor, user, current, "password.change")
    if new == current:
        raise InvalidInput("password", "is your current password: choose a new one")
    accounts.set_password(session, user, new)
    sessions.end_all(session, user.id)
    notifications.queue_account_notice(session, user.id, notifications.PASSWORD_CHANGED)
    audit.record(session, actor, "password.change", None)
    return user


def _check_current_password(
    session: Session, actor: Actor, user: User, current: str, action: str
) -> None:
    """A change to the login asks for the current password (a session left open on a shared
    computer is not enough); a wrong one is audited as a denied `action`."""
    if accounts.authenticate(session, user.email, current) is None:
        audit.record(session, actor, action, None, AuditOutcome.DENIED)
        raise InvalidInput("current_password", "is not your current password")


def request_email_change(
    session: Session, actor: Actor, current: str, data: EmailChangeInput
) -> EmailChange:
    """Ask for a new login address: a link to confirm it goes to that address, and the
    login stays as it is until it is followed (`confirm_email_change`). A newer request
    replaces a waiting one. `InvalidInput` names `current_password` or `email`. The caller
    commits."""
    user = _own_user(session, actor)
    _check_current_password(session, actor, user, current, "email.change_request")
    if data.email == user.email:
        raise InvalidInput("email", "is your login address already")
    if accounts.email_taken(session, data.email):
        raise InvalidInput("email", "is already registered")
    change = EmailChange(user_id=user.id, old_email=user.email, new_email=data.email)
    session.add(change)
    session.flush()
    notifications.queue_email_change(session, user.id, change.id, notifications.EMAIL_CONFIRM)
    audit.record(session, actor, "email.change_request", None, target=f"email_change:{change.id}")
    return change


def waiting_email_change(session: Session, actor: Actor) -> EmailChange | None:
    """The change of address waiting for its confirmation, if its link still works."""
    change = accounts.latest_email_change(session, _own_user(session, actor).id)
    if change is None:
        return None
    age = utcnow() - change.requested_at
    return change if age.total_seconds() < accounts.EMAIL_CHANGE_VALID_HOURS * 3600 else None


def confirm_email_change(session: Session, change: EmailChange) -> User:
    """The new address confirmed the change (`accounts.email_change_for_link`): it is the
    login from now on, and the old address is told. `InvalidInput` (field "email") if another
    account took the address meanwhile. The caller commits."""
    user = session.get(User, change.user_id)
    if user is None:
        raise NotFound("user")
    if accounts.email_taken(session, change.new_email):
        raise InvalidInput("email", "is registered to another account now")
    user.email = change.new_email
    change.confirmed_at = utcnow()
    notifications.queue_email_change(session, user.id, change.id, notifications.EMAIL_CHANGED)
    audit.record(
        session, accounts.actor_for(user), "email.change", None, target=f"email_change:{change.id}"
    )
    return user
