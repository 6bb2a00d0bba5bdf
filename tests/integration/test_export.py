"""`rehab export csv` and the CSV downloads (design §1: an integrator pulls data as CSV).

The file is the `rehab detect` input, written from the series the worker's detector reads:
`rehab detect` on the demo clinic's export finds what the worker finds in its database. The
downloads are scoped (a patient herself, a clinician her care teams) and audited, one row per
patient, before any row leaves.
"""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask

from rehab import create_app
from rehab.cli import main as rehab_cli
from rehab.cli_detect import detect_command
from rehab.cli_export import export_group
from rehab.db.models import ApiToken, AuditEvent
from rehab.db.models import PinnedBaseline as PinnedBaselineRow
from rehab.demo.loader import load_demo
from rehab.detect_io import CSV_COLUMNS, alerts_in_output_order, json_lines
from rehab.extensions import db
from rehab.services import evaluation, export
from tests.conftest import app_settings, dispose_engines
from tests.support.actors import bearer
from tests.support.clinic import Clinic, login
from tests.support.history import add_fall, add_logs
from tests.support.pages import get_form, visible_text

AS_OF = dt.date(2025, 12, 1)
both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
# Not replayed from the file: ODI/PSFS scores and program dates are not in it (the module's
# docstring); every other kind must come out the same.
NOT_IN_THE_FILE = {"function_decline", "missed_logs"}


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def export_rows(app: Flask, action: str = export.EXPORT_ACTION) -> list[AuditEvent]:
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


@both_databases
def test_rehab_detect_on_the_demo_export_finds_what_the_worker_finds(
    app: Flask, tmp_path: Path
) -> None:
    with app.app_context():
        load_demo(db.session, as_of=AS_OF)
        db.session.commit()
    out = tmp_path / "clinic.csv"
    # Through the `rehab` command itself, which names who ran it in the audit rows.
    result = app.test_cli_runner().invoke(rehab_cli, ["export", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 45 patient(s)" in result.output

    rows = rows_of(out.read_text(encoding="utf-8"))
    assert list(rows[0]) == list(CSV_COLUMNS)
    last_day = max(dt.date.fromisoformat(r["date"]) for r in rows)
    detected = CliRunner().invoke(detect_command, [str(out)])
    assert detected.exit_code == 0, detected.output
    from_file = [json.loads(line) for line in detected.output.splitlines()]

    with app.app_context():
        ids = sorted(int(pid) for pid in {r["patient_id"] for r in rows})
        pinned = set(db.session.scalars(sa.select(PinnedBaselineRow.patient_id)))
        by_worker = evaluation.detect(db.session, ids, last_day, since=None)
        db.session.rollback()
    worker = [
        json.loads(line)
        for line in json_lines(alerts_in_output_order({str(p): e for p, e in by_worker.items()}))
    ]

    def comparable(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            a
            for a in alerts
            if a["kind"] not in NOT_IN_THE_FILE and int(a["patient_id"]) not in pinned
        ]

    # Whole alerts, explanations included: the same logs, red flags and events (with a
    # fall's side and mechanism) went into both.
    assert comparable(from_file) == comparable(worker)
    kinds = {a["kind"] for a in comparable(worker)}
    assert {"pain_regression", "red_flag", "adherence_drop"} <= kinds, kinds
    assert len(comparable(worker)) >= 30
    fall_linked = [
        a
        for a in comparable(from_file)
        if a["detected_on"] == "2025-09-15" and a["metric"] == "leg_pain"
    ]
    assert (
        fall_linked
        and "on stairs (10 steps, landed on buttocks)" in (fall_linked[0]["explanation"])
    )
    # The CLI is the system: one audit row per patient, no user, but the OS user who ran it.
    audited = export_rows(app)
    assert sorted(r.patient_id for r in audited if r.patient_id is not None) == ids
    assert {(r.role, r.user_id, r.outcome.value) for r in audited} == {("system", None, "allowed")}
    assert {r.request_id for r in audited} == {f"cli:{getpass.getuser()}:{os.getpid()}"}


def test_cli_refuses_an_unknown_patient_and_an_unmigrated_database(
    app: Flask, clinic: Clinic, tmp_path: Path
) -> None:
    runner = app.test_cli_runner()
    out = tmp_path / "one.csv"
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        add_logs(a, clinic.program_start, [3, 4])
    result = runner.invoke(
        export_group, ["csv", "--patient", str(a), "--patient", "987654", "-o", str(out)]
    )
    assert result.exit_code == 2
    assert "error: --patient: no patient 987654" in result.output
    assert "Traceback" not in result.output
    assert not out.exists() and list(tmp_path.glob("*.part")) == []
    # The refusal is on record; the patient checked before it was not exported.
    assert [(r.patient_id, r.outcome.value) for r in export_rows(app)] == [(987654, "denied")]

    result = runner.invoke(
        export_group, ["csv", "--patient", str(a), "-o", str(tmp_path / "no-such-dir" / "x.csv")]
    )
    assert result.exit_code == 2 and "error: --output: cannot write" in result.output
    assert "Traceback" not in result.output
    assert [r.outcome.value for r in export_rows(app)] == ["denied"]  # nothing exported

    result = runner.invoke(export_group, ["csv", "--patient", str(a), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600  # health data: its owner only
    assert [(r["patient_id"], r["leg_pain"]) for r in rows_of(out.read_text(encoding="utf-8"))] == [
        (str(a), "3"),
        (str(a), "4"),
    ]

    bare = create_app(app_settings(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path / "other"))
    try:
        result = bare.test_cli_runner().invoke(export_group, ["csv"])
        assert result.exit_code == 2
        assert "rehab db upgrade" in result.output
        assert "Traceback" not in result.output
    finally:
        dispose_engines(bare)


def three_patients(app: Flask, clinic: Clinic, days: int) -> tuple[int, int, int]:
    """A, B (the clinician's care team) and C (another team), each with `days` logs of leg
    pain 2 from the program's start; A's fall on stairs in the middle."""
    a, b, c = (p.patient_id for p in (clinic.patient_a, clinic.patient_b, clinic.patient_c))
    assert a is not None and b is not None and c is not None
    with app.app_context():
        for pid in (a, b, c):
            add_logs(pid, clinic.program_start, [2] * days)
        add_fall(a, clinic.patient_a.user_id, clinic.program_start + dt.timedelta(days=days // 2))
        db.session.commit()
    return a, b, c


def test_downloads_hold_only_the_callers_patients_and_are_audited(
    app: Flask, clinic: Clinic
) -> None:
    a, b, c = three_patients(app, clinic, days=20)
    api = app.test_client()

    response = api.get(f"/api/v1/patients/{a}/export.csv", headers=bearer(clinic, "patient_a"))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "no-store"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith(f'attachment; filename="rehab-patient-{a}-')
    own = rows_of(response.get_data(as_text=True))
    assert {r["patient_id"] for r in own} == {str(a)}
    assert [r["leg_pain"] for r in own if not r["event"]] == ["2"] * 20
    assert [r["event"] for r in own if r["event"]] == ["fall"]

    # The file of every patient a key may see: a clinician's care team (A and B), not C; a
    # patient's own key, herself; an admin's, nobody.
    response = api.get("/api/v1/export.csv", headers=bearer(clinic, "clinician_on"))
    assert response.status_code == 200
    assert {r["patient_id"] for r in rows_of(response.get_data(as_text=True))} == {str(a), str(b)}
    mine = api.get("/api/v1/export.csv", headers=bearer(clinic, "patient_b"))
    assert {r["patient_id"] for r in rows_of(mine.get_data(as_text=True))} == {str(b)}
    nobody = api.get("/api/v1/export.csv", headers=bearer(clinic, "admin"))
    assert rows_of(nobody.get_data(as_text=True)) == []

    # Another patient and an admin get the 404 of a record that does not exist.
    for who in ("patient_b", "admin"):
        other = api.get(f"/api/v1/patients/{a}/export.csv", headers=bearer(clinic, who))
        assert other.status_code == 404, who
    refused = api.get(f"/api/v1/patients/{c}/export.csv", headers=bearer(clinic, "clinician_on"))
    assert refused.status_code == 404
    assert "text/csv" not in refused.content_type

    # Pages: the clinician's download from the patient record, the patient's from her account.
    pages = app.test_client()
    login(pages, clinic.clinician.email)
    record = pages.get(f"/clinic/patients/{a}")
    assert f'href="/clinic/patients/{a}/export.csv"'.encode() in record.data
    page_file = pages.get(f"/clinic/patients/{a}/export.csv")
    assert page_file.status_code == 200
    assert page_file.get_data(as_text=True) == response_text(api, a, clinic)
    assert pages.get(f"/clinic/patients/{c}/export.csv").status_code == 404
    patient = app.test_client()
    login(patient, clinic.patient_a.email)
    assert b'href="/me/export.csv"' in patient.get("/me/account").data
    assert patient.get("/me/export.csv").get_data(as_text=True) == response_text(api, a, clinic)

    audited = [(r.patient_id, r.outcome.value, r.user_id) for r in export_rows(app)]
    clinician, other = clinic.clinician.user_id, clinic.patient_a.user_id
    assert (a, "allowed", other) in audited  # the patient's own download
    assert (a, "allowed", clinician) in audited and (b, "allowed", clinician) in audited
    assert (None, "allowed", clinic.admin.user_id) in audited  # the admin's empty file
    assert (c, "denied", clinician) in audited
    assert (a, "denied", clinic.patient_b.user_id) in audited
    assert (a, "denied", clinic.admin.user_id) in audited
    assert not [row for row in audited if row[0] == c and row[1] == "allowed"]


def response_text(api: Any, patient_id: int, clinic: Clinic) -> str:
    response = api.get(
        f"/api/v1/patients/{patient_id}/export.csv", headers=bearer(clinic, "clinician_on")
    )
    text: str = response.get_data(as_text=True)
    return text


def test_a_caseload_is_written_in_batches(app: Flask, clinic: Clinic) -> None:
    """Each batch of patients is read and written on its own (memory bounded by a batch)."""
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    assert a is not None and b is not None
    with app.app_context():
        add_logs(a, clinic.program_start, [1, 2, 3])
        add_logs(b, clinic.program_start, [4, 3, 2, 1])
        db.session.commit()
        parts = list(export.csv_parts(db.session, [a, b], batch_size=1))
        db.session.rollback()
    assert parts[0] == ",".join(CSV_COLUMNS) + "\r\n"
    assert [{r["patient_id"] for r in rows_of(parts[0] + part)} for part in parts[1:]] == [
        {str(a)},
        {str(b)},
    ]
    assert [len(rows_of(parts[0] + part)) for part in parts[1:]] == [3, 4]


def test_a_clinicians_api_key_reads_her_care_teams_patients_until_revoked(
    app: Flask, clinic: Clinic
) -> None:
    """The integrator's way in: a clinician creates a key on her settings page (shown once),
    and a program holding it reads what she may read, audited under her name."""
    a, c = clinic.patient_a.patient_id, clinic.patient_c.patient_id
    assert a is not None and c is not None
    with app.app_context():
        add_logs(a, clinic.program_start, [2, 3])
    pages = app.test_client()
    login(pages, clinic.clinician.email)
    assert b"/settings/api-keys" in pages.get("/settings/notifications").data
    form = get_form(pages, "/settings/api-keys", "/settings/api-keys")
    created = pages.post("/settings/api-keys", data={**form, "device_name": "Records system"})
    assert created.status_code == 200
    match = re.search(r'id="new-token"[^>]*value="([^"]+)"', created.get_data(as_text=True))
    assert match is not None
    key = match.group(1)
    assert key not in pages.get("/settings/api-keys").get_data(as_text=True)  # shown once

    api = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    me = api.get("/api/v1/me", headers=headers).get_json()
    assert me["role"] == "clinician" and me["patient_id"] is None
    exported = api.get(f"/api/v1/patients/{a}/export.csv", headers=headers)
    assert exported.status_code == 200
    assert [r["leg_pain"] for r in rows_of(exported.get_data(as_text=True))] == ["2", "3"]
    assert api.get(f"/api/v1/patients/{c}/export.csv", headers=headers).status_code == 404
    # A patient's daily log is hers alone to send.
    assert api.post(f"/api/v1/patients/{a}/logs", json={}, headers=headers).status_code == 404
    assert (a, "allowed", clinic.clinician.user_id) in [
        (r.patient_id, r.outcome.value, r.user_id) for r in export_rows(app)
    ]
    assert [r.user_id for r in export_rows(app, "api_token.create")] == [clinic.clinician.user_id]

    # Patients and admins have no such page; another clinician cannot revoke her key.
    with app.app_context():
        key_id = db.session.scalar(sa.select(ApiToken.id).where(ApiToken.name == "Records system"))
    revoke = f"/settings/api-keys/{key_id}/revoke"
    for person in (clinic.patient_a, clinic.admin, clinic.other_clinician):
        other = app.test_client()
        login(other, person.email)
        if person is clinic.other_clinician:
            other_form = get_form(other, "/settings/api-keys", "/settings/api-keys")
            assert other.post(revoke, data=other_form).status_code == 404
        else:
            assert other.get("/settings/api-keys").status_code == 404, person.email
    assert api.get("/api/v1/me", headers=headers).status_code == 200

    revoke_form = get_form(pages, "/settings/api-keys", revoke)
    assert pages.post(revoke, data=revoke_form).status_code == 303
    assert api.get(f"/api/v1/patients/{a}/export.csv", headers=headers).status_code == 401
    assert "revoked" in visible_text(pages.get("/settings/api-keys"))
