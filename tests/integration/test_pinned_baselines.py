"""A clinician pins a patient's pain baseline, and returns it to automatic (issue 3, design §2
Baseline): from the patient page, care team only, each write audited and followed by a
re-evaluation; bad values are refused with the field named; the detector uses the pin."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from rehab import fhir
from rehab.db.models import (
    Alert,
    AlertStatus,
    AuditEvent,
    Patient,
    PinnedBaseline,
    User,
    utcnow,
)
from rehab.extensions import db
from rehab.services import accounts, alerts, baselines, caseload, evaluation, scan, trajectory
from rehab.services.baselines import PinInput
from rehab.services.time import clinic_today
from tests.conftest import evaluated_ids
from tests.support.actors import token_of
from tests.support.clinic import Clinic, login
from tests.support.history import add_logs
from tests.support.pages import form_data, text, visible_text

# Leg pain steady around 4 for six weeks: the automatic baseline is about 4, nothing to alert.
STEADY = [4, 3, 4, 5, 4, 4, 3, 4, 4, 5] * 4 + [4, 4]


@pytest.fixture
def clinician(client: FlaskClient, clinic: Clinic) -> FlaskClient:
    login(client, clinic.clinician.email)
    return client


def patient_a(clinic: Clinic) -> int:
    a = clinic.patient_a.patient_id
    assert a is not None
    return a


def page_url(patient_id: int) -> str:
    return f"/clinic/patients/{patient_id}"


def pin_url(patient_id: int, metric: str = "leg_pain") -> str:
    return f"/clinic/patients/{patient_id}/baselines/{metric}"


def pin_form(client: FlaskClient, patient_id: int, metric: str = "leg_pain") -> dict[str, Any]:
    """The metric's pin form as the patient page shows it."""
    page = client.get(page_url(patient_id))
    assert page.status_code == 200
    return form_data(text(page), pin_url(patient_id, metric))


def pin_rows(app: Flask, patient_id: int, columns: Sequence[Any], *where: Any) -> list[Any]:
    """`columns` of the patient's pin rows that match `where`, in the order they were made."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(*columns)
            .where(PinnedBaseline.patient_id == patient_id, *where)
            .order_by(PinnedBaseline.id)
        ).all()
    return [tuple(r) for r in rows]


def pins(app: Flask, patient_id: int) -> list[tuple[str, float | None, float | None, dt.date, int]]:
    """The current pins (metric, level, spread, from, pinned by), by metric and date."""
    columns = (
        PinnedBaseline.metric,
        PinnedBaseline.level,
        PinnedBaseline.spread,
        PinnedBaseline.effective_from,
        PinnedBaseline.pinned_by_user_id,
    )
    return sorted(
        pin_rows(app, patient_id, columns, PinnedBaseline.current()), key=lambda r: r[0::3]
    )


def replaced(app: Flask, patient_id: int) -> list[tuple[str, float | None, dt.date, int | None]]:
    """The pins replaced (metric, level, from, replaced by), in the order they were made."""
    columns = (
        PinnedBaseline.metric,
        PinnedBaseline.level,
        PinnedBaseline.effective_from,
        PinnedBaseline.replaced_by_user_id,
    )
    return pin_rows(app, patient_id, columns, ~PinnedBaseline.current())


def audit_rows(
    app: Flask, *actions: str
) -> list[tuple[str, str, int | None, int | None, str | None]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(
                AuditEvent.action,
                AuditEvent.outcome,
                AuditEvent.patient_id,
                AuditEvent.user_id,
                AuditEvent.target,
            )
            .where(AuditEvent.action.in_(actions))
            .order_by(AuditEvent.id)
        ).all()
    return [(r[0], r[1].value, r[2], r[3], r[4]) for r in rows]


def test_pin_then_return_to_automatic_from_the_patient_page(
    app: Flask, clinician: FlaskClient, clinic: Clinic, sent: list[tuple[str, list[Any]]]
) -> None:
    a = patient_a(clinic)
    today = clinic_today()
    with app.app_context():
        add_logs(a, today - dt.timedelta(days=len(STEADY) - 1), STEADY)
    page = visible_text(clinician.get(page_url(a)))
    assert "Pain baselines" in page
    assert page.count("Automatic: robust mean of the logs") == 2  # leg and back pain
    assert "Return to automatic" not in page

    body = pin_form(clinician, a)
    assert body["leg_pain-effective_from"] == today.isoformat()  # today by default
    since = today - dt.timedelta(days=7)
    body.update({"leg_pain-level": "1.5", "leg_pain-spread": "1", "leg_pain-effective_from": since})
    response = clinician.post(pin_url(a), data=body)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(page_url(a))
    assert pins(app, a) == [("leg_pain", 1.5, 1.0, since, clinic.clinician.user_id)]
    assert a in evaluated_ids(sent)

    page = visible_text(clinician.get(page_url(a)))
    assert f"Pinned by Cara Clinician from {since.isoformat()} at 1.5/10" in page
    assert "day-to-day spread 1" in page
    assert page.count("Automatic: robust mean of the logs") == 1  # back pain still automatic
    assert "Return to automatic" in page

    sent.clear()
    unpin = form_data(text(clinician.get(page_url(a))), pin_url(a) + "/automatic")
    response = clinician.post(pin_url(a) + "/automatic", data=unpin)
    assert response.status_code == 302
    # The pin keeps the days it governed; a row with no level ends it today.
    assert pins(app, a) == [
        ("leg_pain", 1.5, 1.0, since, clinic.clinician.user_id),
        ("leg_pain", None, None, today, clinic.clinician.user_id),
    ]
    assert a in evaluated_ids(sent)
    page = visible_text(clinician.get(page_url(a)))
    assert page.count("Automatic: robust mean of the logs") == 2
    assert f"back to automatic from {today.isoformat()}" in page
    assert f"From {since.isoformat()} to {today.isoformat()}: pinned at 1.5/10" in page
    assert "Return to automatic" not in page
    # Again: nothing more to end (audited all the same).
    again = clinician.post(pin_url(a) + "/automatic", data=unpin)
    assert again.status_code == 302
    assert len(pins(app, a)) == 2

    target = "baseline:leg_pain"
    who = clinic.clinician.user_id
    assert audit_rows(app, "baseline.pin", "baseline.unpin") == [
        ("baseline.pin", "allowed", a, who, target),
        ("baseline.unpin", "allowed", a, who, target),
        ("baseline.unpin", "allowed", a, who, target),
    ]


def test_a_new_pin_replaces_the_pins_from_its_date_on(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    """The detector lets the pin with the latest date win from that date: pinning from D
    replaces later pins (or the new one would not be in force), and keeps earlier ones for
    the days before D."""
    a = patient_a(clinic)
    today = clinic_today()
    days = [today - dt.timedelta(days=n) for n in (20, 10, 5)]

    def pin(level: str, day: dt.date, metric: str = "leg_pain") -> None:
        body = {
            "csrf_token": token_of(clinician),
            f"{metric}-level": level,
            f"{metric}-effective_from": day.isoformat(),
        }
        assert clinician.post(pin_url(a, metric), data=body).status_code == 302

    pin("2", days[0])
    pin("3", days[2])
    pin("6", today, "back_pain")
    user = clinic.clinician.user_id
    assert [(m, level, d) for m, level, _, d, _ in pins(app, a)] == [
        ("back_pain", 6.0, today),
        ("leg_pain", 2.0, days[0]),
        ("leg_pain", 3.0, days[2]),
    ]
    assert replaced(app, a) == []
    pin("4", days[1])  # replaces the pin from days[2], keeps the one from days[0]
    # (The replaced pin stays, marked: the baseline's history, and the FHIR retraction.)
    assert replaced(app, a) == [("leg_pain", 3.0, days[2], user)]
    assert pins(app, a) == [
        ("back_pain", 6.0, None, today, user),
        ("leg_pain", 2.0, None, days[0], user),
        ("leg_pain", 4.0, None, days[1], user),
    ]
    page = visible_text(clinician.get(pin_url(a)))
    assert f"Pinned by Cara Clinician from {days[1].isoformat()} at 4/10" in page
    assert "Baseline history (3)" in page  # the two in force, and the one replaced
    assert f"From {days[2].isoformat()}: pinned at 3/10 — Cara Clinician" in page
    assert "; replaced by Cara Clinician, " in page

    # Back to automatic ends the pin in force of that metric today, and only of that metric;
    # the earlier pins keep their days.
    response = clinician.post(pin_url(a) + "/automatic", data={"csrf_token": token_of(clinician)})
    assert response.status_code == 302
    after = [
        ("back_pain", 6.0, None, today, user),
        ("leg_pain", 2.0, None, days[0], user),
        ("leg_pain", 4.0, None, days[1], user),
        ("leg_pain", None, None, today, user),
    ]
    assert pins(app, a) == after
    # Already automatic: nothing to do, still a redirect (and on record).
    response = clinician.post(pin_url(a) + "/automatic", data={"csrf_token": token_of(clinician)})
    assert response.status_code == 302
    assert pins(app, a) == after
    # A pin from today that is undone the same day governed no day: it goes, no row is added.
    response = clinician.post(
        pin_url(a, "back_pain") + "/automatic", data={"csrf_token": token_of(clinician)}
    )
    assert response.status_code == 302
    assert pins(app, a) == after[1:]
    assert replaced(app, a) == [("leg_pain", 3.0, days[2], user), ("back_pain", 6.0, today, user)]
    assert [r[:2] for r in audit_rows(app, "baseline.unpin")] == [
        ("baseline.unpin", "allowed"),
        ("baseline.unpin", "allowed"),
        ("baseline.unpin", "allowed"),
    ]


ERROR = re.compile(r'<p class="error" id="leg_pain-(\w+)-error">([^<]*)</p>')


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"leg_pain-level": "11"}, "level", "from 0 to 10"),
        ({"leg_pain-level": "-1"}, "level", "from 0 to 10"),
        ({"leg_pain-level": "nan"}, "level", "from 0 to 10"),
        ({"leg_pain-level": "high"}, "level", "Not a valid"),
        ({"leg_pain-level": ""}, "level", "Give the level"),
        ({"leg_pain-spread": "0.1"}, "spread", "from 0.8 to 5"),
        ({"leg_pain-spread": "inf"}, "spread", "from 0.8 to 5"),
        ({"leg_pain-effective_from": "tomorrow"}, "effective_from", "Not a valid date"),
        ({"leg_pain-effective_from": ""}, "effective_from", "Give the date"),
        ("future", "effective_from", "is in the future"),
        ("before_first_log", "effective_from", "before the patient's first log or program"),
    ],
)
def test_bad_values_are_refused_with_the_field_named_and_nothing_stored(
    app: Flask,
    clinician: FlaskClient,
    clinic: Clinic,
    sent: list[tuple[str, list[Any]]],
    values: dict[str, str] | str,
    field: str,
    message: str,
) -> None:
    a = patient_a(clinic)
    today = clinic_today()
    body = {
        "csrf_token": token_of(clinician),
        "leg_pain-level": "2",
        "leg_pain-effective_from": today.isoformat(),
    }
    if values == "future":
        body["leg_pain-effective_from"] = (today + dt.timedelta(days=1)).isoformat()
    elif values == "before_first_log":
        # The clinic's programs start 60 days ago; no log is older.
        body["leg_pain-effective_from"] = (today - dt.timedelta(days=61)).isoformat()
    else:
        assert isinstance(values, dict)
        body.update(values)
    response = clinician.post(pin_url(a), data=body)
    assert response.status_code == 422
    errors = {name: msg for name, msg in ERROR.findall(text(response))}
    assert list(errors) == [field], errors
    assert message in errors[field].replace("&#39;", "'")
    assert "Nothing was saved" in visible_text(response)
    # The form comes back with what was typed, ready to correct.
    assert form_data(text(response), pin_url(a))["leg_pain-effective_from"] in (
        body["leg_pain-effective_from"],
        "",
    )
    assert pins(app, a) == []
    assert a not in evaluated_ids(sent)
    assert [r[:3] for r in audit_rows(app, "baseline.pin")] == [("baseline.pin", "failed", a)]


def test_the_earliest_date_is_the_first_log_or_program(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    a = patient_a(clinic)
    first = clinic.program_start
    body = {"csrf_token": token_of(clinician), "leg_pain-level": "2"}
    body["leg_pain-effective_from"] = first.isoformat()
    assert clinician.post(pin_url(a), data=body).status_code == 302
    with app.app_context():
        add_logs(a, first - dt.timedelta(days=3), [2, 2])  # logs before the program
    body["leg_pain-effective_from"] = (first - dt.timedelta(days=3)).isoformat()
    assert clinician.post(pin_url(a), data=body).status_code == 302
    body["leg_pain-effective_from"] = (first - dt.timedelta(days=4)).isoformat()
    assert clinician.post(pin_url(a), data=body).status_code == 422


def test_off_the_care_team_is_404_audited_as_denied(app: Flask, clinic: Clinic) -> None:
    a = patient_a(clinic)
    today = clinic_today().isoformat()
    off = app.test_client()
    login(off, clinic.other_clinician.email)
    body = {"csrf_token": token_of(off), "leg_pain-level": "2", "leg_pain-effective_from": today}
    assert off.get(pin_url(a)).status_code == 404
    assert off.post(pin_url(a), data=body).status_code == 404
    # An invalid body is refused the same way: validation tells nothing about the patient.
    assert off.post(pin_url(a), data={**body, "leg_pain-level": "99"}).status_code == 404
    assert off.post(pin_url(a) + "/automatic", data=body).status_code == 404
    user = clinic.other_clinician.user_id
    assert audit_rows(app, "baseline.pin", "baseline.unpin") == [
        ("baseline.pin", "denied", a, user, "baseline:leg_pain"),
        ("baseline.pin", "denied", a, user, "baseline:leg_pain"),
        ("baseline.unpin", "denied", a, user, "baseline:leg_pain"),
    ]
    # A patient (even this one) may not pin: the clinic pages are not theirs.
    patient = app.test_client()
    login(patient, clinic.patient_a.email)
    body["csrf_token"] = token_of(patient)
    assert patient.post(pin_url(a), data=body).status_code == 404
    assert patient.post(pin_url(a) + "/automatic", data=body).status_code == 404
    assert pins(app, a) == []
    # An unknown metric is no route at all.
    on = app.test_client()
    login(on, clinic.clinician.email)
    assert on.post(pin_url(a, "adherence"), data={"csrf_token": token_of(on)}).status_code == 404


def test_the_detector_judges_against_the_pin(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    """Six steady weeks around 4/10: no alert against the automatic baseline. Pinned at 1 (the
    clinician knows the patient's usual is 1) from ten days ago, the same logs are a
    clinically important rise: the next evaluation opens a leg pain alert against 1/10.
    Back to automatic from today, the days the pin governed keep it: the replay still raises
    that alert, and nothing is stored or resolved (when un-pinning deleted the pin, the whole
    history was replayed as if it had never been pinned)."""
    a = patient_a(clinic)
    today = clinic_today()
    with app.app_context():
        add_logs(a, today - dt.timedelta(days=len(STEADY) - 1), STEADY)
        evaluation.evaluate_and_commit(db.session, [a], today)
        assert pain_alerts(a) == []

    body = {
        "csrf_token": token_of(clinician),
        "leg_pain-level": "1",
        "leg_pain-effective_from": (today - dt.timedelta(days=10)).isoformat(),
    }
    assert clinician.post(pin_url(a), data=body).status_code == 302
    with app.app_context():
        evaluation.evaluate_and_commit(db.session, [a], today)
        (alert,) = pain_alerts(a)
        raised = (alert.metric, alert.detected_on)
        assert alert.metric == "leg_pain"
        assert alert.baseline == 1.0
        assert "vs baseline 1/10" in alert.explanation
    # The page's chart and panel show the pinned level too.
    page = visible_text(clinician.get(page_url(a)))
    assert "Pinned by Cara Clinician" in page

    response = clinician.post(pin_url(a) + "/automatic", data={"csrf_token": token_of(clinician)})
    assert response.status_code == 302
    with app.app_context():
        episodes = evaluation.detect(db.session, [a], today, None)[a]
        assert [(e.metric, e.detected_on) for e in episodes if e.kind == "pain_regression"] == [
            raised
        ]
        result = evaluation.evaluate_and_commit(db.session, [a], today)
        assert (result.stored, result.resolved) == (0, 0)
        assert len(pain_alerts(a)) == 1


def pain_alerts(patient_id: int) -> list[Alert]:
    return list(
        db.session.scalars(
            sa.select(Alert).where(Alert.patient_id == patient_id, Alert.kind == "pain_regression")
        )
    )


def test_an_alert_the_new_pin_would_not_raise_is_resolved_saying_why(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    """Pinned at 1 from ten days ago, the steady 4/10 raises a leg pain alert. The clinician
    then pins 4 from twenty days ago (the patient's usual, she now knows): the logs as they
    stand raise nothing, so the next evaluation resolves the alert with a note saying so,
    audited — before, it stayed open for good, as nothing took its place."""
    a = patient_a(clinic)
    today = clinic_today()
    with app.app_context():
        add_logs(a, today - dt.timedelta(days=len(STEADY) - 1), STEADY)

    def pin(level: str, days_ago: int) -> None:
        body = {
            "csrf_token": token_of(clinician),
            "leg_pain-level": level,
            "leg_pain-effective_from": (today - dt.timedelta(days=days_ago)).isoformat(),
        }
        assert clinician.post(pin_url(a), data=body).status_code == 302

    pin("1", 10)
    with app.app_context():
        evaluation.evaluate_and_commit(db.session, [a], today)
        (alert,) = pain_alerts(a)
        assert alert.status is AlertStatus.OPEN
    pin("4", 20)
    with app.app_context():
        result = evaluation.evaluate_and_commit(db.session, [a], today)
        assert (result.stored, result.resolved) == (0, 1)
        (alert,) = pain_alerts(a)
        assert alert.status is AlertStatus.RESOLVED and alert.resolved_on == today
        assert alert.resolve_note == alerts.AUTO_NO_LONGER_SHOWN
        resolved_rows = db.session.scalars(
            sa.select(AuditEvent.id).where(
                AuditEvent.action == "alert.resolve", AuditEvent.target == f"alert:{alert.id}"
            )
        ).all()
        assert len(resolved_rows) == 1
        # Evaluated again: nothing more to do.
        again = evaluation.evaluate_and_commit(db.session, [a], today)
        assert (again.stored, again.resolved) == (0, 0)
    page = visible_text(clinician.get("/clinic/alerts/?show=all"))
    assert "no longer shown by the record as it now stands" in page


@pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)
def test_a_replaced_pin_counts_nowhere_and_is_retracted(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    """A pin replaced by one from an earlier date stays as a row, but detection (both of its
    reads), the charts, the caseload and the pages use only the current pins; the FHIR export
    retracts it. The periodic scan finds a patient whose pin was replaced."""
    a = patient_a(clinic)
    today = clinic_today()
    with app.app_context():
        add_logs(a, today - dt.timedelta(days=len(STEADY) - 1), STEADY)
    for level, days_ago in (("8", 5), ("1", 20)):  # the second replaces the first
        body = {
            "csrf_token": token_of(clinician),
            "leg_pain-level": level,
            "leg_pain-effective_from": (today - dt.timedelta(days=days_ago)).isoformat(),
        }
        assert clinician.post(pin_url(a), data=body).status_code == 302
    (replaced_id,) = [
        pin_id
        for pin_id, level in pin_rows(app, a, (PinnedBaseline.id, PinnedBaseline.level))
        if level == 8.0
    ]  # (the row stays)
    with app.app_context():
        series = evaluation.load_series(db.session, [a], None)[a]
        assert [(p.metric, p.level) for p in series.pinned_baselines] == [("leg_pain", 1.0)]
        charted = trajectory.pins_by_metric(db.session, [a])[a]["leg_pain"]
        assert [p.level for p in charted] == [1.0]
        caseload_pins = caseload._pins(db.session, [a])[(a, "leg_pain")]
        assert [p.level for p in caseload_pins] == [1.0]
        shown = baselines.baseline_statuses(db.session, a)["leg_pain"]
        assert [p.level for p in shown.pins] == [1.0]
        db.session.rollback()
    page = visible_text(clinician.get(pin_url(a)))
    assert "Pinned by Cara Clinician from" in page and "at 1/10" in page
    history = page.split("Baseline history (2)")[1]
    assert "pinned at 8/10 — Cara Clinician" in history and "replaced by Cara Clinician" in history

    bundle = json.loads(clinician.get(f"/clinic/patients/{a}/export.fhir.json").data)
    pinned = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"].get("code", {}).get("text") == "Pinned baseline: Leg pain"
    ]
    assert sorted((p["status"], p.get("valueQuantity", {}).get("value")) for p in pinned) == [
        ("entered-in-error", None),
        ("final", 1.0),
    ]
    (retracted,) = [p for p in pinned if p["status"] == "entered-in-error"]
    assert retracted["id"] == fhir.resource_id("PinnedBaseline", replaced_id)

    # Pinned from today and back to automatic the same day: the only trace is the
    # replacement, which the next scan finds (had the evaluation request been lost).
    with app.app_context():
        scan.patients_to_evaluate(db.session, today)  # the day's first: everyone
        evaluation.evaluate_and_commit(db.session, [a], today)
        db.session.execute(sa.update(Patient).values(evaluated_at=utcnow()))
        db.session.commit()
        assert scan.patients_to_evaluate(db.session, today) == []
    body = {"csrf_token": token_of(clinician), "back_pain-level": "5"}
    body["back_pain-effective_from"] = today.isoformat()
    assert clinician.post(pin_url(a, "back_pain"), data=body).status_code == 302
    with app.app_context():
        assert scan.patients_to_evaluate(db.session, today) == [a]  # (a new pin)
        db.session.execute(sa.update(Patient).values(evaluated_at=utcnow()))
        db.session.commit()
        assert scan.patients_to_evaluate(db.session, today) == []
    response = clinician.post(
        pin_url(a, "back_pain") + "/automatic", data={"csrf_token": token_of(clinician)}
    )
    assert response.status_code == 302
    with app.app_context():
        assert scan.patients_to_evaluate(db.session, today) == [a]
    # Its history holds the replaced pin only; both pages show it.
    for url in (page_url(a), pin_url(a, "back_pain")):
        response = clinician.get(url)
        assert response.status_code == 200, url
        _, back = visible_text(response).split("Baseline history (1)")
        assert "pinned at 5/10" in back.split("replaced by")[0]


def test_two_pins_at_once_leave_one_current(
    app: Flask, clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clinicians pin the same date at once: the second waits for the first (the
    patient's evaluation lock) and replaces it, so one pin is current and the other is in the
    history as replaced (without the lock both stayed current)."""
    a = patient_a(clinic)
    today = clinic_today()
    with app.app_context():
        add_logs(a, today - dt.timedelta(days=len(STEADY) - 1), STEADY)
        first, second = Session(db.engine), Session(db.engine)
        cara = [
            accounts.actor_for(s.get_one(User, clinic.clinician.user_id)) for s in (first, second)
        ]
        real_lock = evaluation.lock_patients

        def lock(session: Session, ids: Sequence[int]) -> None:
            if session is second:  # its page posted; the first commits meanwhile
                baselines.pin_baseline(
                    first, cara[0], a, PinInput(metric="leg_pain", level=2, effective_from=today)
                )
            real_lock(session, ids)

        monkeypatch.setattr(evaluation, "lock_patients", lock)
        try:
            baselines.pin_baseline(
                second, cara[1], a, PinInput(metric="leg_pain", level=5, effective_from=today)
            )
        finally:
            first.close()
            second.close()
    assert [level for _, level, *_ in pins(app, a)] == [5.0]
    assert [level for _, level, *_ in replaced(app, a)] == [2.0]
