"""Login throttling counted in Redis: what production does with a Redis broker
(`config.load_settings`), so that gunicorn's several web processes share one count."""

from __future__ import annotations

from pathlib import Path

import redis
from flask import Flask

from rehab import create_app
from rehab.devservers import RedisServer
from tests.conftest import app_settings, dispose_engines
from tests.support.clinic import build_clinic, csrf_token


def test_login_attempts_are_counted_in_redis(
    pg_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    storage = redis_server.url.rsplit("/", 1)[0] + "/7"  # a database of its own
    redis.Redis.from_url(storage).flushdb()
    app: Flask = create_app(app_settings(pg_url, tmp_path, ratelimit_storage_url=storage))
    try:
        with app.app_context():
            clinic = build_clinic()
        client = app.test_client()
        form = {"email": clinic.patient_a.email, "password": "not the password"}
        for _ in range(10):  # defaults: 10 a minute
            form["csrf_token"] = csrf_token(client, "/login")
            assert client.post("/login", data=form).status_code == 200
        form["csrf_token"] = csrf_token(client, "/login")
        assert client.post("/login", data=form).status_code == 429
        keys = [k.decode() for k in redis.Redis.from_url(storage).keys("*")]
        assert any("LIMITS" in k for k in keys), keys  # the count lives in Redis
    finally:
        dispose_engines(app)
