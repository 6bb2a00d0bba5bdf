"""`rehab export fhir` and the FHIR downloads (design §1: an integrator pulls data as FHIR R4).

The demo clinic's export is valid FHIR (checked against `fhir.resources`' R4B models) and says
what the database says: the seed patient's pain, her fall's mechanism, the negative
neurodynamic tests after it and her ODI scores. Downloads are scoped and audited as the CSV's.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fhir.resources.R4B.bundle import Bundle
from flask import Flask

from rehab import fhir
from rehab.cli_export import export_group
from rehab.db.models import (
    Alert,
    AlertStatus,
    Event,
    ExerciseEntry,
    Finding,
    OutcomeMeasure,
    Patient,
    PinnedBaseline,
    Prescription,
    Program,
    SessionLog,
    User,
)
from rehab.demo.alerts import FALL_ALERT_NOTE
from rehab.demo.loader import SEED_PATIENT_EMAIL, load_demo
from rehab.domain.vocabulary import FindingKind
from rehab.extensions import db
from rehab.services import export
from tests.integration.test_export import export_rows, three_patients
from tests.support.actors import bearer
from tests.support.clinic import Clinic, login
from tests.support.history import add_logs

AS_OF = dt.date(2025, 12, 1)
FALL_DAY = dt.date(2025, 9, 14)
both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def audit_rows(app: Flask) -> list[tuple[int | None, str, int | None, str | None]]:
    return [(r.patient_id, r.outcome.value, r.user_id, r.target) for r in export_rows(app)]


def observations(bundle: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and any(c["code"] == code for c in e["resource"]["code"]["coding"])
    ]


def is_clinic_record(resource: dict[str, Any]) -> bool:
    """An alert or a pinned baseline: in a clinician's export, not in a patient's own."""
    return resource["resourceType"] == "DetectedIssue" or (
        resource["resourceType"] == "Observation"
        and resource["code"]["coding"][0]["code"].startswith("pinned-baseline-")
    )


def component(observation: dict[str, Any], code: str) -> Any:
    (value,) = [
        {k: v for k, v in c.items() if k.startswith("value")}
        for c in observation["component"]
        if c["code"]["coding"][0]["code"] == code
    ]
    return next(iter(value.values()))


@both_databases
def test_the_demo_clinic_exports_as_valid_fhir_that_says_what_the_database_says(
    app: Flask, tmp_path: Path
) -> None:
    with app.app_context():
        load_demo(db.session, as_of=AS_OF)
        db.session.commit()
        seed_id = db.session.scalar(
            sa.select(Patient.id)
            .join(User, User.id == Patient.user_id)
            .where(User.email == SEED_PATIENT_EMAIL)
        )
        pains = db.session.execute(
            sa.select(
                SessionLog.log_date, SessionLog.back_pain, SessionLog.leg_pain, SessionLog.leg_side
            )
            .where(SessionLog.patient_id == seed_id)
            .order_by(SessionLog.log_date)
        ).all()
        odi = list(
            db.session.scalars(
                sa.select(OutcomeMeasure.score)
                .where(OutcomeMeasure.patient_id == seed_id, OutcomeMeasure.instrument == "odi")
                .order_by(OutcomeMeasure.measured_on, OutcomeMeasure.id)
            )
        )
        counts = {
            "events": db.session.scalar(sa.select(sa.func.count(Event.id))),
            "findings": db.session.scalar(sa.select(sa.func.count(Finding.id))),
            "logs": db.session.scalar(sa.select(sa.func.count(SessionLog.id))),
            "programs": db.session.scalar(sa.select(sa.func.count(Program.id))),
            "prescriptions": db.session.scalar(sa.select(sa.func.count(Prescription.id))),
            "entries": db.session.scalar(sa.select(sa.func.count(ExerciseEntry.id))),
            "entries done": db.session.scalar(
                sa.select(sa.func.count(ExerciseEntry.id)).where(ExerciseEntry.done.is_(True))
            ),
        }
        seed_programs = db.session.execute(
            sa.select(Program.title, Program.start_date)
            .where(Program.patient_id == seed_id)
            .order_by(Program.start_date, Program.id)
        ).all()
        alerts = db.session.execute(
            sa.select(Alert.id, Alert.status, Alert.severity).order_by(Alert.id)
        ).all()
        fall_alert = db.session.execute(
            sa.select(Alert.id, Alert.onset, Alert.detected_on).where(
                Alert.patient_id == seed_id,
                Alert.kind == "pain_regression",
                Alert.metric == "leg_pain",
                Alert.detected_on.between(FALL_DAY, FALL_DAY + dt.timedelta(days=7)),
            )
        ).one()
        fall_tests = db.session.scalar(
            sa.select(sa.func.count(Finding.id)).where(
                Finding.patient_id == seed_id,
                Finding.kind == FindingKind.NEURODYNAMIC_TEST,
                Finding.finding_date > FALL_DAY,
            )
        )
        db.session.rollback()
    out = tmp_path / "clinic.ndjson"
    result = app.test_cli_runner().invoke(export_group, ["fhir", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 45 patient(s)" in result.output
    assert out.stat().st_mode & 0o777 == 0o600

    bundles = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(bundles) == 45
    for bundle in bundles:
        Bundle.model_validate(bundle)  # valid FHIR R4(B), every one
    everything = [e["resource"] for b in bundles for e in b["entry"]]
    assert (
        sum(o["code"]["coding"][0]["code"] == "daily-log" for o in everything[1:] if "code" in o)
        == counts["logs"]
    )
    events_out = [
        r for r in everything if "code" in r and r["code"]["coding"][0]["code"].startswith("event-")
    ]
    assert len(events_out) == counts["events"]
    exam = [
        r
        for r in everything
        if r["resourceType"] == "Observation"
        and r.get("category", [{}])[0].get("coding", [{}])[0].get("code") in {"exam", "imaging"}
    ]
    assert len(exam) == counts["findings"]
    plans = [r for r in everything if r["resourceType"] == "CarePlan"]
    assert len(plans) == counts["programs"] > 0
    assert sum(len(p.get("activity", [])) for p in plans) == counts["prescriptions"]
    # Every exercise logged, done or not, based on the care plan that prescribed it.
    exercises = [
        r
        for r in everything
        if "code" in r and r["code"]["coding"][0]["code"] == fhir.EXERCISE_DONE
    ]
    assert len(exercises) == counts["entries"] > 0
    assert sum(r["valueBoolean"] for r in exercises) == counts["entries done"]
    for bundle in bundles:  # each patient's exercises rest on her own care plans
        own = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
        for r in own.values():
            if "code" in r and r["code"]["coding"][0]["code"] == fhir.EXERCISE_DONE:
                plan = own[r["basedOn"][0]["reference"]]
                assert plan["resourceType"] == "CarePlan"
                assert plan["period"]["start"] <= r["effectiveDateTime"]

    (seed,) = [
        b for b in bundles if b["entry"][0]["resource"]["identifier"][0]["value"] == str(seed_id)
    ]
    back = observations(seed, fhir.PAIN_NRS["code"])
    assert [
        (o["effectiveDateTime"], o["valueInteger"]) for o in back if o["bodySite"]["text"] == "Back"
    ] == [(d.isoformat(), b) for d, b, _, _ in pains]
    leg = [o for o in back if o["bodySite"]["text"] != "Back"]
    sites = {"left": "Left leg", "right": "Right leg", "both": "Both legs", None: "Leg"}
    assert [(o["valueInteger"], o["bodySite"]["text"]) for o in leg] == [
        (lp, sites[side]) for _, _, lp, side in pains
    ]
    assert {o["bodySite"]["text"] for o in leg if o["valueInteger"] >= 3} == {"Left leg"}

    (fall,) = [
        o
        for o in observations(seed, "event-fall")
        if o["effectiveDateTime"] == FALL_DAY.isoformat()
    ]
    assert component(fall, "fall-steps") == 10
    assert component(fall, "fall-landed-on") == "Buttocks"
    assert component(fall, "fall-location") == "Stairs"
    assert fall["valueString"] == "Fall on stairs (10 steps, landed on buttocks)"

    after = [
        o
        for o in exam
        if o["subject"] == fall["subject"]
        and o["effectiveDateTime"] > FALL_DAY.isoformat()
        and "valueCodeableConcept" in o
    ]
    assert fall_tests and len(after) == fall_tests
    assert {o["valueCodeableConcept"]["text"] for o in after} == {"Negative"}
    assert {o["code"]["text"] for o in after} >= {"Straight leg raise", "Slump"}
    assert [o["valueQuantity"]["value"] for o in observations(seed, "odi")] == [
        round(s, 1) for s in odi
    ]
    # The clinic's alerts (the command line is the system: it exports them): every one.
    issues = {r["id"]: r for r in everything if r["resourceType"] == "DetectedIssue"}
    assert len(issues) == len(alerts) > 45
    for alert_id, status, severity in alerts:
        issue = issues[fhir.resource_id("Alert", alert_id)]
        assert issue["status"] == ("final" if status == "resolved" else "preliminary")
        assert issue["severity"] == {"urgent": "high", "routine": "moderate"}[severity]
    # Hers after the fall: her leg pain since its onset, the fall itself, and the phone call.
    seed_urls = {e["fullUrl"]: e["resource"] for e in seed["entry"]}
    after_fall = issues[fhir.resource_id("Alert", fall_alert.id)]
    assert f"urn:uuid:{after_fall['id']}" in seed_urls
    data, related = after_fall["evidence"]
    pain_after = [seed_urls[r["reference"]] for r in data["detail"]]
    assert [p["effectiveDateTime"] for p in pain_after] == [
        d.isoformat() for d, *_ in pains if fall_alert.onset <= d <= fall_alert.detected_on
    ]
    assert {p["bodySite"]["text"] for p in pain_after} == {"Left leg"}
    cited = [seed_urls[r["reference"]] for r in related["detail"]]
    assert fall in cited  # and her holiday abroad, also in the 14 days before
    assert all(
        (fall_alert.onset - dt.timedelta(days=14)).isoformat()
        <= event["effectiveDateTime"]
        <= fall_alert.detected_on.isoformat()
        and event["code"]["coding"][0]["code"].startswith("event-")
        for event in cited
    )
    (acknowledged,) = [
        m
        for m in after_fall["mitigation"]
        if m["action"]["coding"][0]["code"] == "alert-acknowledged"
    ]
    assert acknowledged["action"]["text"] == f"Acknowledged: {FALL_ALERT_NOTE}"
    assert acknowledged["author"]["display"]
    # Her programs, as care plans: the surgery's rehabilitation, then what followed.
    seed_plans = [
        e["resource"] for e in seed["entry"] if e["resource"]["resourceType"] == "CarePlan"
    ]
    assert [(p["title"], p["period"]["start"]) for p in seed_plans] == [
        (title, start.isoformat()) for title, start in seed_programs
    ]
    assert seed_plans[-1]["status"] == "active" and seed_plans[-1]["activity"]
    # Her logged exercises are named as the care plan that asked for them names them.
    activity_names = {
        f"urn:uuid:{p['id']}": {a["detail"]["code"]["text"] for a in p.get("activity", [])}
        for p in seed_plans
    }
    seed_exercises = observations(seed, fhir.EXERCISE_DONE)
    assert len(seed_exercises) > 300  # a year and more of daily sessions
    assert all(
        o["code"]["text"] in activity_names[o["basedOn"][0]["reference"]] for o in seed_exercises
    )

    # The command line is the system: one row per patient, the format named.
    audited = audit_rows(app)
    assert len(audited) == 45
    assert {(outcome, user, target) for _, outcome, user, target in audited} == {
        ("allowed", None, "format:fhir")
    }


def test_fhir_downloads_hold_only_the_callers_patients_and_are_audited(
    app: Flask, clinic: Clinic, tmp_path: Path
) -> None:
    a, b, c = three_patients(app, clinic, days=5)
    clinician_user = clinic.clinician.user_id
    with app.app_context():  # the clinic's working records of A: an alert and a pin
        start = clinic.program_start
        db.session.add_all(
            [
                Alert(
                    patient_id=a,
                    kind="pain_regression",
                    metric="leg_pain",
                    severity="routine",
                    onset=start + dt.timedelta(days=2),
                    detected_on=start + dt.timedelta(days=4),
                    explanation="Leg pain up.",
                    status=AlertStatus.ACKNOWLEDGED,
                    acknowledged_by_user_id=clinician_user,
                    acknowledged_at=dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC),
                    acknowledge_note="Phoned.",
                ),
                PinnedBaseline(
                    patient_id=a,
                    metric="leg_pain",
                    level=2.0,
                    spread=1.0,
                    effective_from=start,
                    pinned_by_user_id=clinician_user,
                ),
            ]
        )
        db.session.commit()
    api = app.test_client()

    def patient_of(bundle: dict[str, Any]) -> str:
        return str(bundle["entry"][0]["resource"]["identifier"][0]["value"])

    own = api.get(f"/api/v1/patients/{a}/export.fhir.json", headers=bearer(clinic, "patient_a"))
    assert own.status_code == 200
    assert own.mimetype == fhir.MEDIA_TYPE
    assert own.headers["Cache-Control"] == "no-store"
    assert own.headers["Content-Disposition"].startswith(
        f'attachment; filename="rehab-patient-{a}-'
    ) and own.headers["Content-Disposition"].endswith('.fhir.json"')
    bundle = json.loads(own.get_data(as_text=True))
    Bundle.model_validate(bundle)
    assert patient_of(bundle) == str(a)
    assert len(observations(bundle, "daily-log")) == 5
    assert len(observations(bundle, "event-fall")) == 1

    every = api.get("/api/v1/export.fhir.ndjson", headers=bearer(clinic, "clinician_on"))
    assert every.status_code == 200 and every.mimetype == fhir.NDJSON_MEDIA_TYPE
    lines = every.get_data(as_text=True).splitlines()
    assert sorted(patient_of(json.loads(line)) for line in lines) == sorted([str(a), str(b)])
    # The clinician's file has A's alert and pin; the patient's own file, of every patient
    # her key sees (herself), has neither.
    kept = [
        e for line in lines for e in json.loads(line)["entry"] if is_clinic_record(e["resource"])
    ]
    assert sorted(e["resource"]["resourceType"] for e in kept) == ["DetectedIssue", "Observation"]
    hers = api.get("/api/v1/export.fhir.ndjson", headers=bearer(clinic, "patient_a"))
    (her_line,) = hers.get_data(as_text=True).splitlines()
    assert patient_of(json.loads(her_line)) == str(a)
    assert not [e for e in json.loads(her_line)["entry"] if is_clinic_record(e["resource"])]
    assert api.get("/api/v1/export.fhir.ndjson", headers=bearer(clinic, "admin")).data == b""

    for who in ("patient_b", "admin"):
        other = api.get(f"/api/v1/patients/{a}/export.fhir.json", headers=bearer(clinic, who))
        assert other.status_code == 404, who
    refused = api.get(
        f"/api/v1/patients/{c}/export.fhir.json", headers=bearer(clinic, "clinician_on")
    )
    assert refused.status_code == 404 and refused.mimetype != fhir.MEDIA_TYPE

    pages = app.test_client()
    login(pages, clinic.clinician.email)
    assert (
        f'href="/clinic/patients/{a}/export.fhir.json"'.encode()
        in pages.get(f"/clinic/patients/{a}").data
    )
    from_page = json.loads(pages.get(f"/clinic/patients/{a}/export.fhir.json").data)
    Bundle.model_validate(from_page)
    # Her clinician's export holds the clinic's working records; hers does not.
    clinic_records = [e for e in from_page["entry"] if is_clinic_record(e["resource"])]
    assert [r["resource"]["resourceType"] for r in clinic_records] == [
        "Observation",
        "DetectedIssue",
    ]
    assert clinic_records[1]["resource"]["mitigation"][0]["action"]["text"] == (
        "Acknowledged: Phoned."
    )
    assert not [e for e in bundle["entry"] if is_clinic_record(e["resource"])]
    assert [e["fullUrl"] for e in from_page["entry"] if e not in clinic_records] == [
        e["fullUrl"] for e in bundle["entry"]
    ]
    assert pages.get(f"/clinic/patients/{c}/export.fhir.json").status_code == 404
    patient = app.test_client()
    login(patient, clinic.patient_a.email)
    assert b'href="/me/export.fhir.json"' in patient.get("/me/account").data
    mine = json.loads(patient.get("/me/export.fhir.json").data)
    assert [e["resource"] for e in mine["entry"]] == [e["resource"] for e in bundle["entry"]]

    audited = audit_rows(app)
    assert {t for *_, t in audited} == {"format:fhir"}
    clinician = clinic.clinician.user_id
    assert (a, "allowed", clinic.patient_a.user_id, "format:fhir") in audited
    assert (b, "allowed", clinician, "format:fhir") in audited
    assert (c, "denied", clinician, "format:fhir") in audited
    assert (a, "denied", clinic.patient_b.user_id, "format:fhir") in audited
    assert not [r for r in audited if r[0] == c and r[1] == "allowed"]

    # The command line refuses an unknown patient as it does for the CSV: exit 2, on record.
    out = tmp_path / "x.ndjson"
    result = app.test_cli_runner().invoke(
        export_group, ["fhir", "--patient", str(a), "--patient", "987654", "-o", str(out)]
    )
    assert result.exit_code == 2 and "error: --patient: no patient 987654" in result.output
    assert not out.exists()
    assert audit_rows(app)[-1] == (987654, "denied", None, "format:fhir")


def test_a_caseload_is_exported_in_batches(app: Flask, clinic: Clinic) -> None:
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    assert a is not None and b is not None
    with app.app_context():
        add_logs(a, clinic.program_start, [1, 2, 3])
        add_logs(b, clinic.program_start, [4, 3])
        db.session.commit()
        parts = list(
            export.fhir_parts(db.session, [a, b], AS_OF, batch_size=1, clinic_records=True)
        )
        db.session.rollback()
    lines = [json.loads(p) for p in parts if p != "\n"]
    assert [len(observations(x, "daily-log")) for x in lines] == [3, 2]
    assert [x["entry"][0]["resource"]["identifier"][0]["value"] for x in lines] == [str(a), str(b)]
    assert {e["resource"]["resourceType"] for x in lines for e in x["entry"]} == {
        "Patient",
        "Observation",
        "CarePlan",  # their programs
    }
