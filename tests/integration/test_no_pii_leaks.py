"""Nothing personal in logs, task arguments, broker messages, e-mail subjects or URLs (design
§6; issue 6, item 5).

Patients are created with unique marker strings in everything personal: names, e-mail
addresses, condition, notes, pain locations, event descriptions, findings, questionnaire
answers, device names, alert notes. The whole path runs for real: pages and API in this
process (logging captured at DEBUG), a Celery worker at DEBUG on Redis evaluating and sending
e-mail to an SMTP server (aiosmtpd), and then the markers are looked for in:
- the application's log records here and the worker's log file;
- every task message published here, and the messages waiting in Redis while no worker runs
  (and, for the demo, in the SQLite broker's table);
- the subjects of every e-mail (bodies: see below);
- every URL: requested, redirected to (Location), linked or posted to from a page, in JSON,
  and in e-mails.

E-mail bodies: alert e-mails carry what a clinician needs to triage (the explanation, related
events with their notes), so clinical text may appear there; the patient's name and e-mail
address never do (the patient is a record number and a link). Reminders to a patient carry
nothing but the days since the last log and two links. The one place a patient's address
appears is the To header of the reminder addressed to them.

Covered elsewhere: the caseload's search term (a name) is posted and kept in the session,
never in a URL, the pager's links included (test_pages_clinic); exception messages, which
can quote values (PostgreSQL's DETAIL), never reach a log (`rehab.logs`: test_web_security,
tests/unit/test_logs.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab import create_app
from rehab.db.models import Alert, Exercise, Patient, User
from rehab.devservers import RedisServer
from rehab.domain.vocabulary import Role
from rehab.extensions import db
from rehab.services import accounts, dispatch, notifications
from rehab.services.broker import decode_kombu_message
from rehab.services.commands import PrescriptionInput, ProgramInput
from rehab.services.programs import create_program
from rehab.services.time import clinic_today
from tests.conftest import app_settings, dispose_engines
from tests.integration.test_notifications_delivery import celery_process, mail_settings
from tests.support.clinic import (
    PASSWORD,
    Clinic,
    build_clinic,
    csrf_token,
    login,
    password_hash,
)
from tests.support.history import add_logs
from tests.support.pages import form_data, text
from tests.support.sinks import (
    RecordingClient,
    TaskRecorder,
    UrlRecorder,
    sqlite_broker_messages,
    urls_in_text,
)
from tests.support.smtp import SmtpServer
from tests.support.worker import wait_until

pytestmark = pytest.mark.slow

PREFIX = "zqx"
# Loggers of the test's own servers in this process (aiosmtpd logs whole SMTP sessions).
TEST_SERVERS = ("mail.log",)  # every marker starts with it (any case): one search finds them all


class Markers:
    """Unique strings, one per kind of personal data; `identity` ones (name, address) may
    appear in no e-mail body either."""

    def __init__(self) -> None:
        u = uuid.uuid4().hex[:10]
        self.name = f"Zoe ZQXNAME{u}"
        self.email = f"zqxmail{u}@patient.test"
        self.quiet_name = f"Quin ZQXQUIET{u}"
        self.quiet_email = f"zqxquiet{u}@patient.test"
        self.condition = f"ZQXCOND{u} sciatica"
        self.note = f"ZQXNOTE{u} felt odd"
        self.pain = f"ZQXPAIN{u} buttock"
        self.fall = f"ZQXFALL{u} slipped on wet stairs"
        self.api_event = f"ZQXAPIEVENT{u}"
        self.finding = f"ZQXFINDING{u} bruise"
        self.activity = f"ZQXPSFS{u}"
        self.device = f"ZQXDEVICE{u}"
        self.ack = f"ZQXACK{u} phoned her"
        self.program = f"ZQXPROGRAM{u}"

    @property
    def identity(self) -> list[str]:
        return [self.name, self.email, self.quiet_name, self.quiet_email, *self.name.split()]

    @property
    def all(self) -> list[str]:
        return [v for k, v in vars(self).items() if isinstance(v, str)]


def found(markers: Markers, haystack: str, identity_only: bool = False) -> list[str]:
    """The markers (or, unless identity_only, just the prefix) in `haystack`."""
    lowered = haystack.lower()
    if identity_only:
        return [m for m in markers.identity if m.lower() in lowered]
    return [m for m in markers.all if m.lower() in lowered] or (
        [PREFIX] if PREFIX in lowered else []
    )


@pytest.fixture
def broker(redis_server: RedisServer) -> Iterator[str]:
    """A Redis database of its own: no other test's worker can take these messages."""
    url = redis_server.url.rsplit("/", 1)[0] + "/7"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def app(pg_url: str, broker: str, tmp_path: Path, smtp: SmtpServer) -> Iterator[Flask]:
    app = create_app(
        app_settings(
            pg_url, tmp_path, broker_url=broker, login_rate_limit="1000/minute",
            **mail_settings(smtp),
        )
    )  # fmt: skip
    app.test_client_class = RecordingClient
    RecordingClient.recorder = UrlRecorder()
    yield app
    dispose_engines(app)


def debug_worker(pg_url: str, broker: str, tmp_path: Path, smtp: SmtpServer, log: Path) -> Any:
    argv = ["worker", "--loglevel", "DEBUG", "--pool", "solo", "--without-gossip",
            "--without-mingle", "--without-heartbeat", "--hostname", "pii@%h"]  # fmt: skip
    return celery_process(argv, pg_url, broker, tmp_path, smtp, log, "ready.")


def client_for(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    login(client, email)
    return client


def csrf(client: FlaskClient, page: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, "no CSRF token"
    return match.group(1)


# --- the scenario -------------------------------------------------------------------------------


def create_marked_patient(app: Flask, clinic: Clinic, m: Markers) -> tuple[FlaskClient, int]:
    """Cara adds the patient through her page; the patient sets a password from the link."""
    cara = client_for(app, clinic.clinician.email)
    form = form_data(text(cara.get("/clinic/patients/new")), "/clinic/patients/new")
    form.update(
        display_name=m.name,
        email=m.email,
        condition_summary=m.condition,
        year_of_birth="1961",
        care_team_id=str(clinic.team_north_id),
    )
    created = cara.post("/clinic/patients/new", data=form)
    assert created.status_code == 200
    link = re.search(r"https?://[^\s\"<]+/welcome/[^\s\"<]+", text(created))
    assert link, "no set-password link"
    path = "/welcome/" + link.group(0).rsplit("/welcome/", 1)[1]
    newcomer = app.test_client()
    data = form_data(text(newcomer.get(path)), path)
    data.update(password=PASSWORD, confirm=PASSWORD)
    assert newcomer.post(path, data=data).status_code == 302
    login(newcomer, m.email)
    with app.app_context():
        patient_id = db.session.scalar(
            sa.select(Patient.id).join(User).where(User.email == m.email)
        )
    assert patient_id is not None
    return newcomer, patient_id


def prescribe(app: Flask, clinic: Clinic, patient_id: int, m: Markers) -> None:
    cara = client_for(app, clinic.clinician.email)
    url = f"/clinic/patients/{patient_id}/program/new"
    data = form_data(text(cara.get(url)), url)
    with app.app_context():
        exercise = db.session.scalar(sa.select(Exercise.id).order_by(Exercise.id).limit(1))
    data.update(
        {
            "title": m.program,
            "start_date": (clinic_today() - dt.timedelta(days=30)).isoformat(),
            "prescriptions-0-exercise_id": str(exercise),
            "prescriptions-0-notes": m.program,
        }
    )
    response = cara.post(url, data=data)
    assert response.status_code == 302, text(response)[:500]


def quiet_patient(app: Flask, clinic: Clinic, m: Markers) -> int:
    """A patient who asked for reminders and has not logged for a week."""
    with app.app_context():
        user = User(
            email=m.quiet_email, display_name=m.quiet_name, role=Role.PATIENT,
            password_hash=password_hash(), reminder_opt_in=True,
            patient=Patient(care_team_id=clinic.team_north_id, condition_summary=m.condition),
        )  # fmt: skip
        db.session.add(user)
        db.session.flush()
        assert user.patient is not None
        exercise = db.session.scalar(sa.select(Exercise.id).order_by(Exercise.id).limit(1))
        assert exercise is not None
        cara = accounts.actor_for(db.session.get(User, clinic.clinician.user_id))  # type: ignore[arg-type]
        create_program(
            db.session, cara, user.patient.id,
            ProgramInput(
                title="Walking", start_date=clinic_today() - dt.timedelta(days=14),
                prescriptions=[PrescriptionInput(exercise_id=exercise, sets=2, reps=5)],
            ),
        )  # fmt: skip
        add_logs(user.patient.id, clinic_today() - dt.timedelta(days=12), [1, 1, 2])
        return user.patient.id


def patient_activity(
    app: Flask, patient: FlaskClient, patient_id: int, m: Markers
) -> dict[str, str]:
    """A fall yesterday, today's log with a red flag, a device key, the API. Returns the
    device key."""
    today = clinic_today()
    event = form_data(text(patient.get("/me/events/new")), "/me/events/new")
    event.update(
        event_type="fall", event_date=(today - dt.timedelta(days=1)).isoformat(),
        fall_location="stairs", fall_steps="4", fall_landed_on="buttocks", side="left",
        body_region=m.pain, description=m.fall,
    )  # fmt: skip
    assert patient.post("/me/events/new", data=event).status_code == 200
    log = form_data(text(patient.get("/me/")), "/me/")
    log.update(
        back_pain="5", leg_pain="8", leg_side="left", pain_location=m.pain, note=m.note,
        red_flags=["new_weakness"],
    )  # fmt: skip
    saved = patient.post("/me/", data=log)
    assert saved.status_code == 200, text(saved)[:500]
    for page in ("/me/", "/me/history", "/me/progress", "/me/account"):
        assert patient.get(page).status_code == 200
    account = text(patient.get("/me/account"))
    created = patient.post(
        "/me/account/tokens", data={"csrf_token": csrf(patient, account), "device_name": m.device}
    )
    key = re.search(r"rhb_[A-Za-z0-9_-]+", text(created))
    assert key, "no device key shown"
    headers = {"Authorization": f"Bearer {key.group(0)}"}
    api = patient
    response = api.post(
        f"/api/v1/patients/{patient_id}/events",
        json={"client_id": uuid.uuid4().hex, "event_date": today.isoformat(),
              "event_type": "other", "description": m.api_event, "body_region": m.pain},
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 201
    for url in ("series", "events", "programs"):
        assert api.get(f"/api/v1/patients/{patient_id}/{url}", headers=headers).status_code == 200
    return headers


def clinician_activity(app: Flask, clinic: Clinic, patient_id: int, m: Markers) -> None:
    cara = client_for(app, clinic.clinician.email)
    base = f"/clinic/patients/{patient_id}"
    for page in ("/clinic/", "/clinic/alerts/", "/clinic/alerts/?show=all", base,
                 f"{base}/summary", "/settings/notifications"):  # fmt: skip
        assert cara.get(page).status_code == 200, page
    findings = form_data(text(cara.get(f"{base}/findings/new")), f"{base}/findings/new")
    findings.update(observation_region=m.pain, observation_text=m.finding)
    assert cara.post(f"{base}/findings/new", data=findings).status_code == 302
    psfs = f"{base}/outcomes/new?instrument=psfs"
    outcome = form_data(text(cara.get(psfs)), psfs)
    for i, activity in enumerate((m.activity, "Stairs", "Lifting")):
        outcome.update({f"activities-{i}-activity": activity, f"activities-{i}-rating": "4"})
    saved = cara.post(psfs, data=outcome)
    assert saved.status_code == 302, text(saved)[-1500:]
    inbox = text(cara.get("/clinic/alerts/"))
    alert = re.search(r"/clinic/alerts/(\d+)/acknowledge", inbox)
    assert alert, "the red flag is not in the inbox"
    token = csrf(cara, inbox)
    acknowledged = cara.post(
        f"/clinic/alerts/{alert.group(1)}/acknowledge",
        data={"csrf_token": token, "note": m.ack, "next": base},
    )
    assert acknowledged.status_code == 303
    cara.get(acknowledged.headers["Location"])
    assert cara.get(base).status_code == 200


def admin_activity(app: Flask, clinic: Clinic) -> None:
    admin = client_for(app, clinic.admin.email)
    for page in ("/admin/", "/admin/audit", "/admin/audit?action=patient.",
                 "/admin/notifications", "/admin/outbox"):  # fmt: skip
        assert admin.get(page).status_code == 200, page


# --- the test -----------------------------------------------------------------------------------


def test_markers_reach_no_log_task_broker_subject_or_url(
    app: Flask, pg_url: str, broker: str, smtp: SmtpServer, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    m = Markers()
    with app.app_context():
        clinic = build_clinic()
    worker_log = tmp_path / "worker.log"
    with TaskRecorder() as tasks:
        patient, patient_id = create_marked_patient(app, clinic, m)
        prescribe(app, clinic, patient_id, m)
        with app.app_context():
            # Four quiet weeks before today: the red flag and the pain stand out.
            add_logs(patient_id, clinic_today() - dt.timedelta(days=26), [1] * 24)
        quiet_id = quiet_patient(app, clinic, m)

        with debug_worker(pg_url, broker, tmp_path, smtp, worker_log):
            headers = patient_activity(app, patient, patient_id, m)
            # The red flag: an urgent e-mail to the care team's clinician.
            smtp.wait_for(1, timeout=60)
            clinician_activity(app, clinic, patient_id, m)
            with app.app_context():
                assert notifications.queue_reminders(db.session, clinic_today()) != []
                db.session.commit()  # the delivery task is sent on commit
            wait_until(lambda: any(m.quiet_email in r.rcpt_tos for r in smtp.messages), 60)
            # Her own login: a new password (a notice to her address) and a new address
            # asked for (a link to it); no body names her, no subject or URL either.
            quiet = client_for(app, m.quiet_email)
            new_password, new_address = (
                "a long phrase nobody guesses 42",
                "fresh-address@elsewhere.test",
            )
            changed = quiet.post("/account/password", data={
                "current_password": PASSWORD, "password": new_password, "confirm": new_password,
                "csrf_token": csrf_token(quiet, "/account/password")})  # fmt: skip
            assert changed.status_code == 303
            asked = quiet.post("/account/email", data={
                "address-email": new_address, "address-current_password": new_password,
                "address-csrf_token": csrf_token(quiet, "/account/password")})  # fmt: skip
            assert asked.status_code == 303
            wait_until(lambda: any(new_address in r.rcpt_tos for r in smtp.messages), 60)
            wait_until(lambda: sum(m.quiet_email in r.rcpt_tos for r in smtp.messages) >= 2, 60)
            admin_activity(app, clinic)
            with app.app_context():
                kinds = set(
                    db.session.scalars(sa.select(Alert.kind).where(Alert.patient_id == patient_id))
                )
            assert "red_flag" in kinds

        # No worker now: what is sent waits in Redis, to be read as the broker holds it.
        waiting = patient.post(
            f"/api/v1/patients/{patient_id}/events",
            json={"client_id": uuid.uuid4().hex, "event_date": clinic_today().isoformat(),
                  "event_type": "fall", "description": m.fall, "body_region": m.pain,
                  "fall_location": "stairs", "fall_steps": 2, "fall_landed_on": "buttocks"},
            headers=headers,
        )  # fmt: skip
        assert waiting.status_code == 201
        client_for(app, clinic.admin.email)  # a login: nothing to send

    # --- the sinks ---
    problems: list[str] = []

    # Application logs (this process, DEBUG) and the worker's log file (DEBUG).
    for record in caplog.records:
        if record.name.startswith(TEST_SERVERS):
            continue
        line = f"{record.name} {record.getMessage()} {record.exc_text or ''}"
        if found(m, line):
            problems.append(f"log record {record.name}: {line[:200]}")
    worker_text = worker_log.read_text(errors="replace")
    assert "rehab.evaluate_patient" in worker_text and "rehab.deliver_notification" in worker_text
    for line in worker_text.splitlines():
        if found(m, line):
            problems.append(f"worker log: {line[:200]}")

    # Task arguments: ids only, in every message this process published.
    assert {name for name, *_ in tasks.messages} >= {
        "rehab.evaluate_patients", "rehab.deliver_notification"
    }  # fmt: skip
    for name, args, kwargs, message_headers in tasks.messages:
        assert all(isinstance(a, int) or (isinstance(a, list) and all(
            isinstance(i, int) for i in a)) for a in args), (name, args)  # fmt: skip
        assert not kwargs, (name, kwargs)
        if found(m, repr((args, message_headers))):
            problems.append(f"task message {name}: {message_headers}")

    # The broker's own copy of the waiting messages.
    queued = redis.Redis.from_url(broker).lrange("celery", 0, -1)
    assert queued, "nothing waiting in Redis"
    for raw in queued:
        envelope, body = decode_kombu_message(raw)
        assert envelope["headers"]["task"].startswith("rehab.")
        if found(m, raw.decode() + body):
            problems.append(f"broker message: {envelope['headers']}")
    for key in redis.Redis.from_url(broker).keys("*"):
        if found(m, key.decode()):
            problems.append(f"redis key {key!r}")

    # E-mail: subjects never; bodies never the name or address; the To header only the
    # recipient's own address.
    messages = smtp.messages
    assert len(messages) >= 2
    to_patient = [r for r in messages if m.quiet_email in r.rcpt_tos]
    assert to_patient, "no reminder reached the patient"
    for received in messages:
        if found(m, received.subject):
            problems.append(f"subject: {received.subject}")
        body = received.text() + received.html()
        if found(m, body, identity_only=True):
            problems.append(f"e-mail body to {received.rcpt_tos}: {found(m, body, True)}")
        headers_text = "\n".join(
            f"{k}: {v}" for k, v in received.message.items() if k.lower() not in ("to",)
        )
        if found(m, headers_text):
            problems.append(f"e-mail headers: {headers_text[:300]}")
        if received.message["To"] and m.quiet_email not in received.rcpt_tos:
            assert not found(m, str(received.message["To"])), received.message["To"]
        for url in urls_in_text(body):
            RecordingClient.recorder.add("e-mail link", url)
    reminder_body = to_patient[0].text() + to_patient[0].html()
    assert not found(m, reminder_body), found(m, reminder_body)

    # URLs: requested, redirected to, linked, posted to, in JSON and in e-mails.
    urls = RecordingClient.recorder.urls
    assert len(urls) > 300
    assert any(where == "e-mail link" and "/clinic/patients/" in u for where, u in urls)
    for where, url in urls:
        if found(m, url):
            problems.append(f"URL ({where}): {url}")

    assert not problems, "\n".join(problems[:40])
    print(
        f"\nPII sinks: {len(caplog.records)} log records, {len(worker_text.splitlines())} "
        f"worker log lines, {len(tasks.messages)} task messages, {len(queued)} queued in "
        f"Redis, {len(messages)} e-mails, {len(urls)} URLs; {len(m.all)} markers"
    )
    assert quiet_id


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_demo_broker_holds_ids_only(database_url: str, tmp_path: Path) -> None:
    """The demo's SQLite broker table: what a patient's log and event put there."""
    broker_url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    app = create_app(app_settings(database_url, tmp_path, broker_url=broker_url))
    try:
        m = Markers()
        with app.app_context():
            clinic = build_clinic()
            user = db.session.get(User, clinic.patient_a.user_id)
            assert user is not None
            user.display_name, user.email = m.name, m.email
            db.session.commit()
        a = clinic.patient_a.patient_id
        api = app.test_client()
        headers = {"Authorization": f"Bearer {clinic.patient_a.token}"}
        today = clinic_today().isoformat()
        log = api.post(
            f"/api/v1/patients/{a}/logs",
            json={"client_id": uuid.uuid4().hex, "log_date": today, "back_pain": 3,
                  "leg_pain": 7, "leg_side": "left", "pain_location": m.pain, "note": m.note,
                  "red_flags": ["saddle_numbness"]},
            headers=headers,
        )  # fmt: skip
        assert log.status_code == 201
        event = api.post(
            f"/api/v1/patients/{a}/events",
            json={"client_id": uuid.uuid4().hex, "event_date": today, "event_type": "other",
                  "description": m.api_event},
            headers=headers,
        )  # fmt: skip
        assert event.status_code == 201
        dispatch.flush()  # the evaluation requests gathered in this process
        payloads = sqlite_broker_messages(broker_url)
        assert payloads
        for payload in payloads:
            envelope, body = decode_kombu_message(payload)
            assert envelope["headers"]["task"] == "rehab.evaluate_patients"
            assert body.startswith(f"[[[{a}]], {{}}")
            assert not found(m, payload + body), payload
    finally:
        dispose_engines(app)
