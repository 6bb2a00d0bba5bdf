"""Evaluation through the service the worker calls: alerts stored once, explained, resolved."""

from __future__ import annotations

import datetime as dt
import gc
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from rehab.db.models import Alert, AlertStatus, AuditEvent, Event, Notification, SessionLog
from rehab.domain.simulation import generate_cohort
from rehab.domain.vocabulary import EventType
from rehab.extensions import db
from rehab.services import alerts, evaluation
from rehab.services.time import clinic_today
from tests.support.clinic import Clinic
from tests.support.history import add_fall, add_logs, log_rows, set_leg_pain


def alerts_of(patient_id: int) -> list[Alert]:
    return list(
        db.session.scalars(
            sa.select(Alert).where(Alert.patient_id == patient_id).order_by(Alert.id)
        )
    )


def seed_like_history(clinic: Clinic) -> tuple[int, dt.date]:
    """Leg pain ~1 for 45 days, a fall on stairs, then 7/10 for 6 days (ending today)."""
    a = clinic.patient_a.patient_id
    assert a is not None
    today = clinic_today()
    start = today - dt.timedelta(days=51)
    baseline = [1, 0, 1, 1, 2, 1, 0, 1, 1, 1] * 4 + [1, 1, 0, 1, 1]
    add_logs(a, start, [*baseline, 7, 6, 7, 7, 7, 6])
    fall_day = start + dt.timedelta(days=len(baseline) - 1)
    add_fall(a, clinic.patient_a.user_id, fall_day)
    return a, fall_day


def test_fall_linked_regression_is_stored_once_with_its_context(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        a, fall_day = seed_like_history(clinic)
        first = evaluation.evaluate_and_commit(db.session, [a], clinic_today())
        second = evaluation.evaluate_and_commit(db.session, [a], clinic_today())
        alerts = [x for x in alerts_of(a) if x.kind == "pain_regression"]
        assert len(alerts) == 1
        alert = alerts[0]
        assert alert.metric == "leg_pain"
        assert alert.status is AlertStatus.OPEN
        assert first.opened == [alert.id]
        assert second.opened == [] and second.stored == 0
        assert alert.change is not None and alert.change >= 5
        assert {"date": fall_day.isoformat(), "event": "fall"}.items() <= alert.related_events[
            0
        ].items()
        assert "fall" in alert.explanation and "10 steps" in alert.explanation
        created = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "alert.create", AuditEvent.patient_id == a)
        )
        assert created == len(alerts_of(a))


def test_red_flag_alerts_the_same_day_every_time(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        b = clinic.patient_b.patient_id
        assert b is not None
        today = clinic_today()
        add_logs(b, today - dt.timedelta(days=9), [1] * 10, red_flag_days=[4, 9])
        evaluation.evaluate_and_commit(db.session, [b], today)
        flags = [x for x in alerts_of(b) if x.kind == "red_flag"]
        assert sorted(x.detected_on for x in flags) == [
            today - dt.timedelta(days=5),
            today,
        ]
        assert all(x.severity == "urgent" for x in flags)


def test_missed_logs_follow_the_clinic_setting(database_url: str, tmp_path: Path) -> None:
    """No log for 4 days: alerted with the default of 3 days, not with
    REHAB_MISSED_LOGS_DAYS=5."""
    from rehab import create_app
    from tests.conftest import app_settings, dispose_engines
    from tests.support.clinic import build_clinic

    kinds = {}
    for days in (3, 5):
        app = create_app(app_settings(database_url, tmp_path / str(days), missed_logs_days=days))
        try:
            with app.app_context():
                if days == 3:
                    clinic = build_clinic()
                    b = clinic.patient_b.patient_id
                    assert b is not None
                    # Every day of her program (60 days) but the last 4.
                    add_logs(b, clinic.program_start, [1] * 57)
                db.session.execute(sa.delete(Notification))
                db.session.execute(sa.delete(Alert))
                db.session.commit()
                evaluation.evaluate_and_commit(db.session, [b], clinic_today())
                kinds[days] = {x.kind for x in alerts_of(b)}
        finally:
            dispose_engines(app)
    assert "missed_logs" in kinds[3]
    assert "missed_logs" not in kinds[5]


def test_a_further_rise_closes_the_open_alert_as_superseded_not_settled(
    app: Flask, clinic: Clinic
) -> None:
    """Evaluated as the worker does, day by day: the first alert is stored while open; the
    further rise closes it with a note that says so (the pain did not settle)."""
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        today = clinic_today()
        leg = [1, 0, 1, 1, 2, 1, 0, 1, 1, 1] * 6 + [5] * 10 + [9] * 6
        start = today - dt.timedelta(days=len(leg) - 1)
        add_logs(a, start, leg)
        resolved = 0
        for day in range(60, len(leg)):
            result = evaluation.evaluate_and_commit(db.session, [a], start + dt.timedelta(days=day))
            resolved += result.resolved
        first, second = [x for x in alerts_of(a) if x.kind == "pain_regression"]
        assert first.status is AlertStatus.RESOLVED and first.resolved_on == second.detected_on
        # Resolved once: one count, one audit row.
        assert resolved == 1
        resolve_rows = db.session.scalars(
            sa.select(AuditEvent.id).where(
                AuditEvent.action == "alert.resolve", AuditEvent.target == f"alert:{first.id}"
            )
        ).all()
        assert len(resolve_rows) == 1
        assert first.resolve_note is not None
        assert first.resolve_note.startswith("Superseded by a newer alert")
        assert "back near baseline" not in first.resolve_note
        assert second.status is AlertStatus.OPEN
        assert "Rose further" in second.explanation


def test_an_alert_the_edited_logs_no_longer_show_gives_way_audited(
    app: Flask, clinic: Clinic
) -> None:
    """The log that opened an alert is edited down: the replay now opens the episode a day
    later, so the stored alert gives way to it — resolved as superseded, and audited like
    every other write of an alert."""
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        today = clinic_today()
        leg = [1, 0, 1, 1, 2, 1, 0, 1, 1, 1] * 6 + [5] * 8
        start = today - dt.timedelta(days=len(leg) - 1)
        add_logs(a, start, leg)
        evaluation.evaluate_and_commit(db.session, [a], today)
        (first,) = [x for x in alerts_of(a) if x.kind == "pain_regression"]
        set_leg_pain(a, start + dt.timedelta(days=60), 1)  # the log that first raised it
        result = evaluation.evaluate_and_commit(db.session, [a], today)
        old, new = [x for x in alerts_of(a) if x.kind == "pain_regression"]
        assert old.id == first.id and new.detected_on > old.detected_on
        assert old.status is AlertStatus.RESOLVED and old.resolved_on == new.detected_on
        assert old.resolve_note is not None and old.resolve_note.startswith("Superseded")
        assert new.status is AlertStatus.OPEN
        assert result.resolved == 1
        targets = db.session.execute(
            sa.select(AuditEvent.action, AuditEvent.patient_id).where(
                AuditEvent.target == f"alert:{old.id}"
            )
        ).all()
        assert targets.count(("alert.resolve", a)) == 1


def test_an_alert_today_s_edited_log_no_longer_shows_is_resolved_saying_why(
    app: Flask, clinic: Clinic
) -> None:
    """Leg pain ~1 for 60 days, then 6, 6 and today 6: an alert on today's log. The patient
    edits today's log to 1 (a slip of the finger): the rise is two days, which never alerts,
    and nothing takes the alert's place. The next evaluation resolves it, saying why, audited;
    before, it stayed open for good."""
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        today = clinic_today()
        leg = [1, 0, 1, 1, 2, 1, 0, 1, 1, 1] * 6 + [6, 6, 6]
        add_logs(a, today - dt.timedelta(days=len(leg) - 1), leg)
        evaluation.evaluate_and_commit(db.session, [a], today)
        (alert,) = [x for x in alerts_of(a) if x.kind == "pain_regression"]
        assert alert.status is AlertStatus.OPEN and alert.detected_on == today
        set_leg_pain(a, today, 1)
        result = evaluation.evaluate_and_commit(db.session, [a], today)
        assert (result.stored, result.resolved) == (0, 1)
        db.session.expire_all()
        (alert,) = [x for x in alerts_of(a) if x.kind == "pain_regression"]
        assert alert.status is AlertStatus.RESOLVED and alert.resolved_on == today
        assert alert.resolve_note == alerts.AUTO_NO_LONGER_SHOWN
        actions = db.session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.target == f"alert:{alert.id}")
        ).all()
        assert actions.count("alert.resolve") == 1


def test_a_fall_logged_after_the_alert_makes_it_urgent_and_sends_it_again(
    app: Flask, clinic: Clinic
) -> None:
    """The phone catches up a day late: the alert already stored (routine) becomes urgent,
    says how it began, and its clinicians are told again at once; nothing is stored twice."""
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        today = clinic_today()
        quiet = [1, 0, 1, 1, 2, 1, 0, 1, 1, 1] * 5
        start = today - dt.timedelta(days=len(quiet) + 2)
        add_logs(a, start, [*quiet, 8, 8, 8])
        db.session.add(
            Event(
                patient_id=a,
                event_date=start - dt.timedelta(days=400),
                event_type=EventType.SURGERY,
                description="left L4-L5 decompression",
                recorded_by_user_id=clinic.clinician.user_id,
            )
        )
        db.session.commit()
        first = evaluation.evaluate_and_commit(db.session, [a], today)
        (alert,) = [x for x in alerts_of(a) if x.kind == "pain_regression"]
        assert first.opened == [alert.id] and alert.severity == "routine"
        assert "fall" not in alert.explanation

        add_fall(a, clinic.patient_a.user_id, today - dt.timedelta(days=1))
        second = evaluation.evaluate_and_commit(db.session, [a], today)
        db.session.expire_all()
        (again,) = [x for x in alerts_of(a) if x.kind == "pain_regression"]
        assert again.id == alert.id and again.status is AlertStatus.OPEN
        assert second.opened == [] and second.escalated == [alert.id]
        assert again.severity == "urgent"
        assert "fall" in again.explanation
        assert [e["event"] for e in again.related_events] == ["fall"]
        rows = db.session.scalars(
            sa.select(Notification).where(Notification.alert_id == alert.id)
        ).all()
        assert sorted(n.dedup_key for n in rows) == [
            f"alert:{alert.id}",
            f"alert:{alert.id}:escalated",
        ]
        assert all(n.urgent for n in rows if n.dedup_key.endswith(":escalated"))
        escalations = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "alert.escalate", AuditEvent.patient_id == a)
        )
        assert escalations == 1
        # Evaluated once more: nothing changes, nothing is sent again.
        third = evaluation.evaluate_and_commit(db.session, [a], today)
        assert third.escalated == [] and third.opened == []


def test_the_cyclic_collector_is_paused_during_an_evaluation_and_back_after(
    app: Flask, clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    detect = evaluation.detect_episodes_many

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return detect(*args, **kwargs)

    monkeypatch.setattr(evaluation, "detect_episodes_many", spy)
    with app.app_context():
        a, _ = seed_like_history(clinic)
        assert gc.isenabled()
        stored = evaluation.evaluate_and_commit(db.session, [a], clinic_today()).stored
        assert stored > 0 and seen == [False] and gc.isenabled()
        # A caller that had switched it off finds it off.
        gc.disable()
        try:
            evaluation.evaluate_and_commit(db.session, [a], clinic_today())
            assert seen == [False, False] and not gc.isenabled()
        finally:
            gc.enable()


def _simulated_logs(patient_id: int, series: Any, shift: dt.timedelta) -> list[dict[str, Any]]:
    """`session_logs` rows of a simulated patient's series, `shift` later."""
    return [
        {
            "patient_id": patient_id,
            "log_date": day + shift,
            "client_id": f"sim-{patient_id}-{day.isoformat()}",
            "body_hash": "0" * 64,
            "back_pain": back,
            "leg_pain": leg,
            "leg_side": "left" if leg else None,
            "adherence": adherence,
            "source": "test",
        }
        for day, back, leg, adherence in zip(
            series.dates, series.back_pain, series.leg_pain, series.adherence, strict=True
        )
        if back is not None and leg is not None
    ]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_the_window_holds_a_shorter_history_whole(app: Flask, clinic: Clinic) -> None:
    """A patient with less history than the window: the worker's evaluation stores every
    episode the whole history has, its first weeks' included (only a cut series leaves
    those out)."""
    cohort = generate_cohort(3, 3, 380)  # 380 days: the window's first 87 hold 67 of them
    with app.app_context():
        today = clinic_today()
        a = clinic.patient_a.patient_id
        assert a is not None
        rows = _simulated_logs(a, cohort.patients[2].series, today - cohort.last_day)
        db.session.execute(sa.insert(SessionLog), rows)
        db.session.commit()
        whole = {
            (e.kind, e.metric or "", e.detected_on)
            for e in evaluation.detect(db.session, [a], today, None)[a]
        }
        db.session.rollback()
        warm_up_end = today - dt.timedelta(days=evaluation.LOOKBACK_DAYS - 87)
        early = {k for k in whole if k[0] == "pain_regression" and k[2] < warm_up_end}
        assert early  # episodes the warm-up of a cut series would leave out
        result = evaluation.evaluate_and_commit(db.session, [a], today)
        stored = {
            (kind, metric, day)
            for kind, metric, day in db.session.execute(
                sa.select(Alert.kind, Alert.metric, Alert.detected_on).where(Alert.patient_id == a)
            )
        }
        assert result.stored == len(stored)
        # Missed-log alerts only while a program asks for logs: the whole replay has them all.
        assert stored == {k for k in whole if k[0] != "missed_logs"} | {
            k for k in stored if k[0] == "missed_logs"
        }


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_the_windowed_evaluation_adds_nothing_the_whole_history_does_not_have(
    app: Flask, clinic: Clinic
) -> None:
    """The worker replays the last `LOOKBACK_DAYS` of logs. Its first weeks would be judged
    against baselines of a few logs, and used to open pain episodes the whole history never
    had: stored as new (already resolved) alerts, each evaluation adding more as the window
    slid. Two simulated patients (seed 3, 560 days) where that happened."""
    cohort = generate_cohort(3, 63, 560)
    with app.app_context():
        today = clinic_today()
        shift = today - cohort.last_day
        pairs = ((clinic.patient_a, cohort.patients[6]), (clinic.patient_b, cohort.patients[62]))
        ids = []
        for person, simulated in pairs:
            pid = person.patient_id
            assert pid is not None
            db.session.execute(sa.insert(SessionLog), _simulated_logs(pid, simulated.series, shift))
            ids.append(pid)
        db.session.commit()
        whole = evaluation.replay_whole_history(db.session, ids, today)
        db.session.commit()
        assert whole.stored > 10

        def stored() -> set[tuple[int, str, str, dt.date]]:
            return {
                (a.patient_id, a.kind, a.metric, a.detected_on)
                for a in db.session.scalars(sa.select(Alert).where(Alert.patient_id.in_(ids)))
            }

        before = stored()
        for day in (today - dt.timedelta(days=2), today - dt.timedelta(days=1), today):
            result = evaluation.evaluate_and_commit(db.session, ids, day)
            assert (result.stored, result.resolved) == (0, 0), day
        assert stored() == before


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_an_alert_open_for_longer_than_the_window_still_resolves(
    app: Flask, clinic: Clinic
) -> None:
    """Leg pain ~1 for 60 days, then ~7 for 340 days, then back to ~1: the alert opened on the
    rise stays open through the long flare (a persistent patient), and once the pain has been
    back near baseline it resolves, as the whole history says — although by then it was
    detected more than the worker's window ago."""
    wobble = [1, 0, 1, 1, 2, 1, 0, 1, 1, 1]
    leg = wobble * 6 + [7, 6, 7, 7, 8, 7, 6, 7, 7, 7] * 34 + wobble * 3
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        today = clinic_today()
        start = today - dt.timedelta(days=len(leg) - 1)
        add_logs(a, start, leg, [1] * len(leg))
        whole = [
            e
            for e in evaluation.detect(db.session, [a], today, None)[a]
            if e.kind == "pain_regression"
        ]
        db.session.rollback()
        assert len(whole) == 1 and whole[0].resolved_on is not None
        detected_on = whole[0].detected_on
        # Older than the window's own decisions on the last day: the case in question.
        assert detected_on < today - dt.timedelta(days=evaluation.LOOKBACK_DAYS - 87)

        evaluation.evaluate_and_commit(db.session, [a], detected_on + dt.timedelta(days=30))
        (alert,) = [x for x in alerts_of(a) if x.kind == "pain_regression"]
        assert alert.status is AlertStatus.OPEN and alert.detected_on == detected_on
        for day in (today - dt.timedelta(days=40), today):
            evaluation.evaluate_and_commit(db.session, [a], day)
        db.session.expire_all()
        (alert,) = [x for x in alerts_of(a) if x.kind == "pain_regression"]
        assert alert.status is AlertStatus.RESOLVED
        assert alert.resolved_on == whole[0].resolved_on
        assert alert.resolve_note is not None and "back near baseline" in alert.resolve_note


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_history_shorter_than_the_window_is_read_once_whatever_its_open_alerts(
    app: Flask, clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """380 days of history, an alert open since day 62 (before the window's own decisions):
    the window already holds the whole history, so the evaluation reads it once — the read
    from further back is for cut series only (it cost every such evaluation a statement)."""
    wobble = [1, 0, 1, 1, 2, 1, 0, 1, 1, 1]
    leg = wobble * 6 + [7, 6, 7, 7, 8, 7, 6, 7, 7, 7] * 32
    reads: list[dt.date | None] = []
    load = evaluation._load

    def counted(session: Any, patient_ids: Any, since: dt.date | None, gap_days: int) -> Any:
        reads.append(since)
        return load(session, patient_ids, since, gap_days)

    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        today = clinic_today()
        add_logs(a, today - dt.timedelta(days=len(leg) - 1), leg, [1] * len(leg))
        evaluation.evaluate_and_commit(db.session, [a], today)
        (alert,) = [x for x in alerts_of(a) if x.kind == "pain_regression"]
        assert alert.status is AlertStatus.OPEN
        assert alert.detected_on < today - dt.timedelta(days=evaluation.LOOKBACK_DAYS - 87)
        monkeypatch.setattr(evaluation, "_load", counted)
        evaluation.evaluate_and_commit(db.session, [a], today)
    assert reads == [today - dt.timedelta(days=evaluation.LOOKBACK_DAYS)]


def _persistent_flare() -> list[int | None]:
    path = Path(__file__).parent.parent / "support" / "data" / "persistent_flare_leg_pain.txt"
    text = "".join(
        line.strip() for line in path.read_text().splitlines() if not line.startswith("#")
    )
    return [None if c == "." else 10 if c == "a" else int(c) for c in text]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_window_that_does_not_show_an_open_alert_defers_to_the_whole_history(
    app: Flask, clinic: Clinic
) -> None:
    """A persistent flare whose alert the whole history keeps open (a review's case). On the
    day the worker's window starts 87 days before the alert, the window replays the flare two
    days early in its warm-up, does not return that episode, and it holds the real one off:
    the window shows neither. Resolving what the window no longer shows closed the alert for
    good that day; now such a patient is replayed whole, and the alert stays open every day."""
    leg = _persistent_flare()
    with app.app_context():
        a = clinic.patient_a.patient_id
        assert a is not None
        today = clinic_today()
        first = today - dt.timedelta(days=len(leg) - 1)
        rows = log_rows(a, first, [v or 0 for v in leg], [1] * len(leg))
        db.session.execute(
            sa.insert(SessionLog), [r for r, v in zip(rows, leg, strict=True) if v is not None]
        )
        db.session.commit()
        (flare,) = [
            e
            for e in evaluation.detect(db.session, [a], today, None)[a]
            if e.kind == "pain_regression" and e.resolved_on is None
        ]
        db.session.rollback()
        evaluation.evaluate_and_commit(db.session, [a], flare.detected_on + dt.timedelta(days=30))
        # The worker's daily evaluations while its window's start passes 87 days before it.
        for k in range(92, 83, -1):
            day = flare.detected_on + dt.timedelta(days=evaluation.LOOKBACK_DAYS - k)
            evaluation.evaluate_and_commit(db.session, [a], day)
            db.session.expire_all()
            open_pain = [
                (x.metric, x.detected_on)
                for x in alerts_of(a)
                if x.kind == "pain_regression" and x.status is not AlertStatus.RESOLVED
            ]
            assert open_pain == [(flare.metric, flare.detected_on)], (k, open_pain)
