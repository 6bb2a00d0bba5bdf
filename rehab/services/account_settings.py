"""A person's own account settings: her password, reminder e-mails and API device tokens."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from pydantic import StringConstraints
from sqlalchemy.orm import Session

from rehab.db.models import ApiToken, User
from rehab.domain.vocabulary import AuditOutcome
from rehab.services import accounts, audit, notifications, sessions
from rehab.services.access import NotFound
from rehab.services.actors import Actor
from rehab.services.commands import Command, InvalidInput

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
    if accounts.authenticate(session, user.email, current) is None:
        audit.record(session, actor, "password.change", None, AuditOutcome.DENIED)
        raise InvalidInput("current_password", "is not your current password")
    if new == current:
        raise InvalidInput("password", "is your current password: choose a new one")
    accounts.set_password(session, user, new)
    sessions.end_all(session, user.id)
    notifications.queue_account_notice(session, user.id, notifications.PASSWORD_CHANGED)
    audit.record(session, actor, "password.change", None)
    return user
