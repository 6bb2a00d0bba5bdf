"""Submitting daily logs over the JSON API: idempotency, validation, access, audit."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import AuditEvent, Exercise, SessionLog, User
from rehab.extensions import db
from rehab.services import accounts, logs
from rehab.services.commands import PrescriptionInput, ProgramInput, SessionLogInput
from rehab.services.programs import create_program
from rehab.services.time import clinic_today
from tests.support.clinic import Clinic, Person
from tests.support.queries import counting_queries


def auth(person: Person) -> dict[str, str]:
    return {"Authorization": f"Bearer {person.token}"}


def log_body(clinic: Clinic, **overrides: Any) -> dict[str, Any]:
    body = {
        "client_id": uuid.uuid4().hex,
        "log_date": clinic.program_start.isoformat(),
        "back_pain": 2,
        "leg_pain": 3,
        "leg_side": "left",
        "red_flags": [],
        "exercises": [
            {"prescription_id": pid, "done": True}
            for pid in clinic.prescription_ids[clinic.patient_a.patient_id or 0][:2]
        ],
        "note": "",
    }
    body.update(overrides)
    return body


def count_logs(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(SessionLog.id))) or 0


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_same_client_id_twice_stores_one_log_and_same_response(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    url = f"/api/v1/patients/{clinic.patient_a.patient_id}/logs"
    body = log_body(clinic)
    first = client.post(url, json=body, headers=auth(clinic.patient_a))
    second = client.post(url, json=body, headers=auth(clinic.patient_a))
    assert first.status_code == 201, first.json
    assert second.status_code == 201
    assert first.json == second.json
    assert first.headers["Idempotent-Replayed"] == "false"
    assert second.headers["Idempotent-Replayed"] == "true"
    assert count_logs(app) == 1
    assert first.json["adherence"] == pytest.approx(2 / 3, abs=0.001)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_new_log_stores_its_entries_and_audit_row_as_submitted(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """PostgreSQL writes the log, its entries and the audit row in one statement (the rows
    travel as JSON): every column lands as it would through the ORM."""
    a = clinic.patient_a.patient_id
    first, second = clinic.prescription_ids[a or 0][:2]
    exercises = [
        {"prescription_id": first, "done": True, "sets_done": 3, "reps_done": 12},
        {"prescription_id": second, "done": False, "sets_done": 0, "reps_done": 0},
    ]
    before = dt.datetime.now(dt.UTC)
    response = client.post(
        f"/api/v1/patients/{a}/logs",
        json=log_body(clinic, exercises=exercises),
        headers={**auth(clinic.patient_a), "X-Request-ID": "bench0request0id"},
    )
    after = dt.datetime.now(dt.UTC)
    assert response.status_code == 201, response.json
    with app.app_context():
        log = db.session.scalars(sa.select(SessionLog).where(SessionLog.patient_id == a)).one()
        stored = sorted((e.prescription_id, e.done, e.sets_done, e.reps_done) for e in log.entries)
        assert stored == sorted(
            (e["prescription_id"], e["done"], e["sets_done"], e["reps_done"]) for e in exercises
        )
        row = db.session.scalars(
            sa.select(AuditEvent).where(
                AuditEvent.action == "session_log.write", AuditEvent.patient_id == a
            )
        ).one()
    assert (row.user_id, row.role, row.outcome.value) == (
        clinic.patient_a.user_id,
        "patient",
        "allowed",
    )
    assert row.request_id == "bench0request0id"
    assert row.target is None
    assert before - dt.timedelta(seconds=1) <= row.at <= after + dt.timedelta(seconds=1)


def test_used_client_id_with_other_body_is_409(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    url = f"/api/v1/patients/{clinic.patient_a.patient_id}/logs"
    body = log_body(clinic)
    assert client.post(url, json=body, headers=auth(clinic.patient_a)).status_code == 201
    changed = {**body, "back_pain": 7}
    response = client.post(url, json=changed, headers=auth(clinic.patient_a))
    assert response.status_code == 409
    assert response.json["errors"][0]["field"] == "client_id"
    assert count_logs(app) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"back_pain": 11}, "back_pain"),
        ({"leg_pain": -1}, "leg_pain"),
        ({"back_pain": "7"}, "back_pain"),
        ({"back_pain": 7.5}, "back_pain"),
        ({"log_date": "2999-01-01"}, "log_date"),
        ({"log_date": "2001-01-01"}, "log_date"),
        ({"log_date": "not a date"}, "log_date"),
        ({"leg_side": None}, "leg_side"),
        ({"red_flags": ["third_eye"]}, "red_flags.0"),
        ({"exercises": [{"prescription_id": 999999, "done": True}]}, "exercises.0.prescription_id"),
        ({"surprise": 1}, "surprise"),
        ({"client_id": "x"}, "client_id"),
    ],
)
def test_bad_values_are_422_naming_the_field(
    app: Flask, client: FlaskClient, clinic: Clinic, change: dict[str, Any], field: str
) -> None:
    url = f"/api/v1/patients/{clinic.patient_a.patient_id}/logs"
    response = client.post(url, json=log_body(clinic, **change), headers=auth(clinic.patient_a))
    assert response.status_code == 422, response.json
    assert field in [e["field"] for e in response.json["errors"]]
    assert count_logs(app) == 0


def test_malformed_json_and_oversized_bodies(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    url = f"/api/v1/patients/{clinic.patient_a.patient_id}/logs"
    headers = {**auth(clinic.patient_a), "Content-Type": "application/json"}
    assert client.post(url, data="{not json", headers=headers).status_code == 400
    assert client.post(url, data="[1, 2]", headers=headers).status_code == 422
    huge = log_body(clinic, note="x" * 200_000)
    assert client.post(url, json=huge, headers=auth(clinic.patient_a)).status_code == 413
    assert count_logs(app) == 0


def test_patient_cannot_write_or_read_another_patient(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    b = clinic.patient_b.patient_id
    url = f"/api/v1/patients/{b}/logs"
    response = client.post(url, json=log_body(clinic), headers=auth(clinic.patient_a))
    assert response.status_code == 404
    assert (
        client.get(f"/api/v1/patients/{b}/series", headers=auth(clinic.patient_a)).status_code
        == 404
    )
    # A patient id that does not exist answers exactly the same.
    missing = client.get("/api/v1/patients/987654/series", headers=auth(clinic.patient_a))
    assert missing.status_code == 404
    assert (
        missing.json
        == client.get(f"/api/v1/patients/{b}/series", headers=auth(clinic.patient_a)).json
    )
    assert count_logs(app) == 0


def test_clinician_off_the_care_team_gets_404(client: FlaskClient, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    on_team = client.get(f"/api/v1/patients/{a}/series", headers=auth(clinic.clinician))
    off_team = client.get(f"/api/v1/patients/{a}/series", headers=auth(clinic.other_clinician))
    assert on_team.status_code == 200
    assert off_team.status_code == 404


def test_no_token_is_401(client: FlaskClient, clinic: Clinic) -> None:
    response = client.get(f"/api/v1/patients/{clinic.patient_a.patient_id}/series")
    assert response.status_code == 401
    assert "Bearer" in response.headers["WWW-Authenticate"]
    bad = client.get("/api/v1/me", headers={"Authorization": "Bearer rhb_nope"})
    assert bad.status_code == 401


def test_reads_writes_and_denials_are_audited(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    client.post(f"/api/v1/patients/{a}/logs", json=log_body(clinic), headers=auth(clinic.patient_a))
    client.get(f"/api/v1/patients/{a}/series", headers=auth(clinic.patient_a))
    client.get(f"/api/v1/patients/{b}/series", headers=auth(clinic.patient_a))
    with app.app_context():
        rows = db.session.execute(
            sa.select(
                AuditEvent.action, AuditEvent.outcome, AuditEvent.patient_id, AuditEvent.user_id
            )
            .where(AuditEvent.action.in_(["session_log.write", "series.read"]))
            .order_by(AuditEvent.id)
        ).all()
    user = clinic.patient_a.user_id
    assert [(r.action, r.outcome.value, r.patient_id, r.user_id) for r in rows] == [
        ("session_log.write", "allowed", a, user),
        ("series.read", "allowed", a, user),
        ("series.read", "denied", b, user),
    ]


def test_series_returns_the_logged_days(client: FlaskClient, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    client.post(
        f"/api/v1/patients/{a}/logs",
        json=log_body(clinic, leg_pain=6),
        headers=auth(clinic.patient_a),
    )
    series = client.get(f"/api/v1/patients/{a}/series", headers=auth(clinic.clinician)).json
    assert [(d["date"], d["leg_pain"], d["leg_side"]) for d in series["days"]] == [
        (clinic.program_start.isoformat(), 6, "left")
    ]
    bad = client.get(f"/api/v1/patients/{a}/series?start=yesterday", headers=auth(clinic.clinician))
    assert bad.status_code == 422
    assert bad.json["errors"][0]["field"] == "start"


def _three_times_a_week_program(app: Flask, clinic: Clinic, start: dt.date) -> list[int]:
    """Replace patient A's program from `start`: two daily exercises and one 3×/week."""
    with app.app_context():
        clinician = db.session.get(User, clinic.clinician.user_id)
        assert clinician is not None and clinic.patient_a.patient_id is not None
        exercises = db.session.scalars(sa.select(Exercise.id).order_by(Exercise.id).limit(3))
        program = create_program(
            db.session,
            accounts.actor_for(clinician),
            clinic.patient_a.patient_id,
            ProgramInput(
                title="Strength, three times a week",
                start_date=start,
                prescriptions=[
                    PrescriptionInput(exercise_id=e, sets=3, reps=10, sessions_per_week=f)
                    for e, f in zip(exercises, (7, 7, 3), strict=True)
                ],
            ),
        )
        return [p.id for p in program.prescriptions]


def _post_day(
    client: FlaskClient, clinic: Clinic, start: dt.date, day: int, exercises: list[Any]
) -> Any:
    """Patient A's log for `start` + `day` days, through the API: the answer's JSON."""
    date = (start + dt.timedelta(days=day)).isoformat()
    body = log_body(clinic, log_date=date, exercises=exercises)
    url = f"/api/v1/patients/{clinic.patient_a.patient_id}/logs"
    response = client.post(url, json=body, headers=auth(clinic.patient_a))
    assert response.status_code == 201, response.json
    return response.json


def _session(prescriptions: list[int], thrice_done: bool) -> list[dict[str, Any]]:
    """The day's exercises of `_three_times_a_week_program`, the daily ones done (the phone
    lists the 3×/week one every day)."""
    daily_1, daily_2, thrice = prescriptions
    return [
        {"prescription_id": daily_1, "done": True},
        {"prescription_id": daily_2, "done": True, "sets_done": 3},
        {"prescription_id": thrice, "done": thrice_done},
    ]


def _stored_adherence(app: Flask, patient_id: int | None, start: dt.date) -> dict[int, Any]:
    """The stored adherence of the patient's logs, by days since `start`."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(SessionLog.log_date, SessionLog.adherence).where(
                SessionLog.patient_id == patient_id
            )
        ).all()
    return {(row.log_date - start).days: row.adherence for row in rows}


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_an_exercise_prescribed_three_times_a_week_counts_on_the_days_it_is_due(
    app: Flask, client: FlaskClient, clinic: Clinic, database_url: str
) -> None:
    """Daily exercises done every day and the 3×/week one every other weekday (days 0, 2, 4
    of each week from the start): 100 % every day, the days between included. Skipped from
    the third week on, it is due again and missed: 2 of 3 exercises, every day."""
    a = clinic.patient_a.patient_id
    start = clinic_today() - dt.timedelta(days=20)
    prescriptions = _three_times_a_week_program(app, clinic, start)

    def post(day: int, thrice_done: bool) -> float:
        exercises = _session(prescriptions, thrice_done)
        return float(_post_day(client, clinic, start, day, exercises)["adherence"])

    on_schedule = [post(day, day % 7 in (0, 2, 4)) for day in range(14)]
    assert on_schedule == [1.0] * 14
    with counting_queries(app) as statements:
        skipped = [post(day, False) for day in range(14, 21)]
    assert skipped == [pytest.approx(2 / 3, abs=0.001)] * 7
    if database_url.startswith("postgresql"):
        # Token, the patient's log-write lock, context SELECT (the week's counts included),
        # one write: per log, as before.
        assert len(statements) == 4 * 7, statements

    # The web form's same-day edit (today is day 20) goes through the same rule.
    with app.app_context():
        patient = db.session.get(User, clinic.patient_a.user_id)
        assert patient is not None and a is not None
        edit = SessionLogInput.model_validate(
            log_body(
                clinic,
                log_date=clinic_today().isoformat(),
                exercises=[{"prescription_id": pid, "done": True} for pid in prescriptions],
            )
        )
        result = logs.record_session_log(
            db.session, accounts.actor_for(patient), a, edit, allow_same_day_edit=True
        )
        assert result.outcome == logs.LogOutcome.UPDATED
        assert result.log.adherence == 1.0
        stored = db.session.scalars(
            sa.select(SessionLog.adherence)
            .where(SessionLog.patient_id == a)
            .order_by(SessionLog.log_date)
        ).all()
    assert stored == [*on_schedule, *skipped[:-1], 1.0]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_day_synced_late_recomputes_the_adherence_of_the_week_after_it(
    app: Flask, client: FlaskClient, clinic: Clinic, database_url: str
) -> None:
    """The 3×/week exercise done on days 0, 2, 4 of each week, every day logged but day 9,
    which a phone syncs last. Until then the week after it looks one session short (days 10,
    12, 13 and 15 show the exercise due and missed); once day 9 is stored those days score
    what they would have in order, and what the detector reads is the same either way."""
    a = clinic.patient_a.patient_id
    start = clinic_today() - dt.timedelta(days=20)
    prescriptions = _three_times_a_week_program(app, clinic, start)

    def post(day: int) -> None:
        _post_day(client, clinic, start, day, _session(prescriptions, day % 7 in (0, 2, 4)))

    def stored() -> dict[int, Any]:
        return _stored_adherence(app, a, start)

    for day in (*range(9), *range(10, 18)):
        post(day)
    short = stored()
    assert {day for day, value in short.items() if value != 1.0} == {10, 12, 13, 15}
    assert short[10] == pytest.approx(2 / 3, abs=0.001)

    with counting_queries(app) as statements:
        post(9)
    assert stored() == {day: 1.0 for day in range(18)}
    # The late log's own statements, then for each of the 6 logs after it: its context, its
    # entries, and an UPDATE for the 4 that changed.
    if database_url.startswith("postgresql"):
        assert len(statements) == 4 + 1 + 6 * 2 + 4, statements


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_day_synced_late_leaves_the_days_logged_under_another_program_alone(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """Days 0-8 and 10-12 logged with every exercise done (1.0 each); the clinician then
    records a new program from day 10 (back-dated: new prescriptions); day 9 is synced late.
    Days 10-12 were logged against the first program and keep their scores — judged against
    the new program's exercises, which they could not have logged, they scored 0 (a review's
    case)."""
    a = clinic.patient_a.patient_id
    start = clinic_today() - dt.timedelta(days=20)
    first_program = _three_times_a_week_program(app, clinic, start)
    done = [{"prescription_id": p, "done": True} for p in first_program]
    for day in (*range(9), 10, 11, 12):
        _post_day(client, clinic, start, day, done)
    assert set(_stored_adherence(app, a, start).values()) == {1.0}
    _three_times_a_week_program(app, clinic, start + dt.timedelta(days=10))
    _post_day(client, clinic, start, 9, done)
    assert _stored_adherence(app, a, start) == {day: 1.0 for day in range(13)}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_late_day_and_the_day_after_in_flight_together_see_each_other(
    app: Flask, client: FlaskClient, clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A phone syncing a missed day 9 and day 10 at once: day 9's request is held just before
    its commit while day 10's arrives. Neither can read the other's uncommitted log, and day
    9's recompute of the week after it finds no day 10 yet; had day 10 gone ahead it would
    keep 2/3 for good (the 3×/week exercise looking due: done on days 4 and 7 only). It must
    wait for day 9 and count it, as in order."""
    a = clinic.patient_a.patient_id
    start = clinic_today() - dt.timedelta(days=20)
    prescriptions = _three_times_a_week_program(app, clinic, start)
    for day in range(9):
        _post_day(client, clinic, start, day, _session(prescriptions, day % 7 in (0, 2, 4)))

    held, release = threading.Event(), threading.Event()
    commit = logs._commit_keeping_loaded

    def commit_held_for_day_9(session: Any) -> None:
        if threading.current_thread().name == "day 9":
            held.set()
            release.wait(30)
        commit(session)

    monkeypatch.setattr(logs, "_commit_keeping_loaded", commit_held_for_day_9)
    failures: list[BaseException] = []

    def record(day: int) -> None:
        try:
            with app.app_context():
                patient = db.session.get(User, clinic.patient_a.user_id)
                assert patient is not None and a is not None
                exercises = _session(prescriptions, day % 7 in (0, 2, 4))
                date = (start + dt.timedelta(days=day)).isoformat()
                data = SessionLogInput.model_validate(
                    log_body(clinic, log_date=date, exercises=exercises)
                )
                logs.record_session_log(db.session, accounts.actor_for(patient), a, data)
        except BaseException as error:  # reported by the test's thread
            failures.append(error)

    day_9 = threading.Thread(target=record, args=(9,), name="day 9")
    day_10 = threading.Thread(target=record, args=(10,), name="day 10")
    day_9.start()
    assert held.wait(30)
    day_10.start()
    # Until day 10's request has finished, or waits for a lock.
    deadline = time.monotonic() + 30
    while day_10.is_alive() and not _lock_waiters(app) and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    day_9.join(30)
    day_10.join(30)
    assert not failures, failures
    assert _stored_adherence(app, a, start) == {day: 1.0 for day in range(11)}


def _lock_waiters(app: Flask) -> int:
    """Backends of this database waiting for a lock."""
    with app.app_context(), db.engine.connect() as connection:
        return connection.scalar(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")) or 0


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_todays_log_is_created_then_replaced_with_put(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    """Design §2: a log is editable that day. POST answers 409 for a second log on one date
    (a retry must never overwrite); PUT on today's date creates or replaces it, and a retried
    PUT, however late, answers as the first time and leaves the log as it stands."""
    a = clinic.patient_a.patient_id
    today = clinic_today().isoformat()
    url = f"/api/v1/patients/{a}/logs/{today}"
    headers = auth(clinic.patient_a)

    def put(body: dict[str, Any]) -> Any:
        return client.put(url, json=body, headers=headers)

    create = log_body(clinic, log_date=today)
    first = put(create)
    assert first.status_code == 201, first.json
    assert first.headers["Idempotent-Replayed"] == "false"
    assert first.json["leg_pain"] == 3
    again = put(create)  # a retry of the creation
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (201, "true")
    second_post = client.post(
        f"/api/v1/patients/{a}/logs", json=log_body(clinic, log_date=today, leg_pain=8),
        headers=headers,
    )  # fmt: skip
    assert second_post.status_code == 409
    edit_b = log_body(clinic, log_date=today, leg_pain=6, exercises=[], red_flags=["new_weakness"])
    replaced = put(edit_b)
    assert (replaced.status_code, replaced.headers["Idempotent-Replayed"]) == (200, "false")
    assert replaced.json["id"] == first.json["id"]
    assert (replaced.json["leg_pain"], replaced.json["exercises"]) == (6, [])
    assert replaced.json["red_flags"] == ["new_weakness"]
    assert replaced.json["advice"] is not None  # a red flag: seek care
    retried = put(edit_b)
    assert (retried.status_code, retried.headers["Idempotent-Replayed"]) == (200, "true")
    assert retried.json == replaced.json
    edit_c = log_body(clinic, log_date=today, leg_pain=9, exercises=[])
    assert put(edit_c).json["leg_pain"] == 9
    # Late retries of B and of the creation: answered, and the newer edit C stands.
    for late, status in ((edit_b, 200), (create, 201)):
        response = put(late)
        assert (response.status_code, response.headers["Idempotent-Replayed"]) == (status, "true")
        assert response.json["leg_pain"] == 9
    # A used client id with another body is refused, whichever submission used it.
    for used in (create, edit_b):
        assert put({**used, "back_pain": 0}).status_code == 409
    assert count_logs(app) == 1
    with app.app_context():
        stored = db.session.scalars(sa.select(SessionLog).where(SessionLog.patient_id == a)).one()
        assert (stored.leg_pain, stored.client_id) == (9, create["client_id"])
        outcomes = (
            db.session.execute(
                sa.select(AuditEvent.outcome)
                .where(AuditEvent.patient_id == a, AuditEvent.action == "session_log.write")
                .order_by(AuditEvent.id)
            )
            .scalars()
            .all()
        )
    # Every submission is on record; the refused ones (POST on a logged day, reused ids)
    # as failed.
    assert [o.value for o in outcomes] == [
        "allowed", "allowed", "failed", "allowed", "allowed", "allowed", "allowed", "allowed",
        "failed", "failed",
    ]  # fmt: skip


def test_put_refuses_other_days_other_patients_and_a_date_unlike_the_path(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    today = clinic_today()
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    url = f"/api/v1/patients/{a}/logs/"
    body = log_body(clinic, log_date=yesterday)
    response = client.put(url + yesterday, json=body, headers=auth(clinic.patient_a))
    assert response.status_code == 409  # only today's log: other days are sent by POST
    assert response.json["errors"][0]["field"] == "log_date"
    posted = client.post(url.rstrip("/"), json=body, headers=auth(clinic.patient_a))
    assert posted.status_code == 201
    response = client.put(url + yesterday, json=log_body(clinic, log_date=yesterday),
                          headers=auth(clinic.patient_a))  # fmt: skip
    assert response.status_code == 409
    assert response.json["errors"][0]["field"] == "log_date"
    mismatch = client.put(
        url + today.isoformat(), json=log_body(clinic, log_date=yesterday),
        headers=auth(clinic.patient_a),
    )  # fmt: skip
    assert mismatch.status_code == 422
    assert mismatch.json["errors"] == [
        {"field": "log_date", "message": "must be the date in the path"}
    ]
    for path in (f"/api/v1/patients/{b}/logs/{today}", f"/api/v1/patients/{a}/logs/not-a-day"):
        other = client.put(
            path, json=log_body(clinic, log_date=today.isoformat()), headers=auth(clinic.patient_a)
        )
        assert other.status_code in (404, 422), (path, other.status_code)
    other_patient = client.put(
        f"/api/v1/patients/{b}/logs/{today}",
        json=log_body(clinic, log_date=today.isoformat()),
        headers=auth(clinic.patient_a),
    )
    assert other_patient.status_code == 404
    clinician = client.put(
        f"/api/v1/patients/{a}/logs/{today}",
        json=log_body(clinic, log_date=today.isoformat()),
        headers=auth(clinic.clinician),
    )
    assert clinician.status_code == 404  # the log is the patient's own report
    assert count_logs(app) == 1
