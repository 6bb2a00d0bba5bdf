"""A real Celery worker process turns a committed log into exactly one alert, on Redis and on
the embedded SQLite transport, also when the task is delivered more than once."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from celery import Celery
from flask import Flask
from werkzeug.test import TestResponse

from rehab import create_app
from rehab.db.models import Alert, AuditEvent
from rehab.devservers import RedisServer
from rehab.extensions import db
from rehab.services.time import clinic_today
from rehab.web.health import forget_pipeline_status
from tests.conftest import app_settings, dispose_engines
from tests.support.clinic import Clinic, build_clinic
from tests.support.history import add_fall, add_logs
from tests.support.worker import running_worker, wait_until

pytestmark = pytest.mark.slow


def pain_alerts(app: Flask, patient_id: int) -> list[tuple[str, str, dt.date]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(Alert.kind, Alert.metric, Alert.detected_on).where(
                Alert.patient_id == patient_id, Alert.kind == "pain_regression"
            )
        ).all()
        db.session.rollback()
    return [tuple(r) for r in rows]


def run_scenario(pg_url: str, broker_url: str, tmp_path: Path) -> None:
    app = create_app(app_settings(pg_url, tmp_path, broker_url=broker_url))
    try:
        with app.app_context():
            clinic: Clinic = build_clinic()
            a = clinic.patient_a.patient_id
            assert a is not None
            today = clinic_today()
            start = today - dt.timedelta(days=50)
            # 45 quiet days, a fall, then 5 days at 7/10; today's log comes through the API.
            add_logs(a, start, [1, 0, 1, 1, 2] * 9 + [7, 7, 6, 7, 7])
            add_fall(a, clinic.patient_a.user_id, start + dt.timedelta(days=44))
        with running_worker(pg_url, broker_url, tmp_path / "instance", tmp_path / "worker.log"):
            client = app.test_client()
            response = client.post(
                f"/api/v1/patients/{a}/logs",
                json={
                    "client_id": uuid.uuid4().hex,
                    "log_date": today.isoformat(),
                    "back_pain": 1,
                    "leg_pain": 7,
                    "leg_side": "left",
                },
                headers={"Authorization": f"Bearer {clinic.patient_a.token}"},
            )
            assert response.status_code == 201
            alerts = wait_until(lambda: pain_alerts(app, a), timeout=60)
            assert [(k, m) for k, m, _ in alerts] == [("pain_regression", "leg_pain")]
            # The audit rows of the alerts name the task that stored them.
            with app.app_context():
                by = db.session.scalars(
                    sa.select(AuditEvent.request_id).where(
                        AuditEvent.action == "alert.create", AuditEvent.patient_id == a
                    )
                ).all()
                db.session.rollback()
            assert by and all(re.fullmatch(r"task:[0-9a-f-]{36}", b or "") for b in by), by

            # The same task delivered twice more (a redelivery after a crash, a retry).
            with app.app_context():
                celery: Celery = app.extensions["celery"]
                results = [celery.send_task("rehab.evaluate_patient", args=[a]) for _ in range(2)]
            assert all(r.id for r in results)
            scanned = celery.send_task("rehab.evaluate_patients", args=[[a]])
            assert scanned.id
            log = tmp_path / "worker.log"
            evaluations_done = re.compile(r"Task rehab\.evaluate_patients?\[[^\]]+\] succeeded")
            wait_until(lambda: len(evaluations_done.findall(log.read_text())) >= 4, timeout=60)
            assert pain_alerts(app, a) == alerts

            # The scheduled scan, run by the worker, tells the pipeline status it ran (before
            # it, no scan had run: alerts may be late).
            def pipeline() -> TestResponse:
                forget_pipeline_status(app)  # no status reused from a moment ago
                return client.get("/healthz/pipeline")

            assert pipeline().json["scan"]["status"] == "never"
            with app.app_context():
                celery.send_task("rehab.scan_patients")
            wait_until(lambda: pipeline().status_code == 200, timeout=60)
    finally:
        dispose_engines(app)


def test_worker_on_redis(pg_url: str, redis_server: RedisServer, tmp_path: Path) -> None:
    run_scenario(pg_url, redis_server.url, tmp_path)


def test_worker_on_sqlite_transport(pg_url: str, tmp_path: Path) -> None:
    run_scenario(pg_url, f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}", tmp_path)
