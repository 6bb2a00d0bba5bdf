"""Faults, nothing lost (issue 6, item 7): real PostgreSQL, Redis, Celery worker and beat, and
aiosmtpd, while 200 logs that must raise known alerts come in over the API.

Faults injected, in this order, while the logs are being submitted:
1. the worker is SIGKILLed in the middle of an evaluation (held at the patient's evaluation
   lock, so it is provably mid-task), then started again;
2. the worker is SIGKILLed while an alert e-mail's DATA waits for the server's answer (the
   message has arrived: the crash window that duplicates), then started again;
3. Redis is SIGKILLed and restarted empty, logs keep coming meanwhile (the send after commit
   fails softly; every queued task is gone);
4. SMTP refuses connections for a while, then answers 451 for a while, then recovers;
5. the worker is SIGKILLed once more at an arbitrary moment of the run, then started again.

The test never re-sends anything: recovery comes from the product's own periodic jobs (the
scan for evaluations whose task was lost, the notification re-sender for lost deliveries and
claims of dead workers), run by a real beat on shortened intervals.

Afterwards: every 2xx log is stored exactly once; each expected alert exists exactly once and
no other; each (alert, care-team clinician) e-mail arrived at the SMTP server, with at most one
duplicate per worker crash, each duplicate announced by a warning in the worker log; no
notification is left pending, sending or failed.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from rehab import create_app
from rehab.db.models import Alert, Notification, NotificationStatus, SessionLog, User
from rehab.devservers import RedisServer, start_redis
from rehab.extensions import db
from rehab.services.time import clinic_today
from tests.conftest import app_settings, dispose_engines
from tests.support.faults import (
    CeleryProcess,
    FaultClinic,
    Submitter,
    api_logs,
    broker_backlog,
    build_fault_clinic,
    celery_beat,
    celery_env,
    celery_worker,
    evaluation_lock_waiters,
    hold_evaluation_lock,
)
from tests.support.smtp import SmtpServer
from tests.support.worker import wait_until

pytestmark = pytest.mark.slow

PUBLIC_URL = "https://rehab.example"
# Short intervals so that recovery takes seconds: scan every 2 s, re-sender every second,
# a claim older than 3 s is a dead worker's, retries 0.2 s apart growing to at most 1 s.
SETTINGS = {
    "public_url": PUBLIC_URL,
    "secret_key": "f" * 40,
    "scan_interval_seconds": "2",
    "notify_resend_interval_seconds": "1",
    "notify_claim_timeout_seconds": "3",
    "notify_backoff_seconds": "0.2",
    "notify_backoff_max_seconds": "1",
    "notify_max_attempts": "60",
}
TEAMS = {"North": 2, "South": 1}  # clinicians per care team
PATIENTS_PER_TEAM = 50  # 100 patients, 2 logs each: 200 logs
RED_FLAG_EVERY = 3  # one patient in three reports a red flag today
DUPLICATE_WARNING = re.compile(r"notification (\d+) was claimed more than .* may duplicate it")
RESENDER_LINE = re.compile(r"re-sender: (\d+) notifications")
SCAN_LINE = re.compile(r"scan queued (\d+) patients")
TAKEN_BACK_WARNING = re.compile(r"notifications \[([\d, ]+)\] were sent but taken back")


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A Redis of this test's own: it is killed and restarted empty."""
    server = start_redis()
    yield server
    server.close()


class SendFailures(logging.Handler):
    """Counts the app's "could not send task" warnings (the soft failure after commit)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "could not send task" in record.getMessage():
            self.count += 1


def wait_past_midnight_risk() -> None:
    """Every process reads "today" from the clock: do not straddle midnight (UTC)."""
    now = dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    if (midnight - now).total_seconds() < 240:
        time.sleep((midnight - now).total_seconds() + 1)


@pytest.fixture
def app(pg_url: str, redis: RedisServer, smtp: SmtpServer, tmp_path: Path) -> Iterator[Flask]:
    settings = {**SETTINGS, "smtp_url": smtp.url}
    app = create_app(app_settings(pg_url, tmp_path, broker_url=redis.url, **settings))
    yield app
    dispose_engines(app)


def test_nothing_is_lost_through_worker_redis_and_smtp_faults(
    app: Flask, pg_url: str, redis: RedisServer, smtp: SmtpServer, tmp_path: Path
) -> None:
    wait_past_midnight_risk()
    settings = {**SETTINGS, "smtp_url": smtp.url}
    env = celery_env(pg_url, redis.url, tmp_path / "instance", settings)
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    worker = celery_worker("worker", env, tmp_path)
    beat = celery_beat(env, tmp_path)
    send_failures = SendFailures()
    dispatch_log = logging.getLogger("rehab.services.dispatch")
    dispatch_log.addHandler(send_failures)
    events: list[str] = []
    started = time.monotonic()
    release_lock: Callable[[], None] = lambda: None  # noqa: E731
    release_mail = threading.Event()
    submitter: Submitter | None = None

    def note(text: str) -> None:
        events.append(f"{time.monotonic() - started:5.1f}s {text}")

    try:
        with app.app_context():
            clinic = build_fault_clinic(TEAMS, PATIENTS_PER_TEAM, RED_FLAG_EVERY, clinic_today())
        planned = api_logs(clinic)
        assert len(planned) == 200
        first_patient = planned[0][0].id
        # Fault 1 is armed before anything runs: the first log's evaluation will wait here.
        release_lock = hold_evaluation_lock(dsn, first_patient)
        beat.start()
        worker.start()
        # The last 120 logs wait for the Redis crash (fault 3), so that it meets logs coming in.
        submitter = Submitter(app, planned, interval=0.15, pause_at=80)
        submitter.start()
        note("submitting 200 logs, 0.15 s apart")

        # 1. SIGKILL mid-evaluation.
        wait_until(lambda: evaluation_lock_waiters(dsn, first_patient) > 0, timeout=60)
        worker.kill()
        note(
            f"fault 1: worker SIGKILLed while evaluating (after {submitter.posted} logs; "
            f"broker then {broker_backlog(redis.url)})"
        )
        release_lock()
        worker.start()

        # 2. SIGKILL while an e-mail waits for the server's answer to its DATA.
        release_mail = smtp.hold()
        assert smtp.handler.holding.wait(60), "no e-mail was sent"
        worker.kill()
        release_mail.set()
        with smtp.handler.lock:
            smtp.handler._hold = None
        note(
            f"fault 2: worker SIGKILLed during SMTP DATA (after {submitter.posted} logs; "
            f"broker then {broker_backlog(redis.url)})"
        )
        worker.start()

        # 3. Redis SIGKILLed and restarted empty, logs coming in meanwhile.
        posted_before = submitter.posted
        lost = broker_backlog(redis.url)
        redis.kill()
        submitter.resume()
        note(f"fault 3: Redis SIGKILLed (after {posted_before} logs; its content lost: {lost})")
        time.sleep(4)
        redis.restart()
        redis_outage_posts = submitter.posted - posted_before
        note(f"fault 3: Redis restarted empty ({redis_outage_posts} logs posted while down)")

        # 4. SMTP refuses connections, then answers 451, then recovers.
        smtp.stop()
        note(f"fault 4: SMTP refusing connections (after {submitter.posted} logs)")
        time.sleep(4)
        smtp.answer_always("451 4.3.0 Try again later")
        smtp.start()
        note("fault 4: SMTP answering 451")
        time.sleep(4)
        smtp.answer_always(None)
        note(f"fault 4: SMTP recovered (after {submitter.posted} logs)")

        # 5. SIGKILL at an arbitrary moment.
        time.sleep(1.0)
        worker.kill()
        note(
            f"fault 5: worker SIGKILLed at an arbitrary moment (after {submitter.posted} logs; "
            f"broker then {broker_backlog(redis.url)})"
        )
        worker.start()

        assert redis_outage_posts > 0, "Redis was down while no log was coming in"
        submitter.join(120)
        note("all logs submitted")
        expected = expected_alerts(clinic)
        recipients = expected_recipients(clinic, expected)
        try:
            wait_until(
                lambda: quiescent(app, smtp, clinic, len(recipients)), timeout=120, interval=1
            )
        except TimeoutError:
            pytest.fail(f"no quiescence: {state(app, smtp, clinic, submitter)}; {events}")
        note("quiescent")
    finally:
        if submitter is not None:
            submitter.stop()
        release_lock()
        release_mail.set()  # a held SMTP conversation must not outlive the test
        dispatch_log.removeHandler(send_failures)
        worker.stop()
        beat.stop()

    summary = check_everything(
        app, clinic, smtp, submitter, worker, worker.log_text(), expected, recipients
    )
    summary.update(
        events=events,
        send_failures_after_commit=send_failures.count,
        posts_while_redis_down=redis_outage_posts,
        seconds=round(time.monotonic() - started, 1),
    )
    (tmp_path / "faults-summary.json").write_text(json.dumps(summary, indent=2))
    print("\n" + json.dumps(summary, indent=2))
    # The Redis outage made the app's after-commit sends fail, softly.
    assert send_failures.count > 0


def expected_alerts(clinic: FaultClinic) -> dict[int, tuple[str, str]]:
    """patient id -> the one alert (kind, metric) its two logs must raise, detected today."""
    return {
        p.id: ("red_flag", "") if p.red_flag else ("pain_regression", "leg_pain")
        for p in clinic.patients
    }


def expected_recipients(
    clinic: FaultClinic, expected: dict[int, tuple[str, str]]
) -> set[tuple[int, int]]:
    """(patient id, clinician user id): one e-mail each (every clinician wants them at once)."""
    return {
        (pid, user_id) for pid in expected for user_id in clinic.clinicians[clinic.team_of(pid)]
    }


def quiescent(app: Flask, smtp: SmtpServer, clinic: FaultClinic, notifications: int) -> bool:
    """Every expected notification row exists and none is waiting; no new mail for 2 s."""
    ids = [p.id for p in clinic.patients]
    with app.app_context():
        statuses = collections.Counter(
            db.session.scalars(
                sa.select(Notification.status)
                .join(Alert, Alert.id == Notification.alert_id)
                .where(Alert.patient_id.in_(ids))
            )
        )
        db.session.rollback()
    if statuses[NotificationStatus.SENT] < notifications or (
        statuses[NotificationStatus.PENDING] + statuses[NotificationStatus.SENDING]
    ):
        return False
    count = len(smtp.messages)
    time.sleep(2)
    return len(smtp.messages) == count


def state(app: Flask, smtp: SmtpServer, clinic: FaultClinic, submitter: Submitter) -> str:
    ids = [p.id for p in clinic.patients]
    with app.app_context():
        alerts = db.session.scalar(
            sa.select(sa.func.count()).select_from(Alert).where(Alert.patient_id.in_(ids))
        )
        logs = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(SessionLog)
            .where(SessionLog.patient_id.in_(ids), SessionLog.source != "test")
        )
        statuses = db.session.execute(
            sa.select(Notification.status, sa.func.count()).group_by(Notification.status)
        ).all()
        db.session.rollback()
    answers = collections.Counter(a.status for a in submitter.answers)
    return (
        f"answers {dict(answers)}, API logs stored {logs}, alerts {alerts}, "
        f"notifications {dict((str(s), n) for s, n in statuses)}, "
        f"messages {len(smtp.messages)}, errors {submitter.errors[:3]}"
    )


def check_everything(
    app: Flask,
    clinic: FaultClinic,
    smtp: SmtpServer,
    submitter: Submitter,
    worker: CeleryProcess,
    worker_log: str,
    expected: dict[int, tuple[str, str]],
    recipients: set[tuple[int, int]],
) -> dict[str, object]:
    ids = [p.id for p in clinic.patients]
    answers = submitter.answers
    # --- logs: every 2xx stored exactly once, nothing else stored --------------------------
    assert submitter.errors == []
    statuses = collections.Counter(a.status for a in answers)
    assert set(statuses) <= {200, 201}, statuses
    accepted = {a.client_id for a in answers if 200 <= a.status < 300}
    with app.app_context():
        stored = db.session.execute(
            sa.select(SessionLog.client_id, sa.func.count())
            .where(SessionLog.patient_id.in_(ids), SessionLog.source != "test")
            .group_by(SessionLog.client_id)
        ).all()
        alerts = db.session.execute(
            sa.select(
                Alert.id, Alert.patient_id, Alert.kind, Alert.metric, Alert.detected_on
            ).where(Alert.patient_id.in_(ids))
        ).all()
        rows = db.session.execute(
            sa.select(
                Notification.id,
                Notification.alert_id,
                Notification.recipient_user_id,
                Notification.status,
                Notification.attempts,
                Notification.message_id,
            )
            .join(Alert, Alert.id == Notification.alert_id)
            .where(Alert.patient_id.in_(ids))
        ).all()
        db.session.rollback()
    assert len(accepted) == len(submitter.planned) == 200
    assert {client_id for client_id, _ in stored} == accepted
    assert all(count == 1 for _, count in stored)

    # --- alerts: each expected one exactly once, no other ----------------------------------
    found = collections.Counter((pid, kind, metric) for _, pid, kind, metric, _ in alerts)
    assert found == collections.Counter((pid, *km) for pid, km in expected.items())
    assert {day for *_, day in alerts} == {clinic.today}

    # --- notifications: one row per (alert, clinician), all sent ----------------------------
    alert_patient = {alert_id: pid for alert_id, pid, *_ in alerts}
    assert {(alert_patient[r.alert_id], r.recipient_user_id) for r in rows} == recipients
    assert len(rows) == len(recipients)
    assert {r.status for r in rows} == {NotificationStatus.SENT}

    # --- e-mails at the server: each at least once, duplicates bounded and announced ---------
    arrived = collections.Counter(str(m.message["Message-ID"]) for m in smtp.messages)
    by_message_id = {r.message_id: r for r in rows}
    assert set(arrived) == set(by_message_id), "a message nobody wrote, or one never arrived"
    duplicated = {by_message_id[mid].id: n - 1 for mid, n in arrived.items() if n > 1}
    crashes = worker.kills
    assert sum(duplicated.values()) <= crashes, (duplicated, crashes)
    announced = {int(i) for i in DUPLICATE_WARNING.findall(worker_log)}
    for ids_text in TAKEN_BACK_WARNING.findall(worker_log):
        announced |= {int(i) for i in ids_text.split(",")}
    assert set(duplicated) <= announced, (duplicated, announced)
    with app.app_context():
        emails = dict(db.session.execute(sa.select(User.id, User.email)).all())
        db.session.rollback()
    for message in smtp.messages:
        row = by_message_id[str(message.message["Message-ID"])]
        assert message.rcpt_tos == [emails[row.recipient_user_id]]
    retried = sum(1 for r in rows if r.attempts > 1)
    resent = sum(int(n) for n in RESENDER_LINE.findall(worker_log))
    scanned = [int(n) for n in SCAN_LINE.findall(worker_log)]
    return {
        "logs_planned": len(submitter.planned),
        "posts": len(answers),
        "answers": dict(statuses),
        "accepted_distinct": len(accepted),
        "stored": sum(count for _, count in stored),
        "alerts_expected": len(expected),
        "alerts_found": len(alerts),
        "notifications": len(rows),
        "messages_at_smtp": sum(arrived.values()),
        "smtp_data_attempts": smtp.data_attempts,
        "duplicates": sum(duplicated.values()),
        "worker_crashes": crashes,
        "claims_taken_back_by_resender": len(DUPLICATE_WARNING.findall(worker_log)),
        "notifications_needing_more_than_one_attempt": retried,
        "deliveries_requeued_by_resender": resent,
        "scans": len(scanned),
        "patients_queued_by_scans": sum(scanned),
        "max_attempts": max(r.attempts for r in rows),
        "slowest_post_s": round(max(a.seconds for a in answers), 2),
    }
