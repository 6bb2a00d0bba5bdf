"""The administrators are e-mailed when alerts may be late, without the worker
(`rehab.services.pipeline_watch`): once when alerts become late, daily while they stay late,
once when they have stayed on time for the settle period (late again before, the incident goes
on: no e-mail); by the web app in the background (a page or a probe) and by
`rehab pipeline check`; over a real SMTP server, with nothing about patients."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from rehab import create_app
from rehab.cli_pipeline import pipeline_group
from rehab.db.models import JobWatermark, Notification, NotificationStatus, User, utcnow
from rehab.domain.vocabulary import Role
from rehab.extensions import db
from rehab.notifications import render
from rehab.services import health, notifications, pipeline_watch, scan
from rehab.services.time import clinic_today
from rehab.web import clinic_time_text
from rehab.web.health import forget_pipeline_status, wait_for_pipeline_watch
from tests.conftest import app_settings, dispose_engines
from tests.integration.test_health import LATE, scanned
from tests.support.clinic import Clinic, password_hash
from tests.support.history import add_logs
from tests.support.smtp import Received, SmtpServer

PUBLIC_URL = "https://rehab.clinic.test"
A_WHILE_AGO = LATE + dt.timedelta(minutes=1)
AFTER_BACK_OFF = dt.timedelta(minutes=2)
SETTLE = dt.timedelta(minutes=30)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def app(database_url: str, tmp_path: Path, smtp: SmtpServer) -> Iterator[Flask]:
    app = create_app(
        app_settings(
            database_url,
            tmp_path,
            smtp_url=smtp.url,
            public_url=PUBLIC_URL,
            notify_backoff_seconds="30",
            notify_backoff_max_seconds="60",
            pipeline_settle_minutes=SETTLE // MINUTE,
        )
    )
    yield app
    dispose_engines(app)


def check(app: Flask, now: dt.datetime | None = None) -> pipeline_watch.Watch:
    """What `rehab pipeline check` and the web app do: the status, then the watch."""
    return act_on(app, pipeline_status(app, now))


def pipeline_status(app: Flask, now: dt.datetime | None = None) -> health.PipelineStatus:
    with app.app_context():
        status = health.pipeline_status(db.session, LATE, now)
        db.session.rollback()
        return status


def act_on(app: Flask, status: health.PipelineStatus) -> pipeline_watch.Watch:
    with app.app_context():
        return pipeline_watch.watch(db.session, status)


def status_at(app: Flask, now: dt.datetime, *, late: bool) -> health.PipelineStatus:
    """The status at `now`, the scan having last run then, or (`late`) A_WHILE_AGO before it
    and before the clock: a notice is composed on the clock, not at `now`."""
    scan_ran(app, min(now, utcnow()) - A_WHILE_AGO if late else now)
    return pipeline_status(app, now)


def check_at(app: Flask, now: dt.datetime, *, late: bool) -> pipeline_watch.Watch:
    return act_on(app, status_at(app, now, late=late))


def scan_ran(app: Flask, at: dt.datetime) -> None:
    with app.app_context():
        db.session.merge(JobWatermark(name=scan.LAST_RUN_WATERMARK, through=at))
        db.session.commit()


def on_time_for(app: Flask, ago: dt.timedelta) -> None:
    """As if the settling incident had found alerts on time since `ago` (the checks that do
    not pass a time of their own: the CLI, a probe), having opened a minute before (its
    notices' keys name the new start)."""
    on_time_since = utcnow() - ago
    opened_at = on_time_since - MINUTE
    with app.app_context():
        was = db.session.get(JobWatermark, pipeline_watch.NOTICE_WATERMARK)
        assert was is not None
        old, new = pipeline_watch._stamp(was.through), pipeline_watch._stamp(opened_at)
        was.through = opened_at
        for name in (pipeline_watch.ON_TIME_WATERMARK, pipeline_watch.AS_OF_WATERMARK):
            db.session.merge(JobWatermark(name=name, through=on_time_since))
        db.session.execute(
            sa.update(Notification)
            .where(Notification.purpose.in_(notifications.PIPELINE_NOTICES))
            .values(dedup_key=sa.func.replace(Notification.dedup_key, old, new))
        )
        db.session.commit()


def since_text(app: Flask, moment: dt.datetime) -> str:
    """How the "on time again" notice states when alerts became on time."""
    with app.app_context():
        return f"since {clinic_time_text(moment)}"


def notices(app: Flask) -> list[tuple[str, str, str, str]]:
    """(recipient's e-mail, purpose, status, error) of every pipeline notice, in order."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(
                User.email, Notification.purpose, Notification.status, Notification.last_error
            )
            .join(User, User.id == Notification.recipient_user_id)
            .where(Notification.purpose.in_(notifications.PIPELINE_NOTICES))
            .order_by(Notification.id)
        ).all()
        db.session.rollback()
    return [(email, purpose, str(state), error) for email, purpose, state, error in rows]


def add_admin(app: Flask, email: str, active: bool = True) -> None:
    with app.app_context():
        db.session.add(
            User(
                email=email,
                display_name=email.partition("@")[0].title(),
                role=Role.ADMIN,
                password_hash=password_hash(),
                is_active=active,
            )
        )
        db.session.commit()


def assert_impersonal(app: Flask, message: Received, clinic: Clinic) -> None:
    """Counts and times only: no patient's name, e-mail or record number."""
    whole = message.message.as_string()
    with app.app_context():
        names = db.session.scalars(sa.select(User.display_name).where(User.role == Role.PATIENT))
        for name in names:
            assert name not in whole
    for person in (clinic.patient_a, clinic.patient_b, clinic.patient_c):
        assert person.email not in whole
        assert f"/patients/{person.patient_id}" not in whole
    assert message.subject in (render.PIPELINE_LATE_SUBJECT, render.PIPELINE_FLOWING_SUBJECT)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_admins_are_told_when_alerts_are_late_daily_while_late_and_once_when_on_time(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    add_admin(app, "second.admin@clinic.test")
    add_admin(app, "former.admin@clinic.test", active=False)
    admins = {clinic.admin.email, "second.admin@clinic.test"}
    scanned(app, ago=A_WHILE_AGO)

    first = check(app)
    assert (first.late, len(first.queued), first.sent) == (True, 2, 2)
    late = smtp.wait_for(2)
    assert {r for m in late for r in m.rcpt_tos} == admins
    for message in late:
        assert message.subject == render.PIPELINE_LATE_SUBJECT
        assert message.message["Importance"] == "high"
        assert "The automatic checks last ran at" in message.text()
        assert f"{PUBLIC_URL}/admin/" in message.text()
        assert "The automatic checks last ran at" in message.html()
        assert "told once alerts have stayed on time for 30 minutes" in message.text()
        assert_impersonal(app, message, clinic)

    # Checked again while late: nothing new until a day has passed.
    again = check(app)
    assert (again.late, again.queued, again.sent) == (True, [], 0)
    a_day_on_at = utcnow() + pipeline_watch.REMIND_EVERY + dt.timedelta(minutes=5)
    a_day_on = check(app, a_day_on_at)
    assert (len(a_day_on.queued), a_day_on.sent) == (2, 2)
    reminders = smtp.wait_for(4)[2:]
    assert [m.subject for m in reminders] == [render.PIPELINE_LATE_SUBJECT] * 2

    # The second admin leaves: on time again, and after the settle period only the active
    # admins who were told hear of it.
    with app.app_context():
        db.session.execute(
            sa.update(User).where(User.email == "second.admin@clinic.test").values(is_active=False)
        )
        db.session.commit()
    on_time_at = a_day_on_at + 5 * MINUTE
    settling = check_at(app, on_time_at, late=False)
    assert (settling.late, settling.opened_at, settling.on_time_since, settling.queued) == (
        False,
        first.opened_at,
        on_time_at,
        [],
    )
    assert settling.settling
    flowing = check_at(app, on_time_at + SETTLE, late=False)
    assert (flowing.late, flowing.opened_at, len(flowing.queued), flowing.sent) == (
        False,
        None,
        1,
        1,
    )
    assert not flowing.settling
    last = smtp.wait_for(5)[4]
    assert (last.rcpt_tos, last.subject) == ([clinic.admin.email], render.PIPELINE_FLOWING_SUBJECT)
    assert since_text(app, on_time_at) in last.text()
    assert since_text(app, on_time_at) in last.html()
    assert_impersonal(app, last, clinic)
    with app.app_context():
        assert not pipeline_watch.incident_open(db.session)
    assert check_at(app, on_time_at + SETTLE + MINUTE, late=False).queued == []
    assert len(smtp.messages) == 5
    assert [purpose for _, purpose, _, _ in notices(app)] == ["pipeline_late"] * 4 + [
        "pipeline_flowing"
    ]
    assert all(state == "sent" for _, _, state, _ in notices(app))


def test_a_new_installation_is_not_late_and_data_left_unevaluated_is(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    # No scan yet (beat's first run is minutes away) and nothing waiting: no one is told.
    nothing = check(app)
    assert (nothing.late, nothing.queued, nothing.sent) == (False, [], 0)
    assert notices(app) == []

    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        add_logs(a, clinic_today() - dt.timedelta(days=3), [1, 2, 1])
        db.session.execute(
            sa.text("UPDATE session_logs SET updated_at = :t"), {"t": utcnow() - A_WHILE_AGO}
        )
        db.session.commit()
    waiting = check(app)
    assert (waiting.late, waiting.sent) == (True, 1)
    (message,) = smtp.wait_for(1)
    assert "Logs, events or scores recorded since" in message.text()
    assert "The automatic checks last ran" not in message.text()
    assert_impersonal(app, message, clinic)


def test_unsent_alert_e_mails_are_late_too(app: Flask, clinic: Clinic, smtp: SmtpServer) -> None:
    scanned(app)
    due = utcnow() - A_WHILE_AGO
    with app.app_context():
        db.session.add(
            Notification(
                recipient_user_id=clinic.clinician.user_id,
                purpose=notifications.ALERT,
                dedup_key="test:unsent",
                urgent=True,
                deliver_after=due,
                next_attempt_at=utcnow() + dt.timedelta(hours=1),
                attempts=3,
            )
        )
        db.session.commit()
    watched = check(app)
    assert (watched.late, watched.sent) == (True, 1)
    (message,) = smtp.wait_for(1)
    assert message.rcpt_tos == [clinic.admin.email]
    assert "Alert e-mails due since" in message.text()
    assert "The automatic checks" not in message.text()


def test_a_check_with_an_older_status_does_not_end_a_newer_incident(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    scanned(app)
    with app.app_context():
        on_time_before = health.pipeline_status(db.session, LATE)
        db.session.rollback()
    scanned(app, ago=A_WHILE_AGO)
    assert check(app).sent == 1  # a newer status: late, the incident opens
    with app.app_context():
        stale = pipeline_watch.watch(db.session, on_time_before)
        assert (stale.queued, pipeline_watch.incident_open(db.session)) == ([], True)
    assert check(app).queued == []  # still the same incident: no second notice
    assert len(smtp.messages) == 1


def test_notices_left_mid_send_are_sent_and_their_admins_told_when_on_time(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    start = utcnow()
    assert check_at(app, start, late=True).sent == 1
    smtp.wait_for(1)
    on_time_at = start + MINUTE
    assert check_at(app, on_time_at, late=False).settling
    settled_at = on_time_at + SETTLE
    # As if the sending process had stopped mid-send: claimed, never finished.
    stuck = {
        "status": NotificationStatus.SENDING,
        "claimed_at": settled_at - dt.timedelta(minutes=10),
    }
    with app.app_context():
        db.session.execute(sa.update(Notification).values(**stuck))
        db.session.commit()
    # An admin whose notice is mid-send hears it is on time again; the stuck one goes again.
    recovered = check_at(app, settled_at, late=False)
    assert (recovered.late, len(recovered.queued), recovered.sent) == (False, 1, 1)
    assert [m.subject for m in smtp.wait_for(2)][1:] == [render.PIPELINE_FLOWING_SUBJECT]
    late_again_at = settled_at + MINUTE
    stuck["claimed_at"] = late_again_at - dt.timedelta(minutes=10)
    with app.app_context():
        db.session.execute(
            sa.update(Notification)
            .where(Notification.purpose == notifications.PIPELINE_LATE)
            .values(**stuck)
        )
        db.session.commit()
    late_again = check_at(app, late_again_at, late=True)
    # The stuck notice of the old incident is taken back, then not sent (not this incident's);
    # the new incident's goes.
    assert (late_again.late, len(late_again.queued), late_again.sent) == (True, 1, 1)
    assert [m.subject for m in smtp.wait_for(3)][2:] == [render.PIPELINE_LATE_SUBJECT]
    assert len(smtp.messages) == 3


def test_a_notice_the_mail_server_refused_goes_on_a_later_check(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    scanned(app, ago=A_WHILE_AGO)
    smtp.fail_next(1)
    refused = check(app)
    assert (refused.late, len(refused.queued), refused.sent) == (True, 1, 0)
    assert notices(app) == [
        (clinic.admin.email, "pipeline_late", "pending", "451 4.3.0 Try again later")
    ]
    # Before its back-off is over the next check leaves it; after, it goes.
    assert check(app).sent == 0
    later = check(app, utcnow() + AFTER_BACK_OFF)
    assert (later.queued, later.sent) == ([], 1)
    assert [m.subject for m in smtp.wait_for(1)] == [render.PIPELINE_LATE_SUBJECT]
    assert [state for _, _, state, _ in notices(app)] == ["sent"]


def test_a_late_notice_still_unsent_when_alerts_flow_again_is_not_sent(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    scanned(app, ago=A_WHILE_AGO)
    smtp.answer_always("451 4.3.0 Try again later")
    assert check(app).sent == 0
    smtp.answer_always(None)
    scanned(app)
    on_time = check(app, utcnow() + AFTER_BACK_OFF)
    # Its admin was never told it was late: no "on time again" either.
    assert (on_time.late, on_time.queued, on_time.sent) == (False, [], 0)
    assert notices(app) == [
        (
            clinic.admin.email,
            "pipeline_late",
            "failed",
            "not sent: alerts were flowing again before it went out",
        )
    ]
    assert smtp.messages == []
    with app.app_context():
        # Left unsent on purpose: no fault of the delivery.
        assert health.pipeline_status(db.session, LATE).delivery is health.Check.OK


def test_a_notice_of_an_incident_that_ended_is_not_sent_in_the_next_one(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    start = utcnow()
    smtp.fail_next(1)
    assert check_at(app, start, late=True).sent == 0  # refused: pending, with its back-off
    late_again_at = start + MINUTE + SETTLE + MINUTE
    with app.app_context():  # a back-off that outlasts the incident
        db.session.execute(sa.update(Notification).values(next_attempt_at=late_again_at))
        db.session.commit()
    assert check_at(app, start + MINUTE, late=False).settling
    closed = check_at(app, start + MINUTE + SETTLE, late=False)
    assert (closed.opened_at, closed.queued, closed.sent) == (None, [], 0)
    # Late again: the new incident's notice goes; the old one, now due, does not.
    again = check_at(app, late_again_at, late=True)
    assert (again.late, len(again.queued), again.sent) == (True, 1, 1)
    assert again.opened_at == late_again_at
    assert [m.subject for m in smtp.wait_for(1)] == [render.PIPELINE_LATE_SUBJECT]
    assert sorted(state for _, _, state, _ in notices(app)) == ["failed", "sent"]
    assert len(smtp.messages) == 1


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_pipeline_flapping_while_the_incident_settles_sends_no_more_notices(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    add_admin(app, "second.admin@clinic.test")
    start = utcnow()
    opened = check_at(app, start, late=True)
    assert (opened.opened_at, len(opened.queued), opened.sent) == (start, 2, 2)
    smtp.wait_for(2)
    # A worker that keeps restarting: on time, late again, on time... never for the settle
    # period. One incident all along, and no e-mail.
    flaps = [(5, False), (10, True), (15, False), (20, True), (25, False), (50, False)]
    for minutes, late in flaps:
        flap = check_at(app, start + minutes * MINUTE, late=late)
        assert (flap.late, flap.opened_at, flap.queued, flap.sent) == (late, start, [], 0)
        assert flap.settling is not late
    assert flap.on_time_since == start + 25 * MINUTE  # not 5: late again at 10 and 20
    assert len(smtp.messages) == 2
    # Late again a day after it opened: the daily reminder, as when it had stayed late.
    reminded = check_at(app, start + pipeline_watch.REMIND_EVERY + MINUTE, late=True)
    assert (reminded.opened_at, len(reminded.queued), reminded.sent) == (start, 2, 2)
    assert [m.subject for m in smtp.wait_for(4)] == [render.PIPELINE_LATE_SUBJECT] * 4
    assert [purpose for _, purpose, _, _ in notices(app)] == ["pipeline_late"] * 4


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_alerts_on_time_for_the_settle_period_close_the_incident_once_saying_since_when(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    start = utcnow()
    assert check_at(app, start, late=True).sent == 1
    on_time_at = start + 5 * MINUTE
    settling = check_at(app, on_time_at, late=False)
    assert (settling.opened_at, settling.on_time_since, settling.queued) == (start, on_time_at, [])
    almost = check_at(app, on_time_at + SETTLE - dt.timedelta(seconds=1), late=False)
    assert (almost.opened_at, almost.on_time_since, almost.queued) == (start, on_time_at, [])
    closed = check_at(app, on_time_at + SETTLE, late=False)
    assert (closed.opened_at, closed.on_time_since, len(closed.queued), closed.sent) == (
        None,
        None,
        1,
        1,
    )
    assert check_at(app, on_time_at + SETTLE + 5 * MINUTE, late=False).queued == []
    flowing = smtp.wait_for(2)[1]
    assert (flowing.rcpt_tos, flowing.subject) == (
        [clinic.admin.email],
        render.PIPELINE_FLOWING_SUBJECT,
    )
    assert since_text(app, on_time_at) in flowing.text()
    assert since_text(app, on_time_at) in flowing.html()
    assert_impersonal(app, flowing, clinic)
    assert len(smtp.messages) == 2


def test_late_again_after_the_incident_closed_opens_a_new_one_with_its_own_notices(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    start = utcnow()
    first = check_at(app, start, late=True)
    check_at(app, start + MINUTE, late=False)
    assert check_at(app, start + MINUTE + SETTLE, late=False).sent == 1  # on time again
    late_again_at = start + 2 * MINUTE + SETTLE
    second = check_at(app, late_again_at, late=True)
    assert (second.opened_at, len(second.queued), second.sent) == (late_again_at, 1, 1)
    assert second.opened_at != first.opened_at
    # Its settling starts afresh: not from when the first incident's alerts were on time.
    settling = check_at(app, late_again_at + MINUTE, late=False)
    assert (settling.opened_at, settling.on_time_since, settling.queued) == (
        late_again_at,
        late_again_at + MINUTE,
        [],
    )
    assert check_at(app, late_again_at + MINUTE + SETTLE, late=False).sent == 1
    assert [m.subject for m in smtp.wait_for(4)] == [
        render.PIPELINE_LATE_SUBJECT,
        render.PIPELINE_FLOWING_SUBJECT,
    ] * 2
    assert since_text(app, late_again_at + MINUTE) in smtp.messages[3].text()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_check_with_an_older_status_does_not_close_or_reopen_what_a_newer_one_decided(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    start = utcnow()
    check_at(app, start, late=True)
    check_at(app, start + MINUTE, late=False)  # settling
    # A checker finds alerts on time after the settle period, and is slow to act on it...
    stale_on_time_at = start + MINUTE + SETTLE + MINUTE
    stale_on_time = status_at(app, stale_on_time_at, late=False)
    # ...while a newer one finds them late: the incident goes on, not settling.
    late_at = stale_on_time_at + MINUTE
    assert check_at(app, late_at, late=True).settling is False
    stale = act_on(app, stale_on_time)
    assert (stale.late, stale.opened_at, stale.on_time_since, stale.queued) == (
        False,
        start,
        None,
        [],
    )
    # The next check on time settles from its own time, not the older one's.
    settling_at = late_at + MINUTE
    assert check_at(app, settling_at, late=False).on_time_since == settling_at

    # Nor does a checker that found them late before a newer one closed the incident open it
    # again.
    stale_late = status_at(app, settling_at + SETTLE - MINUTE, late=True)
    closed = check_at(app, settling_at + SETTLE, late=False)
    assert (closed.opened_at, closed.sent) == (None, 1)
    reopened = act_on(app, stale_late)
    assert (reopened.late, reopened.opened_at, reopened.queued) == (True, None, [])
    with app.app_context():
        assert not pipeline_watch.incident_open(db.session)
    assert [m.subject for m in smtp.wait_for(2)] == [
        render.PIPELINE_LATE_SUBJECT,
        render.PIPELINE_FLOWING_SUBJECT,
    ]
    assert since_text(app, settling_at) in smtp.messages[1].text()
    assert len(smtp.messages) == 2


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_checkers_at_once_send_each_notice_once(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    add_admin(app, "second.admin@clinic.test")
    start = utcnow()

    def at_once(at: dt.datetime, *, late: bool) -> list[pipeline_watch.Watch]:
        # Four checkers (web processes, cron), each with a status of its own a moment apart.
        statuses = [status_at(app, at + i * dt.timedelta(seconds=1), late=late) for i in range(4)]
        ready = threading.Barrier(4)
        results: list[pipeline_watch.Watch] = []

        def checker(status: health.PipelineStatus) -> None:
            ready.wait()
            results.append(act_on(app, status))

        threads = [threading.Thread(target=checker, args=(s,)) for s in statuses]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(results) == 4
        return results

    opening = at_once(start, late=True)
    assert sum(len(r.queued) for r in opening) == 2
    assert sum(r.sent for r in opening) == 2
    openings = {r.opened_at for r in opening}
    assert len(openings) == 1
    (opened_at,) = openings
    smtp.wait_for(2)

    settling = at_once(start + MINUTE, late=True) + at_once(start + 2 * MINUTE, late=False)
    assert sum(len(r.queued) + r.sent for r in settling) == 0
    # One settling, from the time of whichever checker came first.
    starts = {r.on_time_since for r in settling[4:]}
    assert len(starts) == 1
    (on_time_since,) = starts
    assert on_time_since is not None
    assert {r.opened_at for r in settling} == {opened_at}

    closing = at_once(on_time_since + SETTLE, late=False)
    assert sum(len(r.queued) for r in closing) == 2
    assert sum(r.sent for r in closing) == 2
    assert {r.opened_at for r in closing} == {None}
    assert [m.subject for m in smtp.wait_for(4)] == [render.PIPELINE_LATE_SUBJECT] * 2 + [
        render.PIPELINE_FLOWING_SUBJECT
    ] * 2
    assert len(smtp.messages) == 4
    with app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(JobWatermark)
                .where(JobWatermark.name == pipeline_watch.NOTICE_WATERMARK)
            )
            == 0
        )


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_probe_finding_alerts_late_tells_the_admins_in_the_background(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    scanned(app, ago=A_WHILE_AGO)
    held = smtp.hold()
    forget_pipeline_status(app)
    answer = app.test_client().get("/healthz/pipeline")
    # Answered while the mail server still holds the notice: the probe did not wait for it.
    assert (answer.status_code, answer.json["scan"]["status"]) == (503, "late")
    held.set()
    wait_for_pipeline_watch(app)
    (message,) = smtp.wait_for(1)
    assert (message.rcpt_tos, message.subject) == (
        [clinic.admin.email],
        render.PIPELINE_LATE_SUBJECT,
    )
    # Asked again while late: no second notice.
    forget_pipeline_status(app)
    assert app.test_client().get("/healthz/pipeline").status_code == 503
    wait_for_pipeline_watch(app)
    assert len(smtp.messages) == 1

    # On time: the banner and the probe say so at once; the admins hear of it once alerts
    # have stayed on time for the settle period.
    scanned(app)
    forget_pipeline_status(app)
    assert app.test_client().get("/healthz/pipeline").status_code == 200
    wait_for_pipeline_watch(app)
    with app.app_context():
        assert pipeline_watch.incident_open(db.session)
    assert len(smtp.messages) == 1
    on_time_for(app, SETTLE)
    forget_pipeline_status(app)
    assert app.test_client().get("/healthz/pipeline").status_code == 200
    wait_for_pipeline_watch(app)
    assert [m.subject for m in smtp.wait_for(2)][1] == render.PIPELINE_FLOWING_SUBJECT


def test_rehab_pipeline_check_reports_tells_the_admins_and_exits_1_when_late(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    runner = app.test_cli_runner()
    scanned(app, ago=A_WHILE_AGO)
    quiet = runner.invoke(pipeline_group, ["check", "--no-notify", "--quiet"])
    assert quiet.exit_code == 1, quiet.output
    assert "scan: late (last_run " in quiet.output
    assert notices(app) == []

    told = runner.invoke(pipeline_group, ["check"])
    assert told.exit_code == 1, told.output
    assert "administrators: told alerts are late; 1 notice(s) queued, 1 sent" in told.output
    assert [m.subject for m in smtp.wait_for(1)] == [render.PIPELINE_LATE_SUBJECT]

    scanned(app)
    settling = runner.invoke(pipeline_group, ["check"])
    assert settling.exit_code == 0, settling.output
    assert "administrators: told alerts are late, settling: on time since " in settling.output
    assert "; 0 notice(s) queued, 0 sent by this check" in settling.output
    assert runner.invoke(pipeline_group, ["check", "--quiet"]).output == ""
    on_time_for(app, SETTLE)
    flowing = runner.invoke(pipeline_group, ["check", "--json"])
    assert flowing.exit_code == 0, flowing.output
    report = json.loads(flowing.output)
    assert report["status"] == "ok"
    assert report["administrators"] == "no incident open; 1 notice(s) queued, 1 sent by this check"
    assert [m.subject for m in smtp.wait_for(2)][1] == render.PIPELINE_FLOWING_SUBJECT
    assert runner.invoke(pipeline_group, ["check", "--quiet"]).output == ""


def test_rehab_pipeline_check_without_a_database_says_so_and_exits_1(tmp_path: Path) -> None:
    down = create_app(app_settings("postgresql+psycopg://rehab@127.0.0.1:9/rehab", tmp_path))
    try:
        result = down.test_cli_runner().invoke(pipeline_group, ["check"])
    finally:
        dispose_engines(down)
    assert result.exit_code == 1
    assert "the database did not answer (OperationalError)" in result.output
    assert "127.0.0.1" not in result.output


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_first_notice_held_back_until_alerts_were_on_time_goes_when_late_again(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    start = utcnow()
    smtp.fail_next(1)
    assert check_at(app, start, late=True).sent == 0  # refused: pending, with its back-off
    # Due while alerts are on time for a moment: untrue then, not sent.
    assert check_at(app, start + 2 * MINUTE, late=False).sent == 0
    assert notices(app) == [
        (clinic.admin.email, "pipeline_late", "failed", pipeline_watch.REFUSED_AS_FLOWING)
    ]
    # The pipeline flaps for an hour: late again, the notice is true again and goes, once.
    for minutes in range(5, 65, 5):
        check_at(app, start + minutes * MINUTE, late=True)
    assert [m.subject for m in smtp.wait_for(1)] == [render.PIPELINE_LATE_SUBJECT]
    assert notices(app) == [(clinic.admin.email, "pipeline_late", "sent", "")]
    # Told it was late, she hears when it is on time again.
    on_time_at = start + 65 * MINUTE
    check_at(app, on_time_at, late=False)
    assert check_at(app, on_time_at + SETTLE, late=False).sent == 1
    assert [m.subject for m in smtp.wait_for(2)] == [
        render.PIPELINE_LATE_SUBJECT,
        render.PIPELINE_FLOWING_SUBJECT,
    ]


def test_an_on_time_again_notice_is_not_sent_while_a_newer_incident_is_open(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    start = utcnow()
    assert check_at(app, start, late=True).sent == 1
    check_at(app, start + MINUTE, late=False)
    smtp.fail_next(1)
    closed = check_at(app, start + MINUTE + SETTLE, late=False)
    assert (closed.opened_at, len(closed.queued), closed.sent) == (None, 1, 0)
    late_again_at = start + 2 * MINUTE + SETTLE
    due_at = late_again_at + 5 * MINUTE
    with app.app_context():  # a back-off that outlasts the next incident's opening
        db.session.execute(
            sa.update(Notification)
            .where(Notification.purpose == notifications.PIPELINE_FLOWING)
            .values(next_attempt_at=due_at)
        )
        db.session.commit()
    assert check_at(app, late_again_at, late=True).sent == 1
    # Due while the new incident settles: alerts are on time, but it is still open.
    settling = check_at(app, due_at, late=False)
    assert (settling.opened_at, settling.sent) == (late_again_at, 0)
    assert notices(app)[1] == (
        clinic.admin.email,
        "pipeline_flowing",
        "failed",
        "not sent: alerts were late again before it went out",
    )
    assert [m.subject for m in smtp.wait_for(2)] == [render.PIPELINE_LATE_SUBJECT] * 2
    assert len(smtp.messages) == 2


def test_a_late_status_older_than_the_settling_start_decides_nothing(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    start = utcnow()
    check_at(app, start, late=True)
    stale_late = status_at(app, start + MINUTE, late=True)
    on_time_at = start + 2 * MINUTE
    assert check_at(app, on_time_at, late=False).on_time_since == on_time_at
    stale = act_on(app, stale_late)
    assert (stale.opened_at, stale.on_time_since, stale.queued) == (start, on_time_at, [])
    assert check_at(app, on_time_at + SETTLE, late=False).sent == 1
    assert since_text(app, on_time_at) in smtp.wait_for(2)[1].text()


def test_a_checker_with_a_clock_ahead_does_not_stop_the_others(
    app: Flask, clinic: Clinic, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    start = utcnow()
    check_at(app, start, late=True)
    check_at(app, start + dt.timedelta(hours=1), late=True)  # a host an hour ahead
    caplog.set_level(logging.INFO, logger=pipeline_watch.__name__)
    # The next checker, on time, is trusted over it: the settling starts.
    on_time_at = start + 2 * MINUTE
    settling = check_at(app, on_time_at, late=False)
    assert (settling.opened_at, settling.on_time_since) == (start, on_time_at)
    assert "taken as a wrong clock and replaced" in caplog.text
    # A status older than the one acted on still decides nothing, and says so.
    stale = act_on(app, status_at(app, on_time_at - MINUTE, late=True))
    assert (stale.opened_at, stale.on_time_since) == (start, on_time_at)
    assert "discarded: one of" in caplog.text
    # Within the tolerance, a checker a little ahead is trusted: an older status is not.
    late_at = on_time_at + 3 * MINUTE
    check_at(app, late_at, late=True)
    assert not act_on(app, status_at(app, on_time_at + MINUTE, late=False)).settling
    settled_at = late_at + MINUTE
    check_at(app, settled_at, late=False)
    assert check_at(app, settled_at + SETTLE, late=False).sent == 1
    assert since_text(app, settled_at) in smtp.wait_for(2)[1].text()


def test_an_on_time_mark_older_than_the_incident_is_not_its_settling(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    start = utcnow()
    check_at(app, start, late=True)
    check_at(app, start + MINUTE, late=False)
    assert check_at(app, start + MINUTE + SETTLE, late=False).sent == 1
    # A version before the settling (a rolling deploy) opens the next incident, leaving the
    # last one's on-time mark.
    reopened_at = start + 2 * MINUTE + SETTLE
    with app.app_context():
        db.session.add(JobWatermark(name=pipeline_watch.NOTICE_WATERMARK, through=reopened_at))
        db.session.commit()
    settling = check_at(app, reopened_at + MINUTE, late=False)
    assert (settling.opened_at, settling.on_time_since) == (reopened_at, reopened_at + MINUTE)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_checker_stuck_holding_the_incident_does_not_stop_the_others(
    app: Flask,
    clinic: Clinic,
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = utcnow()
    check_at(app, start, late=True)
    monkeypatch.setattr(pipeline_watch, "HOLD_TIMEOUT", dt.timedelta(milliseconds=200))
    status = status_at(app, start + MINUTE, late=False)
    results: list[pipeline_watch.Watch] = []
    with app.app_context(), db.engine.connect() as stuck:
        stuck.execute(
            sa.select(JobWatermark.through)
            .where(JobWatermark.name == pipeline_watch.NOTICE_WATERMARK)
            .with_for_update()
        )
        checker = threading.Thread(target=lambda: results.append(act_on(app, status)))
        checker.start()
        checker.join(10)
        stuck_still = checker.is_alive()
        stuck.rollback()
    checker.join(60)
    assert not stuck_still
    assert "held by another checker" in caplog.text
    (skipped,) = results
    assert (skipped.opened_at, skipped.on_time_since, skipped.queued) == (start, None, [])
    # Once it is released, the next check settles as usual.
    assert check_at(app, start + 2 * MINUTE, late=False).on_time_since == start + 2 * MINUTE
