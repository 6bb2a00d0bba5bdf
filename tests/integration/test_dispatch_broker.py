"""Logs posted through the API ask for their patients' evaluation after commit; a web process
gathers those requests into `rehab.evaluate_patients` tasks in a real Redis (ids only)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import redis as redis_client

from rehab import create_app
from rehab.devservers import RedisServer
from rehab.extensions import db
from rehab.services import dispatch
from rehab.services.broker import decode_kombu_message
from rehab.services.time import clinic_today
from tests.conftest import app_settings, dispose_engines
from tests.support.clinic import build_clinic


def test_committed_logs_reach_redis_as_gathered_evaluation_tasks(
    pg_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    broker_url = redis_server.url.rsplit("/", 1)[0] + "/7"  # a database of its own
    queue = redis_client.Redis.from_url(broker_url)
    queue.flushdb()
    # A window longer than the test: everything posted is still gathered at the flush.
    app = create_app(
        app_settings(pg_url, tmp_path, broker_url=broker_url, evaluation_batch_ms=5000)
    )
    try:
        with app.app_context():
            clinic = build_clinic()
            db.session.commit()
        people = [clinic.patient_a, clinic.patient_b, clinic.patient_c]
        api = app.test_client()
        today = clinic_today()
        posted = 0
        for back in range(5):  # 5 days × 3 patients, as fast as the test client goes
            for person in people:
                response = api.post(
                    f"/api/v1/patients/{person.patient_id}/logs",
                    json={"client_id": uuid.uuid4().hex,
                          "log_date": (today - dt.timedelta(days=back)).isoformat(),
                          "back_pain": 2, "leg_pain": 0},
                    headers={"Authorization": f"Bearer {person.token}"},
                )  # fmt: skip
                assert response.status_code == 201, response.get_json()
                posted += 1
        # A refused log commits nothing and asks for nothing.
        refused = api.post(
            f"/api/v1/patients/{clinic.patient_a.patient_id}/logs",
            json={"client_id": uuid.uuid4().hex, "log_date": today.isoformat(), "back_pain": 11},
            headers={"Authorization": f"Bearer {clinic.patient_a.token}"},
        )
        assert refused.status_code == 422
        assert queue.llen("celery") == 0  # nothing sent by the committing requests
        dispatch.flush()
        messages = [decode_kombu_message(raw) for raw in queue.lrange("celery", 0, -1)]
    finally:
        queue.close()
        dispose_engines(app)
    assert posted == 15 and len(messages) == 1
    ((envelope, body),) = messages
    assert envelope["headers"]["task"] == "rehab.evaluate_patients"
    args, kwargs, _ = json.loads(body)
    assert args == [sorted(p.patient_id for p in people)] and kwargs == {}
