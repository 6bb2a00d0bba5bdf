"""The clinician's dashboard and the charts' pages: caseload triage (attention order, trend
lines, RTM days, phase, filters, constant queries), the patient's trajectory page (embedded
figures with the fall marker, the alert panel acting in place, timeline, adherence by
exercise), the patient's progress page, the printable summary (HTML, PNG, PDF) and the chart
assets (served from the installed plotly package, cached, under the page's CSP)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab import create_app
from rehab.charts import assets
from rehab.db.models import Alert, AlertStatus, AuditEvent, OutcomeMeasure, Program, ProgramPhase
from rehab.domain.vocabulary import Instrument
from rehab.extensions import db
from rehab.services import evaluation
from rehab.services.caseload import CaseloadRow, sort_rows
from rehab.services.time import clinic_today
from rehab.web import CONTENT_SECURITY_POLICY
from tests.conftest import app_settings, dispose_engines
from tests.support.clinic import Clinic, build_clinic, csrf_token, login, search_caseload
from tests.support.history import add_fall, add_logs
from tests.support.pages import text, visible_text
from tests.support.queries import counting_queries

QUIET = [1, 0, 1, 1, 2, 1, 0, 1, 1, 1] * 4 + [1, 1, 0, 1, 1]


@pytest.fixture
def clinician(client: FlaskClient, clinic: Clinic) -> FlaskClient:
    login(client, clinic.clinician.email)
    return client


def fall_history(app: Flask, clinic: Clinic, who: str = "patient_a") -> tuple[int, dt.date]:
    """Leg pain ~1 for 45 days, a fall on stairs, 7/10 since (the last log yesterday); the
    detector has run, so the leg-pain alert is open."""
    person = getattr(clinic, who)
    a = person.patient_id
    assert a is not None
    today = clinic_today()
    start = today - dt.timedelta(days=51)
    with app.app_context():
        add_logs(a, start, [*QUIET, 7, 6, 7, 7, 7, 6])
        fall_day = start + dt.timedelta(days=len(QUIET) - 1)
        add_fall(a, person.user_id, fall_day)
        evaluation.evaluate_and_commit(db.session, [a], today)
    return a, fall_day


def quiet_history(app: Flask, clinic: Clinic, who: str = "patient_b") -> int:
    """Settled, logging daily for 51 days."""
    b = getattr(clinic, who).patient_id
    assert b is not None
    with app.app_context():
        add_logs(b, clinic_today() - dt.timedelta(days=50), [*QUIET, 1, 1, 0, 1, 1, 1])
    return b


def leg_alert(app: Flask, patient_id: int) -> Alert:
    with app.app_context():
        alert = db.session.scalars(
            sa.select(Alert).where(
                Alert.patient_id == patient_id,
                Alert.kind == "pain_regression",
                Alert.metric == "leg_pain",
            )
        ).one()
        db.session.expunge(alert)
    return alert


def figure(html: str, element_id: str) -> dict[str, Any]:
    match = re.search(
        rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S
    )
    assert match, f"no embedded figure {element_id}"
    spec: dict[str, Any] = json.loads(match.group(1))
    return spec


# --- caseload -----------------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_caseload_puts_the_open_alert_first_with_trend_rtm_and_phase(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    b, _ = fall_history(app, clinic, "patient_b")
    quiet_history(app, clinic, "patient_a")
    with app.app_context():
        program = db.session.scalars(sa.select(Program).where(Program.patient_id == b)).one()
        db.session.add(ProgramPhase(program=program, name="Load", start_date=clinic_today()))
        db.session.commit()
    page = clinician.get("/clinic/")
    assert page.status_code == 200
    body = visible_text(page)
    # Bob has an open alert: before Alice, though Alice comes first by name.
    assert body.index("Bob Patient") < body.index("Alice Patient")
    assert "sorted by needs attention" in body
    assert "1 routine" in body and "Phase: Load" in body
    html = text(page)
    row = html[html.index("Bob Patient") : html.index("Alice Patient")]
    assert 'class="spark"' in row and 'class="spark-leg" d="M' in row
    assert "Last 30 days: leg pain from 1 to 6" in row
    assert "▲ +" in row  # a clinically important rise against baseline
    # RTM periods run in 30 days from the first program's start (60 days ago): the third one
    # began today, and today has no log yet.
    assert "0 / 16" in row and "29 days left" in row
    by_name = visible_text(clinician.get("/clinic/?sort=name"))
    assert by_name.index("Alice Patient") < by_name.index("Bob Patient")


def test_caseload_filters_and_search(app: Flask, clinician: FlaskClient, clinic: Clinic) -> None:
    fall_history(app, clinic)
    quiet_history(app, clinic)
    alerts = visible_text(clinician.get("/clinic/?show=alerts"))
    assert "Alice Patient" in alerts and "Bob Patient" not in alerts
    assert "(open alerts)" in alerts
    assert "No patient in this view." in visible_text(clinician.get("/clinic/?show=urgent"))
    silent = visible_text(clinician.get("/clinic/?show=silent"))
    assert "No patient in this view." in silent
    search_caseload(clinician, "bob")
    search = visible_text(clinician.get("/clinic/?show=all"))
    assert "Bob Patient" in search and "Alice Patient" not in search
    assert clinician.get("/clinic/?show=nonsense&sort=nonsense").status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_discharged_patient_goes_after_the_others_and_out_of_the_silent_view(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    """Alice stopped logging 11 days ago; Bob logs daily. Alice is first by silence and in the
    silent and RTM views. Once her program has ended she comes after Bob, labelled with the
    end, and leaves both views: she is no longer asked to log."""
    a = clinic.patient_a.patient_id
    assert a is not None
    today = clinic_today()
    quiet_history(app, clinic, "patient_b")
    with app.app_context():
        add_logs(a, today - dt.timedelta(days=40), [1] * 30)

    def order(query: str) -> list[str]:
        body = visible_text(clinician.get(f"/clinic/?{query}"))
        names = ("Alice Patient", "Bob Patient")
        return sorted((n for n in names if n in body), key=body.index)

    assert order("sort=last_log") == ["Alice Patient", "Bob Patient"]
    assert order("show=silent") == ["Alice Patient"]
    assert set(order("show=rtm")) == {"Alice Patient", "Bob Patient"}
    ended = today - dt.timedelta(days=5)
    with app.app_context():
        program = db.session.scalars(sa.select(Program).where(Program.patient_id == a)).one()
        program.end_date = ended
        db.session.commit()

    assert order("sort=last_log") == ["Bob Patient", "Alice Patient"]
    assert order("show=silent") == []
    assert order("show=rtm") == ["Bob Patient"]
    assert f"ended {ended.isoformat()}" in visible_text(clinician.get("/clinic/"))


def test_attention_order_puts_the_discharged_after_the_others_unless_an_alert_is_open() -> None:
    def row(name: str, **fields: Any) -> CaseloadRow:
        defaults: dict[str, Any] = {
            "condition_summary": "",
            "last_log_date": None,
            "days_since_log": 1,
            "back_pain": None,
            "leg_pain": None,
            "leg_side": None,
            "adherence_7d": None,
            "program_title": None,
        }
        return CaseloadRow(patient_id=len(name), name=name, **{**defaults, **fields})

    today = clinic_today()
    rising_but_discharged = row("Ann", worst_change=4.0, program_ended_on=today)
    settled = row("Bea", worst_change=0.5, program_title="Core")
    alerted_and_discharged = row("Cy", open_routine=1, program_ended_on=today)
    ranked = sort_rows([rising_but_discharged, settled, alerted_and_discharged], "attention")
    assert [r.name for r in ranked] == ["Cy", "Bea", "Ann"]


def test_caseload_pages_audit_only_the_patients_shown(
    app: Flask, clinician: FlaskClient, clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rehab.services import caseload as caseload_service

    fall_history(app, clinic, "patient_b")
    monkeypatch.setattr(caseload_service, "PAGE_SIZE", 1)
    first = visible_text(clinician.get("/clinic/"))
    assert "Bob Patient" in first and "Alice Patient" not in first
    assert "Page 1 of 2" in first and "2 patients" in first
    second = visible_text(clinician.get("/clinic/?page=2"))
    assert "Alice Patient" in second and "Bob Patient" not in second
    everyone = visible_text(clinician.get("/clinic/?per_page=all"))
    assert "Alice Patient" in everyone and "Bob Patient" in everyone
    with app.app_context():
        listed = db.session.scalars(
            sa.select(AuditEvent.patient_id)
            .where(AuditEvent.action == "caseload.read")
            .order_by(AuditEvent.id)
        ).all()
    b, a = clinic.patient_b.patient_id, clinic.patient_a.patient_id
    assert listed == [b, a, b, a]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_caseload_queries_stay_constant(app: Flask, clinician: FlaskClient, clinic: Clinic) -> None:
    clinician.get("/clinic/")
    with counting_queries(app) as small:
        assert clinician.get("/clinic/").status_code == 200
    fall_history(app, clinic)
    quiet_history(app, clinic)
    with counting_queries(app) as large:
        assert clinician.get("/clinic/").status_code == 200
    # 10: the clinic's policy (the ODI/PSFS interval an admin may change) is one of them.
    assert len(large) == len(small) <= 10


# --- the patient's trajectory page --------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_patient_page_embeds_the_chart_with_the_fall_and_the_alert(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    a, fall_day = fall_history(app, clinic)
    page = clinician.get(f"/clinic/patients/{a}")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    html = text(page)
    assert 'id="chart-trajectory"' in html and 'data-figure="fig-trajectory"' in html
    assert f"/assets/plotly-{assets.VERSION}.min.js" in html
    assert 'id="plotly.js-style-global" class="no-inline-styles"' in html
    assert "<script>" not in html and " style=" not in html  # nothing inline for the CSP

    main = figure(html, "fig-trajectory")
    shapes = main["layout"]["shapes"]
    assert {"name": "marker:fall", "x0": fall_day.isoformat()}.items() <= next(
        s for s in shapes if s["name"] == "marker:fall"
    ).items()
    strip = next(t for t in main["data"] if t["name"] == "Events and findings")
    assert strip["text"] == ["Fall"] and strip["x"] == [fall_day.isoformat()]
    span = next(s for s in shapes if s["name"] == "alert:pain_regression:leg_pain")
    assert span["label"]["text"] == "Leg pain up · routine · open"
    band = next(
        t for t in main["data"] if t["name"] == "Leg pain: baseline ± clinically important change"
    )
    alert = leg_alert(app, a)
    assert alert.baseline is not None
    assert band["y"][-1] == pytest.approx(min(10, alert.baseline + 2), abs=0.05)
    assert main["config"]["displayModeBar"] is False
    change = figure(html, "fig-change")
    assert change["data"][-1]["name"] == "Back pain: change from baseline"

    body = visible_text(page)
    assert "Trajectory against baseline" in body and "In words" in body
    assert "a clinically important rise" in body
    assert "30 d" in body and "90 d" in body and "1 y" in body and "All" in body
    assert "Events and findings" in body and "slipped on marble stairs" in body
    assert "Program and adherence by exercise" in body
    with app.app_context():
        reads = db.session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.patient_id == a)
        ).all()
    assert reads.count("patient.read") == 1


def test_alert_is_acknowledged_from_the_patient_page(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    a, _ = fall_history(app, clinic)
    alert = leg_alert(app, a)
    here = f"/clinic/patients/{a}"
    html = text(clinician.get(here))
    assert f'action="/clinic/alerts/{alert.id}/acknowledge"' in html
    assert f'name="next" value="{here}"' in html
    token = csrf_token(clinician, here)
    response = clinician.post(
        f"/clinic/alerts/{alert.id}/acknowledge",
        data={"csrf_token": token, "note": "Phoned; assessment booked.", "next": here},
    )
    assert response.status_code == 303 and response.headers["Location"].endswith(here)
    assert leg_alert(app, a).status is AlertStatus.ACKNOWLEDGED
    after = clinician.get(here)
    assert "Alert acknowledged." in visible_text(after)
    main = figure(text(after), "fig-trajectory")
    span = next(s for s in main["layout"]["shapes"] if s["name"].endswith(":leg_pain"))
    assert span["label"]["text"] == "Leg pain up · routine · acknowledged"
    assert span["line"]["dash"] == "dash"


def test_patient_page_queries_do_not_grow_with_the_history(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    with app.app_context():
        add_logs(a, clinic_today() - dt.timedelta(days=9), [1] * 10)  # type: ignore[arg-type]
    clinician.get(f"/clinic/patients/{a}")
    with counting_queries(app) as small:
        clinician.get(f"/clinic/patients/{a}")
    with app.app_context():
        add_logs(a, clinic_today() - dt.timedelta(days=400), [2] * 390)  # type: ignore[arg-type]
    with counting_queries(app) as large:
        page = clinician.get(f"/clinic/patients/{a}")
    assert page.status_code == 200
    assert len(large) == len(small)
    main = figure(text(page), "fig-trajectory")
    assert len(main["data"][0]["y"]) == 401


def test_off_team_clinician_gets_404_on_every_chart_page(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    other = app.test_client()
    login(other, clinic.other_clinician.email)
    for path in (f"/clinic/patients/{a}", f"/clinic/patients/{a}/summary"):
        assert other.get(path).status_code == 404
    patient = app.test_client()
    login(patient, clinic.patient_a.email)
    assert patient.get(f"/clinic/patients/{a}/summary").status_code == 404


# --- the patient's progress page -----------------------------------------------------------------


def test_progress_page_shows_streak_adherence_and_the_start(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    a = clinic.patient_a.patient_id
    today = clinic_today()
    with app.app_context():
        # A bad first week, then better; a day missed 4 days ago; nothing yet today.
        days = [5, 6, 5, 6, 5, 6, 5] + [2] * 14
        add_logs(a, today - dt.timedelta(days=len(days)), days)  # type: ignore[arg-type]
        from rehab.db.models import SessionLog

        db.session.execute(
            sa.delete(SessionLog).where(
                SessionLog.patient_id == a, SessionLog.log_date == today - dt.timedelta(days=4)
            )
        )
        db.session.commit()
    login(client, clinic.patient_a.email)
    page = client.get("/me/progress")
    assert page.status_code == 200
    body = visible_text(page)
    assert "3 days in a row" in body and "Log today to keep it going" in body
    assert "20 of the last 30 days logged" in body
    assert "Leg pain when you started 5.4 , this week 2 out of 10 ↓ lower" in body
    spec = figure(text(page), "fig-progress")
    leg = next(t for t in spec["data"] if t["name"] == "Leg pain")
    assert leg["y"][-1] == 2 and spec["config"]["displayModeBar"] is False
    assert "of your exercises done this week" in body
    with app.app_context():
        actions = db.session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.patient_id == a)
        ).all()
    assert "progress.read" in actions
    clinician = app.test_client()
    login(clinician, clinic.clinician.email)
    assert clinician.get("/me/progress").status_code == 404


def test_progress_page_before_the_first_log(client: FlaskClient, clinic: Clinic) -> None:
    login(client, clinic.patient_b.email)
    body = visible_text(client.get("/me/progress"))
    assert "Your progress starts with your first log" in body


# --- the printable summary -----------------------------------------------------------------------


def test_summary_page_has_history_events_findings_and_open_alerts(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    a, fall_day = fall_history(app, clinic)
    with app.app_context():
        alert_id = db.session.scalar(
            sa.select(Alert.id).where(Alert.patient_id == a, Alert.kind == "pain_regression")
        )
    response = clinician.post(
        f"/clinic/alerts/{alert_id}/acknowledge",
        data={
            "csrf_token": csrf_token(clinician, "/clinic/alerts/"),
            "note": "Phoned her; assessment booked.",
        },
    )
    assert response.status_code == 303
    page = clinician.get(f"/clinic/patients/{a}/summary")
    assert page.status_code == 200
    body = visible_text(page)
    assert "Clinical summary for referral" in body and "Alice Patient" in body
    assert "Alerts not yet resolved" in body and "Routine — Pain regression: leg pain" in body
    # Who acknowledged it and when (design §2: who/when for each step), with the note.
    assert re.search(
        r"Acknowledged by Cara Clinician on \d{4}-\d\d-\d\d \d\d:\d\d \S+ — Phoned her; "
        r"assessment booked\.",
        body,
    ), body
    assert f"{fall_day.isoformat()} Fall (left)" in body and "10 steps" in body
    assert "Download PDF" in body
    html = text(page)
    assert f'src="/clinic/patients/{a}/summary/chart.png"' in html
    assert "summary.css" in html
    with app.app_context():
        actions = db.session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.patient_id == a)
        ).all()
    assert "patient.summary" in actions


@pytest.mark.slow
def test_summary_pdf_is_a_real_pdf_with_the_chart_image(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    assert shutil.which("chromium"), "Debian chromium is not installed (run .ci/system-deps)"
    a, _ = fall_history(app, clinic)
    png = clinician.get(f"/clinic/patients/{a}/summary/chart.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.data.startswith(b"\x89PNG\r\n\x1a\n") and len(png.data) > 20_000
    pdf = clinician.get(f"/clinic/patients/{a}/summary.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")
    assert b"/Subtype /Image" in pdf.data or b"/Subtype/Image" in pdf.data
    assert "attachment" in pdf.headers["Content-Disposition"]
    with app.app_context():
        actions = db.session.scalars(
            sa.select(AuditEvent.action).where(AuditEvent.patient_id == a)
        ).all()
    assert "patient.summary_pdf" in actions and "patient.summary_chart" in actions


# --- chart assets -------------------------------------------------------------------------


def test_plotly_is_served_from_the_package_cached_and_compressed(client: FlaskClient) -> None:
    url = f"/assets/plotly-{assets.VERSION}.min.js"
    plain = client.get(url)
    assert plain.status_code == 200 and plain.data == assets.plotly_js()
    assert plain.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "no-store" not in plain.headers["Cache-Control"]
    packed = client.get(url, headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert len(packed.data) < len(plain.data) / 2
    etag = plain.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/assets/plotly-0.0.1.min.js").status_code == 404
    css = client.get(f"/assets/plotly-{assets.VERSION}.css")
    assert css.mimetype == "text/css" and b".js-plotly-plot .plotly .modebar" in css.data


def add_score(patient_id: int, instrument: Instrument, days_ago: int, by: int) -> None:
    db.session.add(
        OutcomeMeasure(
            patient_id=patient_id,
            instrument=instrument,
            measured_on=clinic_today() - dt.timedelta(days=days_ago),
            score=30.0 if instrument is Instrument.ODI else 6.0,
            answers={},
            recorded_by_user_id=by,
        )
    )
    db.session.commit()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_odi_and_psfs_fall_due_while_a_program_is_in_effect(
    app: Flask, clinician: FlaskClient, clinic: Clinic
) -> None:
    """Both programs began 60 days ago (every 30 days, the default). Alice: ODI 10 days ago,
    PSFS 45 days ago, so PSFS is 15 days overdue and ODI due in 20. Bob: both 5 days ago,
    nothing due. Once Alice's program has ended she is not asked any more."""
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    assert a is not None and b is not None
    today = clinic_today()
    by = clinic.clinician.user_id
    with app.app_context():
        add_score(a, Instrument.ODI, 10, by)
        add_score(a, Instrument.PSFS, 45, by)
        add_score(b, Instrument.ODI, 5, by)
        add_score(b, Instrument.PSFS, 5, by)

    due_view = visible_text(clinician.get("/clinic/?show=outcomes"))
    assert "Alice Patient" in due_view and "Bob Patient" not in due_view
    assert "(odi/psfs due)" in due_view
    assert "PSFS due (15 d over)" in due_view and "ODI due" not in due_view
    record = visible_text(clinician.get(f"/clinic/patients/{a}"))
    assert "PSFS: due, 15 days overdue" in record
    assert f"ODI: next due {(today + dt.timedelta(days=20)).isoformat()}" in record
    assert f"last {(today - dt.timedelta(days=10)).isoformat()}" in record

    # A patient never measured in her program is due from its start.
    with app.app_context():
        db.session.execute(sa.delete(OutcomeMeasure).where(OutcomeMeasure.patient_id == b))
        db.session.commit()
    due_view = visible_text(clinician.get("/clinic/?show=outcomes"))
    assert "Bob Patient" in due_view and "ODI due (60 d over)" in due_view
    assert "not measured yet" in visible_text(clinician.get(f"/clinic/patients/{b}"))
    # A score from the intake, 10 days before the program, stands as its first for one
    # interval: due 20 days into the program, 40 days ago.
    with app.app_context():
        add_score(b, Instrument.ODI, 70, by)
    assert "ODI due (40 d over)" in visible_text(clinician.get("/clinic/?show=outcomes"))
    record = visible_text(clinician.get(f"/clinic/patients/{b}"))
    assert f"last {(today - dt.timedelta(days=70)).isoformat()}, before this program" in record

    with app.app_context():
        program = db.session.scalars(sa.select(Program).where(Program.patient_id == a)).one()
        program.end_date = today - dt.timedelta(days=1)
        db.session.commit()
    assert "Alice Patient" not in visible_text(clinician.get("/clinic/?show=outcomes"))
    assert (
        "due"
        not in visible_text(clinician.get(f"/clinic/patients/{a}"))
        .split("Outcome measures")[1]
        .split("All scores")[0]
    )


def test_the_interval_is_the_clinics_setting(tmp_path: Path, database_url: str) -> None:
    app = create_app(app_settings(database_url, tmp_path, outcome_interval_days=60))
    try:
        with app.app_context():
            clinic = build_clinic()
            a = clinic.patient_a.patient_id
            assert a is not None
            add_score(a, Instrument.ODI, 45, clinic.clinician.user_id)
            add_score(a, Instrument.PSFS, 61, clinic.clinician.user_id)
            b = clinic.patient_b.patient_id
            assert b is not None
            for instrument in Instrument:  # Bob is up to date
                add_score(b, instrument, 1, clinic.clinician.user_id)
        client = app.test_client()
        login(client, clinic.clinician.email)
        due_view = visible_text(client.get("/clinic/?show=outcomes"))
        assert "PSFS due (1 d over)" in due_view and "ODI due" not in due_view
        assert "every 60 days" in visible_text(client.get(f"/clinic/patients/{a}"))
    finally:
        dispose_engines(app)
