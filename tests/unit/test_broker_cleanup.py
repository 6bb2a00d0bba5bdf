"""The embedded SQLite broker's upkeep (`rehab.clean_broker`, every hour from beat): kombu's
SQLAlchemy transport never deletes a consumed message, so the demo's broker file would grow
without bound. A real kombu transport on a SQLite file writes the rows here."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from kombu import Connection

from rehab.services.broker import KEEP_CONSUMED, delete_consumed_messages


@pytest.fixture(params=["UTC", "America/New_York", "Asia/Tokyo"])
def host_timezone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The host's local time zone: kombu stamps a consumed message with the local time."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def _rows(url: str) -> list[tuple[bool, dt.datetime | None]]:
    engine = sa.create_engine(url.removeprefix("sqla+"))
    try:
        with engine.connect() as conn:
            return [
                (bool(r[0]), r[1])
                for r in conn.execute(sa.text("SELECT visible, timestamp FROM kombu_message"))
            ]
    finally:
        engine.dispose()


def test_consumed_messages_are_deleted_after_an_hour_waiting_ones_never(
    tmp_path: Path, host_timezone: str
) -> None:
    url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    with Connection(url) as connection:
        queue = connection.SimpleQueue("upkeep")
        queue.put({"task": 1})
        queue.put({"task": 2})
        queue.get(timeout=5).ack()
        queue.close()
    assert sorted(visible for visible, _ in _rows(url)) == [False, True]

    # Just consumed: kept (a redelivery after a worker restart may still look for it),
    # whatever the host's time zone. (West of UTC, comparing kombu's local stamp with UTC
    # deleted it at once.)
    assert delete_consumed_messages(url) == 0
    assert len(_rows(url)) == 2
    almost = dt.datetime.now(dt.UTC) + KEEP_CONSUMED - dt.timedelta(minutes=5)
    assert delete_consumed_messages(url, now=almost) == 0

    later = dt.datetime.now(dt.UTC) + KEEP_CONSUMED + dt.timedelta(minutes=5)
    assert delete_consumed_messages(url, now=later) == 1
    assert [visible for visible, _ in _rows(url)] == [True]  # the waiting message stays
    assert delete_consumed_messages(url, now=later + dt.timedelta(days=30)) == 0


def test_other_brokers_and_a_fresh_file_are_left_alone(tmp_path: Path) -> None:
    assert delete_consumed_messages("redis://127.0.0.1:1/0") == 0
    assert delete_consumed_messages(f"sqla+sqlite:///{tmp_path / 'empty.sqlite'}") == 0
