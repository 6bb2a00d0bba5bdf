"""Server-side login sessions: each login gets a row, so a session can be ended from the
server (logout, account disabled, password changed) and expires when idle or too old."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db import rows_matched
from rehab.db.models import UserSession, utcnow

# Writing last_seen on every request would double the cost of a page view; a minute of
# slack on a 30-minute idle limit is harmless.
TOUCH_EVERY = dt.timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: Session, user_id: int) -> str:
    """Open a session; returns the token for the browser (stored hashed)."""
    token = secrets.token_urlsafe(32)
    session.add(UserSession(user_id=user_id, token_hash=_hash(token)))
    return token


def is_valid(
    session: Session,
    user_id: int,
    token: str,
    *,
    idle: dt.timedelta,
    absolute: dt.timedelta,
    now: dt.datetime | None = None,
) -> bool:
    """True if the session is open, belongs to `user_id` and is within both time limits.
    Refreshes its last-seen time (commits) at most once a minute."""
    now = now or utcnow()
    row = session.scalars(
        sa.select(UserSession).where(UserSession.token_hash == _hash(token))
    ).first()
    if row is None or row.user_id != user_id or row.ended_at is not None:
        return False
    if now - row.created_at > absolute or now - row.last_seen_at > idle:
        row.ended_at = now
        session.commit()
        return False
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
        session.commit()
    return True


def end(session: Session, token: str) -> None:
    session.execute(
        sa.update(UserSession)
        .where(UserSession.token_hash == _hash(token), UserSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def end_all(session: Session, user_id: int) -> int:
    """End every open session of the user (disable, password change); returns how many."""
    result = session.execute(
        sa.update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )
    return rows_matched(result)
