"""A clinician marks an event, finding or ODI/PSFS score entered in error.

The seed case's lesson is that context decides: a fall recorded on the wrong patient (or the
wrong day) would have every later alert "begin after a fall". Marking it entered in error
keeps the row, with who, when and why, and takes it out of detection, pages and the CSV; the
FHIR export retracts it."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from rehab.db.models import (
    Alert,
    AlertStatus,
    AuditEvent,
    EntryCorrection,
    Event,
    Finding,
    Notification,
    OutcomeMeasure,
    User,
)
from rehab.domain.vocabulary import FindingKind, Side, TestResult
from rehab.extensions import db
from rehab.services import accounts, alerts, clinical, evaluation
from rehab.services.commands import EnteredInErrorInput, InvalidInput
from rehab.services.time import clinic_today
from tests.conftest import evaluated_ids
from tests.support.clinic import Clinic, csrf_token, login
from tests.support.history import add_fall, add_logs
from tests.support.pages import visible_text

REASON = "wrong patient: the fall was Ms B's"


def mark(client: FlaskClient, path: str, reason: str) -> tuple[int, str]:
    token = csrf_token(client, path)
    response = client.post(path, data={"reason": reason, "csrf_token": token})
    return response.status_code, visible_text(response)


def shown_mark(page_html: str) -> str:
    """The mark an entry's page shows (its take-back form's hidden field)."""
    shown = re.search(r'name="mark" type="hidden" value="([^"]+)"', page_html)
    assert shown is not None
    return shown.group(1)


def take_back(client: FlaskClient, path: str) -> TestResponse:
    """Take back the mark the entry's page (`path`) shows, as its form does."""
    mark_shown = shown_mark(client.get(path).text)
    token = csrf_token(client, path)
    return client.post(f"{path}/undo", data={"csrf_token": token, "mark": mark_shown})


def open_pain_alerts(app: Flask, patient_id: int) -> list[tuple[str, list[Any]]]:
    """(explanation, related events) of the patient's unresolved pain alerts."""
    with app.app_context():
        alerts = [
            (explanation, related)
            for explanation, related in db.session.execute(
                sa.select(Alert.explanation, Alert.related_events).where(
                    Alert.patient_id == patient_id,
                    Alert.kind == "pain_regression",
                    Alert.status != AlertStatus.RESOLVED,
                )
            )
        ]
        db.session.rollback()
        return alerts


def alert_after_a_fall(app: Flask, clinic: Clinic, patient_id: int) -> tuple[int, dt.date]:
    """Six weeks near 1/10, a fall four days ago, then 7s: an open alert that "began after a
    fall" (evaluated). The fall's id and day."""
    today = clinic_today()
    fall_day = today - dt.timedelta(days=4)
    with app.app_context():
        add_logs(patient_id, today - dt.timedelta(days=45), [1, 2, 1, 1, 2] * 8 + [1] * 2 + [7] * 4)
        add_fall(patient_id, clinic.clinician.user_id, fall_day)
        fall_id = db.session.scalar(sa.select(Event.id).where(Event.patient_id == patient_id))
        assert fall_id is not None
        evaluation.evaluate_and_commit(db.session, [patient_id], today)
    return fall_id, fall_day


def test_a_fall_entered_in_error_leaves_detection_the_record_and_the_csv(
    app: Flask, clinic: Clinic
) -> None:
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    assert a is not None and b is not None
    today = clinic_today()
    fall_id, fall_day = alert_after_a_fall(app, clinic, a)
    ((explanation, related),) = open_pain_alerts(app, a)
    assert "fall" in explanation and related

    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    csv_before = clinician.get(f"/clinic/patients/{a}/export.csv").get_data(as_text=True)
    assert ",fall," in csv_before
    record = clinician.get(f"/clinic/patients/{a}")
    path = f"/clinic/patients/{a}/events/{fall_id}/entered-in-error"
    assert f'href="{path}"'.encode() in record.data
    page = clinician.get(path)
    assert page.status_code == 200 and fall_day.isoformat() in visible_text(page)
    status, text = mark(clinician, path, "   ")
    assert status == 422 and "What was wrong" in text  # a reason is required
    status, text = mark(clinician, path, "x" * 301)
    assert status == 422 and "300" in text  # and a short one: no 500, nothing stored
    status, text = mark(clinician, path, "wrong\x00patient")
    assert status == 400 and "Traceback" not in text  # refused before any view (NUL)
    status, _ = mark(clinician, path, REASON)
    assert status == 302

    with app.app_context():
        fall = db.session.get(Event, fall_id)
        assert fall is not None  # kept, with who, when and why
        assert fall.entered_in_error_by_user_id == clinic.clinician.user_id
        assert fall.entered_in_error_reason == REASON and fall.entered_in_error_at is not None
        # The worker evaluates the patient again after the commit; here, directly.
        evaluation.evaluate_and_commit(db.session, [a], today)
    after = open_pain_alerts(app, a)
    assert after, "the rise itself is still a regression"
    assert all("fall" not in explanation for explanation, _ in after)
    assert all(related == [] for _, related in after)

    record_text = visible_text(clinician.get(f"/clinic/patients/{a}"))
    assert "Entered in error (1)" in record_text and REASON in record_text
    assert "Marked entered in error: Fall: slipped on marble stairs" in record_text  # flash
    timeline = record_text.split("Events and findings")[1].split("Entered in error (1)")[0]
    assert "No events or findings recorded" in timeline
    # Again: refused, nothing changes.
    status, text = mark(clinician, path, "another reason")
    assert status == 422 and "is already marked entered in error" in text

    csv_text = clinician.get(f"/clinic/patients/{a}/export.csv").get_data(as_text=True)
    assert ",fall," not in csv_text
    bundle = json.loads(clinician.get(f"/clinic/patients/{a}/export.fhir.json").data)
    (fall_out,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"].get("code", {}).get("text") == "Fall"
    ]
    assert fall_out["status"] == "entered-in-error"
    assert not {"note", "effectiveDateTime", "component", "valueString"} & set(fall_out)

    # Only a clinician of the care team, only this patient's records.
    for person in (clinic.other_clinician, clinic.patient_a):
        other = app.test_client()
        login(other, person.email)
        assert other.get(path).status_code == 404, person.email
    with app.app_context():
        add_fall(b, clinic.clinician.user_id, fall_day)
        b_fall = db.session.scalar(sa.select(Event.id).where(Event.patient_id == b))
    assert (
        clinician.get(f"/clinic/patients/{a}/events/{b_fall}/entered-in-error").status_code == 404
    )
    assert clinician.get(f"/clinic/patients/{a}/events/987654/entered-in-error").status_code == 404
    assert clinician.get(f"/clinic/patients/{a}/logs/{fall_id}/entered-in-error").status_code == 404

    with app.app_context():
        audited = [
            (r.user_id, r.patient_id, r.outcome.value, r.target)
            for r in db.session.scalars(
                sa.select(AuditEvent).where(AuditEvent.action == "event.entered_in_error")
            )
        ]
    assert (clinic.clinician.user_id, a, "allowed", f"event:{fall_id}") in audited


def test_a_score_or_a_finding_entered_in_error(app: Flask, clinic: Clinic) -> None:
    """A wrong ODI no longer makes a function decline; a wrong finding leaves the record's
    timeline (and stays listed as entered in error)."""
    a = clinic.patient_a.patient_id
    assert a is not None
    today = clinic_today()
    with app.app_context():
        add_logs(a, today - dt.timedelta(days=30), [2] * 30)
        for days_ago, score in ((28, 20.0), (14, 22.0), (2, 46.0)):
            db.session.add(
                OutcomeMeasure(
                    patient_id=a,
                    instrument="odi",
                    measured_on=today - dt.timedelta(days=days_ago),
                    score=score,
                    answers={},
                    recorded_by_user_id=clinic.clinician.user_id,
                )
            )
        db.session.add(
            Finding(
                patient_id=a,
                finding_date=today - dt.timedelta(days=1),
                kind=FindingKind.NEURODYNAMIC_TEST,
                test_name="slump",
                side=Side.RIGHT,
                result=TestResult.POSITIVE,
                author_user_id=clinic.clinician.user_id,
            )
        )
        db.session.commit()
        evaluation.evaluate_and_commit(db.session, [a], today)
        wrong_score = db.session.scalar(
            sa.select(OutcomeMeasure.id).where(OutcomeMeasure.score == 46.0)
        )
        finding_id = db.session.scalar(sa.select(Finding.id).where(Finding.patient_id == a))

    def declines() -> list[tuple[str, str]]:
        with app.app_context():
            found = [
                (status.value, note)
                for status, note in db.session.execute(
                    sa.select(Alert.status, Alert.resolve_note).where(
                        Alert.patient_id == a, Alert.kind == "function_decline"
                    )
                )
            ]
            db.session.rollback()
            return found

    assert declines() == [("open", "")]
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    record = clinician.get(f"/clinic/patients/{a}").get_data(as_text=True)
    assert f"/outcomes/{wrong_score}/entered-in-error" in record
    assert f"/findings/{finding_id}/entered-in-error" in record
    score_path = f"/clinic/patients/{a}/outcomes/{wrong_score}/entered-in-error"
    assert mark(clinician, score_path, "typed 46 for 26")[0] == 302
    assert (
        mark(
            clinician,
            f"/clinic/patients/{a}/findings/{finding_id}/entered-in-error",
            "other patient",
        )[0]
        == 302
    )
    with app.app_context():
        evaluation.evaluate_and_commit(db.session, [a], today)
    assert declines() == [("resolved", alerts.AUTO_NO_LONGER_SHOWN)]
    text = visible_text(clinician.get(f"/clinic/patients/{a}"))
    assert "Entered in error (2)" in text
    listed = text.split("Entered in error (2)")[1]
    assert "ODI 46" in listed and "Slump (right) positive" in listed
    assert "typed 46 for 26" in listed and "other patient" in listed


def test_an_open_alert_that_cited_the_fall_is_reworded_not_reopened(
    app: Flask, clinic: Clinic
) -> None:
    """A rise that alerts on its own, with a fall two weeks before it cited as context: after
    the fall is marked entered in error the same alert stays open (same id, no new e-mail)
    and no longer cites it."""
    a = clinic.patient_a.patient_id
    assert a is not None
    today = clinic_today()
    with app.app_context():
        add_logs(a, today - dt.timedelta(days=49), [1, 2, 1, 1, 2] * 9 + [8] * 4)
        # 14 days before the rise began: cited, too early to lower the evidence it needs.
        add_fall(a, clinic.clinician.user_id, today - dt.timedelta(days=18))
        fall_id = db.session.scalar(sa.select(Event.id).where(Event.patient_id == a))
        evaluation.evaluate_and_commit(db.session, [a], today)
        found = db.session.execute(
            sa.select(Alert.id, Alert.related_events, Alert.kind, Alert.explanation).where(
                Alert.patient_id == a, Alert.status != AlertStatus.RESOLVED
            )
        ).all()
        db.session.rollback()
    assert len(found) == 1, found
    ((alert_id, related, _, _),) = found
    assert [e["event"] for e in related] == ["fall"]
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    path = f"/clinic/patients/{a}/events/{fall_id}/entered-in-error"
    assert mark(clinician, path, "wrong day")[0] == 302
    with app.app_context():
        evaluation.evaluate_and_commit(db.session, [a], today)
        rows = db.session.execute(
            sa.select(Alert.id, Alert.status, Alert.related_events, Alert.explanation).where(
                Alert.patient_id == a, Alert.kind == "pain_regression"
            )
        ).all()
        updates = db.session.scalars(
            sa.select(AuditEvent.target).where(AuditEvent.action == "alert.update")
        ).all()
        db.session.rollback()
    assert len(rows) == 1, detected_days(app, a)  # not superseded by a new alert
    ((same_id, status, related_now, explanation),) = rows
    assert (same_id, status, related_now) == (alert_id, AlertStatus.OPEN, [])
    assert "fall" not in explanation.lower()
    assert updates == [f"alert:{alert_id}"]


def detected_days(app: Flask, patient_id: int) -> list[Any]:
    """(id, detected_on, resolve note) of the patient's alerts: what a failure shows."""
    with app.app_context():
        found = db.session.execute(
            sa.select(Alert.id, Alert.detected_on, Alert.resolve_note).where(
                Alert.patient_id == patient_id
            )
        ).all()
        db.session.rollback()
        return [tuple(r) for r in found]


def test_a_patient_takes_back_a_fall_she_logged_by_mistake(app: Flask, clinic: Clinic) -> None:
    """Her own events only: what her clinic recorded is the clinic's to correct."""
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    assert a is not None and b is not None
    day = clinic_today() - dt.timedelta(days=1)
    with app.app_context():
        add_fall(a, clinic.patient_a.user_id, day)  # hers
        add_fall(a, clinic.clinician.user_id, day)  # her clinic's
        add_fall(b, clinic.patient_b.user_id, day)  # someone else's
        own, clinics = db.session.scalars(
            sa.select(Event.id).where(Event.patient_id == a).order_by(Event.id)
        ).all()
        other = db.session.scalar(sa.select(Event.id).where(Event.patient_id == b))
    patient = app.test_client()
    login(patient, clinic.patient_a.email)
    history = patient.get("/me/history").get_data(as_text=True)
    assert f"/me/events/{own}/entered-in-error" in history
    assert f"/me/events/{clinics}/entered-in-error" not in history
    for not_hers in (clinics, other, 987654):
        path = f"/me/events/{not_hers}/entered-in-error"
        assert patient.get(path).status_code == 404
        token = csrf_token(patient, "/me/history")
        refused = patient.post(path, data={"reason": "wrong day", "csrf_token": token})
        assert refused.status_code == 404
    assert mark(patient, f"/me/events/{own}/entered-in-error", "")[0] == 422
    status, _ = mark(patient, f"/me/events/{own}/entered-in-error", "wrong day, it was Friday")
    assert status == 302
    assert (
        len(re.findall("slipped on marble stairs", visible_text(patient.get("/me/history")))) == 1
    )

    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    text = visible_text(clinician.get(f"/clinic/patients/{a}"))
    listed = text.split("Entered in error (1)")[1]
    assert "wrong day, it was Friday" in listed and "Marked by Alice Patient" in listed
    with app.app_context():
        audited = [
            (r.user_id, r.outcome.value, r.target)
            for r in db.session.scalars(
                sa.select(AuditEvent).where(AuditEvent.action.like("event.%"))
            )
        ]
    assert (clinic.patient_a.user_id, "allowed", f"event:{own}") in audited
    assert (clinic.patient_a.user_id, "denied", f"event:{clinics}") in audited

    # Her clinic knows the fall happened and takes her mark back: her history has it again,
    # and tells her why. (The clinic's own fall, never marked, says nothing of the kind.)
    path = f"/clinic/patients/{a}/events/{own}/entered-in-error"
    assert take_back(clinician, path).status_code == 302
    mine = visible_text(patient.get("/me/history"))
    assert len(re.findall("slipped on marble stairs", mine)) == 2
    note = "You marked this as logged by mistake; your clinic put it back in your history on "
    assert mine.count(note) == 1
    assert f"{note}{clinic_today().isoformat()}." in mine
    # Marked again and taken back by her clinic: not a mark of hers any more, no note.
    assert mark(clinician, path, "checking the date")[0] == 302
    assert take_back(clinician, path).status_code == 302
    mine = visible_text(patient.get("/me/history"))
    assert len(re.findall("slipped on marble stairs", mine)) == 2 and note not in mine


def test_a_mark_that_was_itself_the_mistake_is_taken_back(
    app: Flask, clinic: Clinic, sent: list[tuple[str, list[Any]]]
) -> None:
    """The wrong fall was marked: the clinician takes the mark back from the entry's page.
    The fall returns to the record, the CSV and the FHIR export, and the patient is evaluated
    again; only a clinician of the care team may, only the mark her page showed, once, and
    each attempt is audited."""
    a = clinic.patient_a.patient_id
    assert a is not None
    today = clinic_today()
    fall_id, fall_day = alert_after_a_fall(app, clinic, a)
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    path = f"/clinic/patients/{a}/events/{fall_id}/entered-in-error"
    undo = f"{path}/undo"
    mark_and_evaluate(app, clinician, path, a)
    assert all("fall" not in explanation for explanation, _ in open_pain_alerts(app, a))

    record = clinician.get(f"/clinic/patients/{a}").get_data(as_text=True)
    assert f'href="{path}"' in record and "Take back the mark" in record
    page = clinician.get(path)
    assert f'action="{undo}"' in page.get_data(as_text=True)
    assert "Take back the mark" in visible_text(page)
    marked_by = f"Marked entered in error on {today.isoformat()} by Cara Clinician: {REASON}"
    assert marked_by in visible_text(page)

    # Nobody else: a patient (even for her own record) or a clinician off the care team.
    for person in (clinic.patient_a, clinic.other_clinician):
        other = app.test_client()
        login(other, person.email)
        token = csrf_token(other, "/me/account" if person is clinic.patient_a else "/clinic/")
        assert other.post(undo, data={"csrf_token": token}).status_code == 404, person.email
    assert clinician.post(undo, data={}).status_code == 400  # no CSRF token
    with app.app_context():
        fall = db.session.get(Event, fall_id)
        assert fall is not None and fall.in_error  # none of that changed it
        db.session.rollback()

    shown = shown_mark(page.get_data(as_text=True))
    # A page opened before the mark was made again (another time): nothing taken back.
    stale = clinician.post(
        undo, data={"csrf_token": csrf_token(clinician, path), "mark": "2020-01-01T00:00:00+00:00"}
    )
    assert stale.status_code == 422
    assert "Nothing taken back: its mark changed since the page was opened" in visible_text(stale)
    with app.app_context():
        fall = db.session.get(Event, fall_id)
        assert fall is not None and fall.in_error
        db.session.rollback()
    evaluated_ids(sent)  # (what was sent so far)
    sent.clear()

    token = csrf_token(clinician, path)
    taken_back = clinician.post(undo, data={"csrf_token": token, "mark": shown})
    assert taken_back.status_code == 302
    assert evaluated_ids(sent) == {a}  # she is evaluated again once it is committed
    assert taken_back.headers["Location"] == f"/clinic/patients/{a}"
    with app.app_context():
        fall = db.session.get(Event, fall_id)
        assert fall is not None and not fall.in_error
        assert (fall.entered_in_error_by_user_id, fall.entered_in_error_reason) == (None, None)

    record_text = visible_text(clinician.get(f"/clinic/patients/{a}"))
    assert "Back in the record: Fall: slipped on marble stairs" in record_text  # flash
    assert "Entered in error (" not in record_text
    # The record keeps the mark it took back: who marked it, when and why, and who took
    # it back (the entry's own mark columns are cleared).
    on = today.isoformat()
    history = record_text.split("Marks taken back (1)")[1]
    assert f"Marked entered in error by Cara Clinician on {on}: {REASON}" in history
    assert f"Mark taken back by Cara Clinician on {on}" in history
    with app.app_context():
        steps = [
            (c.entry_kind, c.entry_id, c.action.value, c.reason, c.by_user_id)
            for c in db.session.scalars(
                sa.select(EntryCorrection)
                .where(EntryCorrection.patient_id == a)
                .order_by(EntryCorrection.id)
            )
        ]
        db.session.rollback()
    cara = clinic.clinician.user_id
    assert steps == [
        ("event", fall_id, "marked", REASON, cara),
        ("event", fall_id, "taken_back", None, cara),
    ]
    # ... and so does the entry's own page, oldest first.
    entry_page = visible_text(clinician.get(path)).split("Corrections of this entry")[1]
    assert entry_page.index(f"{on} — marked entered in error by Cara Clinician: {REASON}") < (
        entry_page.index(f"{on} — mark taken back by Cara Clinician")
    )
    timeline = record_text.split("Events and findings")[1]
    assert "slipped on marble stairs" in timeline
    assert ",fall," in clinician.get(f"/clinic/patients/{a}/export.csv").get_data(as_text=True)
    bundle = json.loads(clinician.get(f"/clinic/patients/{a}/export.fhir.json").data)
    (fall_out,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"].get("code", {}).get("text") == "Fall"
    ]
    assert fall_out["status"] == "final" and fall_out["effectiveDateTime"] == fall_day.isoformat()

    # Again: nothing to take back (422, the entry's page saying so), nothing changes.
    again = clinician.post(undo, data={"csrf_token": csrf_token(clinician, path), "mark": shown})
    assert again.status_code == 422
    assert "Nothing taken back: the entry is not marked entered in error" in visible_text(again)
    # ... and its form marks the entry (it does not post to the take-back again).
    assert f'action="{path}"' in again.get_data(as_text=True)

    with app.app_context():
        audited = [
            (r.user_id, r.patient_id, r.outcome.value, r.target)
            for r in db.session.scalars(
                sa.select(AuditEvent)
                .where(AuditEvent.action == "event.entered_in_error_undo")
                .order_by(AuditEvent.id)
            )
        ]
    # (The patient was turned away at the clinic's door, before any record was named.)
    target = f"event:{fall_id}"
    assert audited == [
        (clinic.other_clinician.user_id, a, "denied", target),
        (clinic.clinician.user_id, a, "failed", target),  # a mark she had not seen
        (clinic.clinician.user_id, a, "allowed", target),
        (clinic.clinician.user_id, a, "failed", target),  # nothing left to take back
    ]


def test_two_marks_at_once_make_one(app: Flask, clinic: Clinic) -> None:
    """Two clinicians mark the same fall at once (each page loaded it unmarked): one mark is
    made, the other is told, and the record's history holds the one mark in force."""
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        add_fall(a, clinic.clinician.user_id, clinic_today() - dt.timedelta(days=2))
        db.session.commit()
        fall_id = db.session.scalars(sa.select(Event.id).where(Event.patient_id == a)).one()
        first, second = Session(db.engine), Session(db.engine)
        try:
            rows = [s.get_one(Event, fall_id) for s in (first, second)]
            cara = [
                accounts.actor_for(s.get_one(User, clinic.clinician.user_id))
                for s in (first, second)
            ]
            clinical.mark_entered_in_error(
                first, cara[0], rows[0], EnteredInErrorInput(reason="first")
            )
            with pytest.raises(InvalidInput, match="meanwhile"):
                clinical.mark_entered_in_error(
                    second, cara[1], rows[1], EnteredInErrorInput(reason="second")
                )
            second.rollback()
        finally:
            first.close()
            second.close()
        fall = db.session.get_one(Event, fall_id)
        assert fall.entered_in_error_reason == "first"
        history = db.session.execute(
            sa.select(EntryCorrection.action, EntryCorrection.reason).where(
                EntryCorrection.entry_id == fall_id
            )
        ).all()
        assert [(action.value, reason) for action, reason in history] == [("marked", "first")]


def pain_alerts(app: Flask, patient_id: int) -> dict[int, tuple[Any, ...]]:
    """id → (status, resolve note, acknowledge note, explanation, related events' kinds) of
    the patient's pain alerts."""
    with app.app_context():
        found = {
            alert_id: (status, note, ack_note, explanation, [e["event"] for e in related])
            for alert_id, status, note, ack_note, explanation, related in db.session.execute(
                sa.select(
                    Alert.id,
                    Alert.status,
                    Alert.resolve_note,
                    Alert.acknowledge_note,
                    Alert.explanation,
                    Alert.related_events,
                ).where(Alert.patient_id == patient_id, Alert.kind == "pain_regression")
            )
        }
        db.session.rollback()
        return found


def audited_alert_steps(app: Flask) -> list[tuple[str, str | None]]:
    with app.app_context():
        steps = [
            (r.action, r.target)
            for r in db.session.scalars(
                sa.select(AuditEvent)
                .where(AuditEvent.action.in_(["alert.reopen", "alert.resolve", "alert.update"]))
                .order_by(AuditEvent.id)
            )
        ]
        db.session.rollback()
        return steps


class FallAlert(NamedTuple):
    fall_id: int
    alert_id: int
    clinician: FlaskClient  # her clinician, logged in
    path: str  # the fall's entered-in-error page


def fall_alert_and_her_clinician(app: Flask, clinic: Clinic, patient_id: int) -> FallAlert:
    """`alert_after_a_fall`, its one pain alert, and her clinician logged in."""
    fall_id, _ = alert_after_a_fall(app, clinic, patient_id)
    (alert_id,) = pain_alerts(app, patient_id)
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    return FallAlert(
        fall_id,
        alert_id,
        clinician,
        f"/clinic/patients/{patient_id}/events/{fall_id}/entered-in-error",
    )


def mark_and_evaluate(app: Flask, client: FlaskClient, path: str, patient_id: int) -> None:
    """Mark the entry entered in error from its page, then evaluate her as the worker would."""
    assert mark(client, path, REASON)[0] == 302
    with app.app_context():
        evaluation.evaluate_and_commit(db.session, [patient_id], clinic_today())


def acknowledge(client: FlaskClient, alert_id: int, note: str) -> None:
    token = csrf_token(client, "/clinic/alerts/")
    answer = client.post(
        f"/clinic/alerts/{alert_id}/acknowledge", data={"csrf_token": token, "note": note}
    )
    assert answer.status_code == 303


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
@pytest.mark.parametrize("acknowledged", ["first", "later"])
def test_taking_back_a_mark_brings_back_the_alert_the_mark_had_superseded(
    app: Flask, clinic: Clinic, acknowledged: str, sent: list[tuple[str, list[Any]]]
) -> None:
    """The fall made the alert a day early; marked entered in error, the fall went, and a
    later alert without it replaced that one. Its mark taken back, the fall's alert is open
    again as it was (same id, its words citing the fall, acknowledged if either was: the
    clinician who acknowledged the later one is on it) and the later one, which the record
    no longer shows, is resolved; audited, dated in its history, nobody e-mailed again."""
    a = clinic.patient_a.patient_id
    assert a is not None
    today = clinic_today()
    _, first_id, clinician, path = fall_alert_and_her_clinician(app, clinic, a)
    if acknowledged == "first":
        acknowledge(clinician, first_id, "calling her")
    mark_and_evaluate(app, clinician, path, a)
    found = pain_alerts(app, a)
    assert len(found) == 2, found  # the fall's alert superseded by a later one without it
    (later_id,) = set(found) - {first_id}
    assert found[first_id][1] == alerts.AUTO_SUPERSEDED
    assert "fall" not in found[later_id][3]
    if acknowledged == "later":
        acknowledge(clinician, later_id, "calling her")

    assert take_back(clinician, path).status_code == 302
    evaluated_ids(sent)
    sent.clear()
    with app.app_context():
        result = evaluation.evaluate_patients(db.session, [a], today)
        db.session.commit()
        assert result.reopened == [first_id] and result.escalated == result.opened == []
        again = evaluation.evaluate_patients(db.session, [a], today)  # changes nothing
        db.session.commit()
        assert (again.reopened, again.resolved, again.stored) == ([], 0, 0)
    found = pain_alerts(app, a)
    assert found[first_id][:3] == (AlertStatus.ACKNOWLEDGED, "", "calling her")
    assert "fall" in found[first_id][3] and found[first_id][4] == ["fall"]
    assert found[later_id][:2] == (AlertStatus.RESOLVED, alerts.AUTO_NO_LONGER_SHOWN)
    assert audited_alert_steps(app)[-2:] == [
        ("alert.resolve", f"alert:{later_id}"),
        ("alert.reopen", f"alert:{first_id}"),
    ]
    page = visible_text(clinician.get(f"/clinic/patients/{a}"))
    assert "Reopened on" in page and "shows it ongoing again" in page
    assert sent == []  # no e-mail, no task: its care team was told when it first opened


def test_an_alert_the_mark_closed_outright_comes_back(app: Flask, clinic: Clinic) -> None:
    """Two logs up after a fall: alerted for the fall only. Marked entered in error, nothing
    shows the rise (no later alert); the mark taken back, the same alert is open again."""
    a = clinic.patient_a.patient_id
    assert a is not None
    today = clinic_today()
    with app.app_context():
        add_logs(a, today - dt.timedelta(days=43), [1, 2, 1, 1, 2] * 8 + [1, 5, 5])  # to yesterday
        add_fall(a, clinic.clinician.user_id, today - dt.timedelta(days=2))
        fall_id = db.session.scalar(sa.select(Event.id).where(Event.patient_id == a))
        evaluation.evaluate_and_commit(db.session, [a], today)
    (alert_id,) = pain_alerts(app, a)
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    path = f"/clinic/patients/{a}/events/{fall_id}/entered-in-error"
    mark_and_evaluate(app, clinician, path, a)
    assert pain_alerts(app, a)[alert_id][:2] == (
        AlertStatus.RESOLVED,
        alerts.AUTO_NO_LONGER_SHOWN,
    )
    assert take_back(clinician, path).status_code == 302
    with app.app_context():
        evaluation.evaluate_and_commit(db.session, [a], today)
    found = pain_alerts(app, a)
    assert list(found) == [alert_id]
    assert found[alert_id][:2] == (AlertStatus.OPEN, "")
    assert audited_alert_steps(app)[-1] == ("alert.reopen", f"alert:{alert_id}")


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_an_alert_a_clinician_resolved_is_not_reopened_by_a_mark_taken_back(
    app: Flask, clinic: Clinic
) -> None:
    """Her judgement of the episode stands; the later alert, which the record no longer
    shows, is resolved all the same."""
    a = clinic.patient_a.patient_id
    assert a is not None
    today = clinic_today()
    _, first_id, clinician, path = fall_alert_and_her_clinician(app, clinic, a)
    token = csrf_token(clinician, "/clinic/alerts/")
    resolved = clinician.post(
        f"/clinic/alerts/{first_id}/resolve", data={"csrf_token": token, "note": "seen her"}
    )
    assert resolved.status_code == 303
    mark_and_evaluate(app, clinician, path, a)
    (later_id,) = set(pain_alerts(app, a)) - {first_id}
    assert take_back(clinician, path).status_code == 302
    with app.app_context():
        evaluation.evaluate_and_commit(db.session, [a], today)
        first = db.session.get(Alert, first_id)
        assert first is not None
        assert (first.status, first.resolved_by_user_id, first.resolve_note) == (
            AlertStatus.RESOLVED,
            clinic.clinician.user_id,
            "seen her",
        )
        db.session.rollback()
    assert pain_alerts(app, a)[later_id][:2] == (AlertStatus.RESOLVED, alerts.AUTO_NO_LONGER_SHOWN)
    steps = audited_alert_steps(app)
    assert steps[-1] == ("alert.resolve", f"alert:{later_id}")
    assert all(action != "alert.reopen" for action, _ in steps)


def test_a_reopened_alert_is_told_to_a_new_care_team_never_told_of_it(
    app: Flask, clinic: Clinic
) -> None:
    """Handed over while the later alert was open, the new team heard of that one only; the
    fall's alert, reopened, is told to its clinicians (and not again to the first team)."""
    a = clinic.patient_a.patient_id
    assert a is not None
    today = clinic_today()
    _, first_id, clinician, path = fall_alert_and_her_clinician(app, clinic, a)
    mark_and_evaluate(app, clinician, path, a)
    care_team = f"/clinic/patients/{a}/care-team"
    token = csrf_token(clinician, care_team)
    moved = clinician.post(
        care_team, data={"csrf_token": token, "care_team_id": str(clinic.team_south_id)}
    )
    assert moved.status_code == 302
    dan = app.test_client()
    login(dan, clinic.other_clinician.email)
    assert take_back(dan, path).status_code == 302
    with app.app_context():
        evaluation.evaluate_and_commit(db.session, [a], today)
        told = sorted(
            db.session.scalars(
                sa.select(Notification.recipient_user_id).where(Notification.alert_id == first_id)
            )
        )
        db.session.rollback()
    assert told == sorted([clinic.clinician.user_id, clinic.other_clinician.user_id])
