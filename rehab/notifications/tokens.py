"""Signed unsubscribe links: `/unsubscribe/<token>` works without logging in.

The token carries the user id and what to stop ("reminders"), signed with the app's secret key
(itsdangerous). It does not expire: a link in an old e-mail must still work (RFC 8058 expects
one-click links to keep working). It grants one thing only, turning reminders off.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

SALT = "rehab.unsubscribe"
REMINDERS = "reminders"


@dataclass(frozen=True)
class Unsubscribe:
    user_id: int
    topic: str


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=SALT)


def make_token(secret_key: str, user_id: int, topic: str = REMINDERS) -> str:
    return str(_serializer(secret_key).dumps({"u": user_id, "t": topic}))


def read_token(secret_key: str, token: str) -> Unsubscribe | None:
    """The request the token stands for, or None if it is forged or malformed."""
    try:
        data = _serializer(secret_key).loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    user_id, topic = data.get("u"), data.get("t")
    if not isinstance(user_id, int) or topic != REMINDERS:
        return None
    return Unsubscribe(user_id, topic)
