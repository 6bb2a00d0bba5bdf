"""Delivery through real processes: a Celery worker (and beat, where the re-sender matters) on
Redis and PostgreSQL, sending to a real SMTP server (aiosmtpd) in this process.

Each test says which promise of the outbox it checks: one message per care-team clinician,
retries on 4xx, no retry on 5xx (and the failure on the dashboard), an outage, a task run
twice, a lost task after a broker restart, a worker lost after its claim, digests, and
reminders with their unsubscribe link.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery
from flask import Flask

from rehab import create_app
from rehab.db.models import Alert, Notification, NotificationStatus, User, utcnow
from rehab.devservers import RedisServer
from rehab.domain.vocabulary import NotifyMode
from rehab.extensions import db
from rehab.notifications import render
from rehab.services import notifications
from rehab.services.time import clinic_today
from tests.conftest import app_settings, dispose_engines
from tests.integration.test_notifications_outbox import (
    PUBLIC_URL,
    SECRET,
    add_clinician,
    assert_subject_is_impersonal,
    make_alert,
    rows,
)
from tests.support.clinic import Clinic, build_clinic, csrf_token, login
from tests.support.history import add_logs
from tests.support.pages import visible_text
from tests.support.smtp import SmtpServer
from tests.support.worker import running_worker, wait_for_log, wait_until, worker_env

pytestmark = pytest.mark.slow

# Fast retries and a short claim timeout, so the scenarios take seconds.
TIMING = {
    "notify_backoff_seconds": "0.2",
    "notify_backoff_max_seconds": "1",
    "notify_max_attempts": "20",
    "notify_claim_timeout_seconds": "3",
    "notify_resend_interval_seconds": "1",
}


def mail_settings(smtp: SmtpServer) -> dict[str, str]:
    return {"smtp_url": smtp.url, "public_url": PUBLIC_URL, "secret_key": SECRET, **TIMING}


def env_of(settings: dict[str, str]) -> dict[str, str]:
    return {f"REHAB_{k.upper()}": v for k, v in settings.items()}


@pytest.fixture
def app(
    pg_url: str, redis_server: RedisServer, tmp_path: Path, smtp: SmtpServer
) -> Iterator[Flask]:
    app = create_app(
        app_settings(pg_url, tmp_path, broker_url=redis_server.url, **mail_settings(smtp))
    )
    yield app
    dispose_engines(app)


@pytest.fixture
def clinic(app: Flask) -> Clinic:
    with app.app_context():
        return build_clinic()


@contextmanager
def worker(
    db_url: str, broker: RedisServer | str, tmp_path: Path, smtp: SmtpServer, name: str = "worker"
) -> Iterator[subprocess.Popen[bytes]]:
    with running_worker(
        db_url,
        broker if isinstance(broker, str) else broker.url,
        tmp_path / "instance",
        tmp_path / f"{name}.log",
        concurrency=2,
        extra_env=env_of(mail_settings(smtp)),
    ) as process:
        yield process


@contextmanager
def celery_process(
    argv: list[str], pg_url: str, broker: str, tmp_path: Path, smtp: SmtpServer, log: Path,
    ready: str,
) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    """A celery process in its own process group (so it can be killed with its children)."""
    celery = str(Path(sys.executable).parent / "celery")
    env = worker_env(pg_url, broker, tmp_path / "instance", **env_of(mail_settings(smtp)))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [celery, "-A", "worker", *argv], env=env, stdout=out, stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2], start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_log(log, ready, process)
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)


def beat(db_url: str, broker: RedisServer | str, tmp_path: Path, smtp: SmtpServer) -> Any:
    argv = ["beat", "--loglevel", "INFO", "--schedule", str(tmp_path / "beat-schedule")]
    broker_url = broker if isinstance(broker, str) else broker.url
    return celery_process(
        argv, db_url, broker_url, tmp_path, smtp, tmp_path / "beat.log", "beat: Starting"
    )


def solo_worker(
    pg_url: str, redis: RedisServer, tmp_path: Path, smtp: SmtpServer, name: str
) -> Any:
    argv = ["worker", "--loglevel", "INFO", "--pool", "solo", "--without-gossip",
            "--without-mingle", "--without-heartbeat", "--hostname", f"{name}@%h"]  # fmt: skip
    return celery_process(
        argv, pg_url, redis.url, tmp_path, smtp, tmp_path / f"{name}.log", "ready."
    )


def statuses(app: Flask, **where: object) -> list[tuple[NotificationStatus, int]]:
    with app.app_context():
        return [(r.status, r.attempts) for r in rows(**where)]


def settle(smtp: SmtpServer, count: int, seconds: float = 2.0) -> None:
    """No further message arrives for a while."""
    time.sleep(seconds)
    assert len(smtp.messages) == count


def patient_ids(clinic: Clinic) -> tuple[int, int]:
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    assert a is not None and b is not None
    return a, b


# --- the tests ----------------------------------------------------------------------------


def test_a_red_flag_log_reaches_each_care_team_clinician_once(
    app: Flask, clinic: Clinic, smtp: SmtpServer, pg_url: str, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    _, b = patient_ids(clinic)
    with app.app_context():
        nina = add_clinician("nina@clinic.test", "Nina Clinician", clinic.team_north_id)
        add_clinician("ola@clinic.test", "Ola Gone", clinic.team_north_id, active=False)
        add_clinician("pia@clinic.test", "Pia Digest", clinic.team_north_id, mode=NotifyMode.DIGEST)
        today = clinic_today()
        add_logs(b, today - dt.timedelta(days=9), [1] * 9)
    with worker(pg_url, redis_server, tmp_path, smtp):
        response = app.test_client().post(
            f"/api/v1/patients/{b}/logs",
            json={"client_id": uuid.uuid4().hex, "log_date": today.isoformat(),
                  "back_pain": 1, "leg_pain": 2, "leg_side": "left",
                  "red_flags": ["new_weakness"]},
            headers={"Authorization": f"Bearer {clinic.patient_b.token}"},
        )  # fmt: skip
        assert response.status_code == 201
        # Urgent: at once, also for the clinician who chose the digest.
        messages = smtp.wait_for(3, timeout=60)
        settle(smtp, 3)
    recipients = sorted(r for m in messages for r in m.rcpt_tos)
    assert recipients == ["cara@clinic.test", "nina@clinic.test", "pia@clinic.test"]
    with app.app_context():
        sent = rows()
        assert {r.status for r in sent} == {NotificationStatus.SENT}
        assert {r.recipient_user_id for r in sent} >= {clinic.clinician.user_id, nina}
        by_id = {r.message_id: r for r in sent}
    for message in messages:
        assert message.subject == render.URGENT_SUBJECT
        assert_subject_is_impersonal(message.subject, b)
        assert message.message["Message-ID"] in by_id  # the Message-ID is recorded
        plain = message.text()
        assert "Red flag reported" in plain and "New weakness" in plain
        assert f"{PUBLIC_URL}/clinic/patients/{b}" in plain and "Bob" not in plain
        assert f"{PUBLIC_URL}/clinic/patients/{b}" in message.html()


def test_451_three_times_then_250_is_delivered_once_after_retries(
    app: Flask, clinic: Clinic, smtp: SmtpServer, pg_url: str, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    a, _ = patient_ids(clinic)
    smtp.fail_next(3, "451 4.3.0 Try again later")
    with worker(pg_url, redis_server, tmp_path, smtp):
        with app.app_context():
            alert_id = make_alert(a)
        smtp.wait_for(1, timeout=60)
        settle(smtp, 1)
    assert smtp.data_attempts == 4
    assert statuses(app, alert_id=alert_id) == [(NotificationStatus.SENT, 4)]


def test_550_fails_without_retry_and_shows_on_the_dashboard(
    app: Flask, clinic: Clinic, smtp: SmtpServer, pg_url: str, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    a, _ = patient_ids(clinic)
    smtp.answer_always("550 5.1.1 <cara@clinic.test> Mailbox unavailable")
    with worker(pg_url, redis_server, tmp_path, smtp), beat(pg_url, redis_server, tmp_path, smtp):
        with app.app_context():
            alert_id = make_alert(a)
        wait_until(lambda: statuses(app, alert_id=alert_id)[0][0] is NotificationStatus.FAILED)
        time.sleep(3)  # the re-sender runs every second: it must leave the row alone
    assert statuses(app, alert_id=alert_id) == [(NotificationStatus.FAILED, 1)]
    assert smtp.data_attempts == 1 and smtp.messages == []

    client = app.test_client()
    login(client, clinic.clinician.email)
    inbox = visible_text(client.get("/clinic/alerts/"))
    assert "E-mails that could not be delivered to you" in inbox
    assert "550 5.1.1 <address> Mailbox unavailable" in inbox
    client.post("/logout", data={"csrf_token": csrf_token(client, "/clinic/alerts/")})
    login(client, clinic.admin.email)
    admin = visible_text(client.get("/admin/notifications"))
    assert "failed: 1" in admin and "550 5.1.1" in admin


def test_server_down_then_up_is_delivered_once(
    app: Flask, clinic: Clinic, smtp: SmtpServer, pg_url: str, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    a, _ = patient_ids(clinic)
    smtp.stop()
    with worker(pg_url, redis_server, tmp_path, smtp):
        with app.app_context():
            alert_id = make_alert(a)

        def refused_twice() -> bool:
            # Two attempts made and failed: a claim counts its attempt when it starts (status
            # sending, the previous error still on the row), so wait for the retry to be due.
            with app.app_context():
                (row,) = rows(alert_id=alert_id)
                return (
                    row.attempts >= 2
                    and row.status is NotificationStatus.PENDING
                    and row.last_error == "connection refused"
                )

        wait_until(refused_twice, timeout=60)
        smtp.start()
        smtp.wait_for(1, timeout=60)
        settle(smtp, 1)
    ((status, attempts),) = statuses(app, alert_id=alert_id)
    assert status is NotificationStatus.SENT and attempts >= 3


def test_a_delivery_task_run_twice_sends_one_message(
    app: Flask, clinic: Clinic, smtp: SmtpServer, pg_url: str, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    a, _ = patient_ids(clinic)
    with app.app_context():
        # Its task waits in the queue; two more copies join it, then a worker with two
        # processes takes them at once.
        alert_id = make_alert(a)
        ((notification_id, _),) = [(r.id, r) for r in rows(alert_id=alert_id)]
    celery: Celery = app.extensions["celery"]
    for _ in range(2):
        celery.send_task("rehab.deliver_notification", args=[notification_id])
    with worker(pg_url, redis_server, tmp_path, smtp):
        smtp.wait_for(1, timeout=60)
        log = tmp_path / "worker.log"
        wait_until(lambda: log.read_text().count("rehab.deliver_notification") >= 6)
        settle(smtp, 1, 1.0)
        celery.send_task("rehab.deliver_notification", args=[notification_id])
        settle(smtp, 1)
    assert statuses(app, id=notification_id) == [(NotificationStatus.SENT, 1)]


def test_a_broker_restart_loses_no_notification(
    app: Flask, clinic: Clinic, smtp: SmtpServer, pg_url: str, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    a, _ = patient_ids(clinic)
    with app.app_context():
        alert_id = make_alert(a)  # its task is in Redis; no worker is running
    redis_server.restart()  # in-memory broker: the task is gone
    with worker(pg_url, redis_server, tmp_path, smtp), beat(pg_url, redis_server, tmp_path, smtp):
        smtp.wait_for(1, timeout=60)
        settle(smtp, 1)
    assert statuses(app, alert_id=alert_id) == [(NotificationStatus.SENT, 1)]


def test_a_claim_whose_worker_died_before_sending_is_sent_by_the_resender(
    app: Flask, clinic: Clinic, smtp: SmtpServer, pg_url: str, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    a, _ = patient_ids(clinic)
    with app.app_context():
        alert_id = make_alert(a)  # its task waits for a worker
        (row,) = rows(alert_id=alert_id)
        notification_id = row.id
        # The crash: claimed (committed), never sent, never finished. When the worker comes,
        # the queued task finds nothing to claim; the re-sender takes the row back.
        assert notifications.claim(db.session, notification_id) is not None
    with worker(pg_url, redis_server, tmp_path, smtp), beat(pg_url, redis_server, tmp_path, smtp):
        smtp.wait_for(1, timeout=60)
        settle(smtp, 1)
    assert statuses(app, id=notification_id) == [(NotificationStatus.SENT, 2)]
    (line,) = [
        line
        for line in (tmp_path / "worker.log").read_text().splitlines()
        if f"notification {notification_id} was claimed more than 3 s ago" in line
    ]
    assert "may duplicate" in line and "@" not in line and "Alice" not in line


def test_a_worker_killed_while_sending_duplicates_at_most_once_with_the_same_message_id(
    app: Flask, clinic: Clinic, smtp: SmtpServer, pg_url: str, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    a, _ = patient_ids(clinic)
    release = smtp.hold()
    with beat(pg_url, redis_server, tmp_path, smtp):
        with solo_worker(pg_url, redis_server, tmp_path, smtp, "first") as first:
            with app.app_context():
                alert_id = make_alert(a)
            # The message has reached the server; the worker waits for its answer. Kill it.
            assert smtp.handler.holding.wait(30)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
        release.set()
        assert statuses(app, alert_id=alert_id) == [(NotificationStatus.SENDING, 1)]
        with solo_worker(pg_url, redis_server, tmp_path, smtp, "second"):
            messages = smtp.wait_for(2, timeout=60)
            settle(smtp, 2)
    assert statuses(app, alert_id=alert_id) == [(NotificationStatus.SENT, 2)]
    # The duplicate is the same message: same Message-ID, so mail clients can tell.
    assert messages[0].message["Message-ID"] == messages[1].message["Message-ID"]
    assert "attempt 2 may duplicate it" in (tmp_path / "second.log").read_text()


def test_digest_mode_batches_routine_alerts_into_one_message(
    app: Flask, clinic: Clinic, smtp: SmtpServer, pg_url: str, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    a, b = patient_ids(clinic)
    with app.app_context():
        cara = db.session.get(User, clinic.clinician.user_id)
        assert cara is not None
        cara.notify_mode = NotifyMode.DIGEST
        db.session.commit()
    with worker(pg_url, redis_server, tmp_path, smtp), beat(pg_url, redis_server, tmp_path, smtp):
        with app.app_context():
            first = make_alert(a, severity="routine", kind="pain_regression", metric="leg_pain")
            second = make_alert(b, severity="routine", kind="pain_regression", metric="leg_pain")
        settle(smtp, 0, 3.0)  # routine alerts wait for the digest hour
        with app.app_context():
            # The digest hour comes.
            db.session.execute(
                sa.update(Notification).values(
                    deliver_after=sa.func.now(), next_attempt_at=sa.func.now()
                )
            )
            db.session.commit()
        (message,) = smtp.wait_for(1, timeout=60)
        settle(smtp, 1)
    assert message.rcpt_tos == [clinic.clinician.email]
    assert message.subject == "[rehab] Daily summary: 2 new alerts on your caseload"
    plain = message.text()
    assert f"/clinic/patients/{a}" in plain and f"/clinic/patients/{b}" in plain
    with app.app_context():
        sent = rows()
        assert {r.alert_id for r in sent} == {first, second}
        assert {(r.status, r.message_id) for r in sent} == {
            (NotificationStatus.SENT, message.message["Message-ID"])
        }


def test_a_reminder_is_delivered_and_its_unsubscribe_link_works(
    app: Flask, clinic: Clinic, smtp: SmtpServer, pg_url: str, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    with app.app_context():
        for person in (clinic.patient_a, clinic.patient_b):
            user = db.session.get(User, person.user_id)
            assert user is not None
            user.reminder_opt_in = person is clinic.patient_a
        db.session.commit()
    with worker(pg_url, redis_server, tmp_path, smtp):
        with app.app_context():
            # No logs at all since the program began: both are due; only a opted in.
            notifications.queue_reminders(db.session, clinic_today())
            db.session.commit()
        (message,) = smtp.wait_for(1, timeout=60)
        settle(smtp, 1)
    assert message.rcpt_tos == [clinic.patient_a.email]
    assert message.subject == render.REMINDER_SUBJECT
    url = str(message.message["List-Unsubscribe"]).strip("<>")
    assert message.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    client = app.test_client()
    response = client.post(url.removeprefix(PUBLIC_URL), data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 204
    with app.app_context():
        user = db.session.get(User, clinic.patient_a.user_id)
        assert user is not None and not user.reminder_opt_in


def test_a_forgotten_password_link_arrives_and_sets_a_new_password(
    app: Flask, clinic: Clinic, smtp: SmtpServer, pg_url: str, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The login page's "Forgot your password?" through the worker to a real SMTP server."""
    client = app.test_client()
    with worker(pg_url, redis_server, tmp_path, smtp):
        token = csrf_token(client, "/login/forgot")
        asked = client.post(
            "/login/forgot", data={"email": clinic.clinician.email, "csrf_token": token}
        )
        assert asked.status_code == 200
        (message,) = smtp.wait_for(1, timeout=60)
        settle(smtp, 1)
    assert message.rcpt_tos == [clinic.clinician.email]
    assert message.subject == render.PASSWORD_RESET_SUBJECT
    assert_subject_is_impersonal(message.subject, clinic.clinician.user_id)
    url = next(word for word in message.text().split() if word.startswith(PUBLIC_URL + "/reset/"))
    path = url.removeprefix(PUBLIC_URL)
    form = {
        "password": "a long phrase nobody guesses 42",
        "confirm": "a long phrase nobody guesses 42",
    }
    chosen = client.post(path, data={**form, "csrf_token": csrf_token(client, path)})
    assert chosen.status_code == 302
    assert client.get(path).status_code == 400  # once only
    with app.app_context():
        (row,) = rows(purpose="password_reset")
        assert (row.status, row.message_id) == (
            NotificationStatus.SENT, message.message["Message-ID"]
        )  # fmt: skip


def test_the_demo_setup_sqlite_database_and_broker_delivers(
    sqlite_url: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    """The demo's set-up: SQLite database, Celery's SQLite transport, worker and beat. The
    alert is written here with its task sent to a broker nobody reads (a lost task): beat's
    re-sender finds the row and the worker delivers it."""
    broker = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    app = create_app(
        app_settings(sqlite_url, tmp_path, broker_url="memory://", **mail_settings(smtp))
    )
    try:
        with app.app_context():
            clinic = build_clinic()
            a, _ = patient_ids(clinic)
        with worker(sqlite_url, broker, tmp_path, smtp), beat(sqlite_url, broker, tmp_path, smtp):
            with app.app_context():
                alert_id = make_alert(a)
            (message,) = smtp.wait_for(1, timeout=60)
            settle(smtp, 1)
        assert message.rcpt_tos == [clinic.clinician.email]
        assert statuses(app, alert_id=alert_id) == [(NotificationStatus.SENT, 1)]
    finally:
        dispose_engines(app)


def test_an_urgent_alert_nobody_acknowledged_is_followed_up_by_the_worker(
    app: Flask, clinic: Clinic, smtp: SmtpServer, pg_url: str, redis_server: RedisServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Beat's follow-up task, run by the worker twice (two ticks, or a redelivery): the care
    team's clinician gets the alert again and the admin the notice, once each."""
    a, _ = patient_ids(clinic)
    with app.app_context():
        alert_id = make_alert(a)
        # Its first e-mail went out 241 minutes ago (urgent_follow_up_minutes = 240); the
        # task still in Redis finds it sent.
        past = utcnow() - dt.timedelta(minutes=241)
        db.session.execute(sa.update(Alert).where(Alert.id == alert_id).values(created_at=past))
        db.session.execute(
            sa.update(Notification)
            .where(Notification.alert_id == alert_id)
            .values(created_at=past, sent_at=past, status=NotificationStatus.SENT, attempts=1)
        )
        db.session.commit()
    with worker(pg_url, redis_server, tmp_path, smtp):
        with app.app_context():
            celery: Celery = app.extensions["celery"]
            for _ in range(2):
                celery.send_task("rehab.follow_up_alerts")
        messages = smtp.wait_for(2, timeout=60)
        settle(smtp, 2)
    assert sorted((m.subject, m.rcpt_tos) for m in messages) == [
        (render.FOLLOW_UP_NOTICE_SUBJECT, [clinic.admin.email]),
        (render.FOLLOW_UP_SUBJECT, [clinic.clinician.email]),
    ]
    with app.app_context():
        assert {r.status for r in rows(alert_id=alert_id)} == {NotificationStatus.SENT}
