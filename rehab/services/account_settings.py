"""A person's own account settings: her password and login address, reminder e-mails and API
device tokens."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from pydantic import StringConstraints
from sqlalchemy.orm import Session

from rehab.db import rows_matched
from rehab.db.models import ApiToken, EmailChange, User, utcnow
from rehab.services import accounts, audit, login, notifications
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
    """A logged-in person changes her password, knowing the current one. As with a password
    chosen through an e-mailed link (`login.choose_password`), every session and every API
    and device key of the account ends (whoever took over a session may have made one; the
    caller starts a fresh session for this browser), and the account's address is told.
    `InvalidInput` names `current_password` (`login.WrongPassword`) or `password`. The caller
    commits."""
    user = _own_user(session, actor)
    login.check_current_password(session, user, current, "password.change")
    if new == current:
        raise InvalidInput("password", "is your current password: choose a new one")
    login.choose_password(session, user, new, "password.change")
    now = utcnow()
    notifications.queue_account_message(
        session, user.id, notifications.PASSWORD_CHANGED, now.isoformat(), now
    )
    return user


def request_email_change(
    session: Session, actor: Actor, current: str, data: EmailChangeInput
) -> EmailChange:
    """Ask for a new login address: a message goes to that address, and the login stays as
    it is until the link in it is followed (`confirm_email_change`). A newer request replaces
    a waiting one. The answer is the same whether or not the address belongs to an account
    (that is for its own mailbox to learn: `notifications`), so the page tells nobody who
    has one. `InvalidInput` names `current_password` or `email`. The caller commits."""
    user = _own_user(session, actor)
    login.check_current_password(session, user, current, "email.change_request")
    if data.email == user.email:
        raise InvalidInput("email", "is your login address already")
    change = EmailChange(user_id=user.id, old_email=user.email, new_email=data.email)
    session.add(change)
    session.flush()
    notifications.queue_account_message(
        session, user.id, notifications.EMAIL_CONFIRM, str(change.id)
    )
    audit.record(
        session, actor, "email.change_request", actor.patient_id, target=f"email_change:{change.id}"
    )
    return change


def waiting_email_change(session: Session, actor: Actor) -> EmailChange | None:
    """The change of address waiting for its confirmation, if its link still works."""
    user = _own_user(session, actor)
    change = accounts.latest_email_change(session, user.id)
    return change if change is not None and accounts.email_change_usable(user, change) else None


def confirm_email_change(session: Session, change: EmailChange, password: str) -> User:
    """The new address confirms the change (`accounts.email_change_for_link`), with the
    account's password (a mistyped address's owner does not know it): it is the login from
    now on, and the old address is told. A confirmation already made (a double click) is
    `InvalidInput` on "token"; an address another account has is `InvalidInput` on "email"
    (the caller also answers so if the database's unique address refuses it at commit).
    The caller commits."""
    user = session.get(User, change.user_id)
    if user is None:
        raise NotFound("user")
    login.check_current_password(session, user, password, "email.change", field="password")
    if accounts.email_taken(session, change.new_email):
        raise InvalidInput("email", "is registered to another account")
    now = utcnow()
    confirmed = session.execute(
        sa.update(EmailChange)
        .where(EmailChange.id == change.id, EmailChange.confirmed_at.is_(None))
        .values(confirmed_at=now)
        .execution_options(synchronize_session="fetch")
    )
    if not rows_matched(confirmed):
        raise InvalidInput("token", "this link was already used")
    user.email = change.new_email
    session.flush()
    notifications.queue_account_message(
        session, user.id, notifications.EMAIL_CHANGED, str(change.id), now
    )
    actor = accounts.actor_for(user)
    audit.record(
        session, actor, "email.change", actor.patient_id, target=f"email_change:{change.id}"
    )
    return user
