"""Shared fixtures: private PostgreSQL and Redis servers, a migrated database per test
(cloned from a migrated template, so every test starts clean and commits for real), the app,
and a small clinic to act in."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from rehab import create_app, migrate
from rehab.devservers import PostgresServer, RedisServer, start_postgres, start_redis
from rehab.extensions import db
from rehab.services import dispatch
from rehab.web.health import wait_for_pipeline_watch
from tests.support.clinic import Clinic, build_clinic
from tests.support.smtp import SmtpServer, smtp_server

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.close()


@pytest.fixture(scope="session")
def pg_template(postgres: PostgresServer) -> str:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE rehab_template")
    migrate.upgrade(postgres.url("rehab_template"))
    return "rehab_template"


def create_pg_database(postgres: PostgresServer, template: str) -> str:
    name = f"t{os.getpid()}_{next(_db_counter)}"
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return name


@pytest.fixture
def pg_url(postgres: PostgresServer, pg_template: str) -> Iterator[str]:
    name = create_pg_database(postgres, pg_template)
    yield postgres.url(name)
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "rehab.sqlite"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """PostgreSQL by default; parametrize indirectly with "sqlite" to run on both."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


def app_settings(database_url: str, tmp_path: Path, **extra: object) -> dict[str, object]:
    return {
        "mode": "testing",
        "database_url": database_url,
        "broker_url": "memory://",
        "instance_path": tmp_path / "instance",
        "ratelimit_storage_url": "memory://",
        # Most tests log in without the second factor; tests/integration/test_two_factor.py
        # turns it on.
        "totp_required": False,
        # Tests that run in production mode send no real e-mail unless they set an SMTP URL.
        "outbox_in_production": True,
        **extra,
    }


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(app_settings(database_url, tmp_path))
    yield app
    dispose_engines(app)


def dispose_engines(app: Flask) -> None:
    # A page may have started the pipeline watch in the background: it ends before its
    # database goes.
    wait_for_pipeline_watch(app)
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def clinic(app: Flask) -> Clinic:
    with app.app_context():
        return build_clinic()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free port, for a test's app to send to."""
    with smtp_server() as server:
        yield server


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, list[Any]]]]:
    """The tasks sent to the broker (gathered ones once `dispatch.flush()` sends them)."""
    calls: list[tuple[str, list[Any]]] = []
    monkeypatch.setattr(dispatch, "_send", lambda app, name, args: calls.append((name, args)))
    yield calls


def evaluated_ids(calls: list[tuple[str, list[Any]]]) -> set[int]:
    """The patients the sent tasks ask to evaluate."""
    dispatch.flush()
    ids: set[int] = set()
    for name, args in calls:
        if name == "rehab.evaluate_patient":
            ids.update(args)
        elif name == "rehab.evaluate_patients":
            ids.update(args[0])
    return ids
