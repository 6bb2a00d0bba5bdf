"""Upkeep of the embedded SQLite broker (demo): kombu's SQLAlchemy transport marks consumed
messages invisible but never deletes them, so the file grows without bound. And reading a
waiting message (the benchmarks and the tests check what the broker holds)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

# Keep a consumed message this long: a redelivery after a worker restart can still see it.
KEEP_CONSUMED = dt.timedelta(hours=1)


def delete_consumed_messages(broker_url: str, now: dt.datetime | None = None) -> int:
    """Delete consumed messages older than KEEP_CONSUMED; returns how many."""
    if not broker_url.startswith("sqla+"):
        return 0
    engine = sa.create_engine(broker_url.removeprefix("sqla+"))
    try:
        if not sa.inspect(engine).has_table("kombu_message"):
            return 0
        # kombu stamps a message when it is consumed with the host's naive local time
        # (`datetime.now`, kombu/transport/sqlalchemy/models.py), not UTC.
        local_now = (now or dt.datetime.now(dt.UTC)).astimezone().replace(tzinfo=None)
        cutoff = local_now - KEEP_CONSUMED
        with engine.begin() as conn:
            result = conn.execute(
                sa.text(
                    "DELETE FROM kombu_message WHERE visible = :consumed AND timestamp < :cutoff"
                ),
                {"consumed": False, "cutoff": cutoff},
            )
            return int(result.rowcount or 0)
    finally:
        engine.dispose()


def decode_kombu_message(raw: bytes | str) -> tuple[dict[str, Any], str]:
    """A message as kombu stores it in Redis or the SQL transport: (envelope, body text; for
    a Celery task, the JSON `[args, kwargs, embed]`)."""
    envelope = json.loads(raw)
    body = envelope.get("body", "")
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body).decode()
    return envelope, body
