"""In a real browser (Debian chromium driven by Playwright) against the app on a free port, with
the demo clinic loaded as of 2025-09-17 and the clinic's calendar on the morning after:

- the clinician logs in; the caseload lists the seed patient (Elena Marsh) first while her
  fall alert is open; her chart renders under the page's Content-Security-Policy, with the
  fall marker, a hover that reads as a sentence and keyboard-usable range buttons; she
  acknowledges the alert from the patient page; the printable summary shows the chart image;
- the patient logs a session on a 360 px wide phone and sees her progress chart.

Each step leaves a screenshot in the test's folder and in test-output/e2e/.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import playwright.sync_api as sync_api
import pytest
import sqlalchemy as sa
from flask import Flask

from rehab import create_app
from rehab.db.models import Alert, AlertStatus, Patient, User
from rehab.demo.loader import CLINICIAN_LOGIN, PATIENT_LOGIN, load_demo
from rehab.demo.seed_case import FALL, PSFS_ACTIVITIES, SEED_PATIENT_EMAIL
from rehab.extensions import db
from tests.conftest import app_settings, dispose_engines
from tests.support.live_server import (
    chromium_available,
    freeze_clinic_today,
    launch_chromium,
    live_server,
    save_screenshot,
)

pytestmark = [pytest.mark.browser]


@pytest.fixture(autouse=True)
def _chromium_installed() -> None:
    # These tests are part of what the issue asks for: a missing browser fails them loudly
    # (`.ci/system-deps` installs Debian chromium) rather than skipping them.
    assert chromium_available(), "Debian chromium is not installed (run .ci/system-deps)"


AS_OF = dt.date(2025, 9, 17)  # three days after her fall on the stairs
TODAY = AS_OF + dt.timedelta(days=1)  # the clinician's morning triage

# Records every refused resource or inline style/script (the page's CSP at work).
CSP_RECORDER = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "") + " " + (e.sample || ""));
});
"""


@pytest.fixture
def demo(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The demo clinic on the morning of 2025-09-18, the clinician not yet at her desk: the
    fall alert the detector raised is still open (the demo has her acknowledge it after the
    phone call; this scenario is before)."""
    freeze_clinic_today(monkeypatch, TODAY)
    # Password login only: this test is about the charts, not the second factor.
    app = create_app(app_settings(sqlite_url, tmp_path, totp_required=False))
    with app.app_context():
        load_demo(db.session, as_of=AS_OF)
        elena = db.session.scalars(
            sa.select(Patient).join(User).where(User.email == SEED_PATIENT_EMAIL)
        ).one()
        fall_alert = db.session.scalars(
            sa.select(Alert).where(
                Alert.patient_id == elena.id,
                Alert.kind == "pain_regression",
                Alert.metric == "leg_pain",
                Alert.onset >= FALL,
            )
        ).one()
        fall_alert.status = AlertStatus.OPEN
        fall_alert.acknowledged_by_user_id = None
        fall_alert.acknowledged_at = None
        fall_alert.acknowledge_note = ""
        db.session.commit()
    yield app
    dispose_engines(app)


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def log_in(page: Any, base: str, email: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def csp_violations(page: Any) -> list[str]:
    return list(page.evaluate("window.__csp || []"))


def test_clinician_triages_reads_the_chart_and_acknowledges_the_fall_alert(
    demo: Flask, browser: Any, tmp_path: Path
) -> None:
    with live_server(demo) as base:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(CSP_RECORDER)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        log_in(page, base, CLINICIAN_LOGIN.email, CLINICIAN_LOGIN.password)

        # The caseload: Elena first while her alert is open.
        page.goto(base + "/clinic/")
        rows = page.locator("table.caseload tbody tr")
        assert rows.count() >= 40
        first = rows.first
        assert first.locator("th a").inner_text() == "Elena Marsh"
        assert "2 urgent" in first.inner_text()
        assert first.locator("svg.spark path.spark-leg").get_attribute("d")
        save_screenshot(page, tmp_path, "01-caseload", full_page=False)

        # Her chart: drawn by plotly under the CSP, the fall on it.
        first.locator("th a").click()
        page.wait_for_selector("#chart-trajectory .main-svg")
        chart = page.locator("#chart-trajectory")
        assert chart.locator(".textpoint", has_text="Fall").count() == 1
        fall_line = page.evaluate(
            """() => document.getElementById("chart-trajectory").layout.shapes
                 .filter(s => s.name === "marker:fall").map(s => s.x0)"""
        )
        assert fall_line == [FALL.isoformat()]
        assert chart.locator(".shapelayer path").count() > 3
        save_screenshot(page, tmp_path, "02-patient-page", full_page=False)

        # Hover her last leg-pain point: a sentence.
        box = page.evaluate(
            """() => {
                const el = document.getElementById("chart-trajectory");
                const scatter = el.data.filter(t => t.type === "scatter");
                const k = scatter.findIndex(t => t.name === "Leg pain (daily)");
                const points = el.querySelectorAll(".scatterlayer .trace")[k]
                    .querySelectorAll("path.point");
                const r = points[points.length - 1].getBoundingClientRect();
                return {x: r.x + r.width / 2, y: r.y + r.height / 2};
            }"""
        )
        page.mouse.move(box["x"], box["y"])
        hover = page.locator("#chart-trajectory .hoverlayer .hovertext")
        hover.first.wait_for()
        assert re.search(
            r"Wed 17 Sep 2025: leg pain \d+ out of 10, baseline \d",
            hover.first.text_content() or "",
        )
        chart.screenshot(path=str(tmp_path / "03-chart-hover.png"))
        save_screenshot(page, tmp_path, "03-chart-hover-page", full_page=False)

        # Range buttons work from the keyboard.
        all_button = page.locator("button[data-range-group]", has_text="All")
        all_button.focus()
        page.keyboard.press("Enter")
        assert all_button.get_attribute("aria-pressed") == "true"
        start = page.evaluate('document.getElementById("chart-trajectory").layout.xaxis.range[0]')
        assert str(start).startswith("2024-")
        save_screenshot(page, tmp_path, "04-chart-all", full_page=False)

        # The change-vs-baseline view draws when opened.
        page.click("text=Change against baseline")
        page.wait_for_selector("#chart-change .main-svg")

        # Acknowledge her fall alert, here on her page.
        card = page.locator("article.alert-card", has_text="Pain regression: leg pain")
        assert card.locator(".badge-status").inner_text() == "Open"
        card.locator("textarea[name=note]").first.fill("Phoned her: assessment on her return.")
        card.locator("button", has_text="Acknowledge").click()
        page.wait_for_selector("text=Alert acknowledged.")
        assert page.url.endswith("/clinic/patients/1")
        card = page.locator("article.alert-card", has_text="Pain regression: leg pain")
        assert card.locator(".badge-status").inner_text() == "Acknowledged"
        assert "assessment on her return" in card.inner_text()
        page.wait_for_selector("#chart-trajectory .main-svg")
        save_screenshot(page, tmp_path, "05-acknowledged", full_page=False)

        # The printable summary, with the chart drawn by kaleido: its own headless chromium,
        # started on first use, which on a 2-core box shared with the other test process's
        # browser took over 30 s once (CI, stop 22).
        page.goto(base + "/clinic/patients/1/summary", timeout=90_000)
        page.wait_for_function(
            "() => { const i = document.querySelector('.referral-chart img');"
            " return i && i.complete && i.naturalWidth > 0; }",
            timeout=60_000,
        )
        save_screenshot(page, tmp_path, "06-summary")

        assert csp_violations(page) == []
        assert errors == []
        context.close()


def test_patient_logs_a_session_on_a_360px_phone(demo: Flask, browser: Any, tmp_path: Path) -> None:
    with live_server(demo) as base:
        context = browser.new_context(
            viewport={"width": 360, "height": 780},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
        )
        context.add_init_script(CSP_RECORDER)
        page = context.new_page()
        log_in(page, base, PATIENT_LOGIN.email, PATIENT_LOGIN.password)
        page.goto(base + "/me/")
        assert "Thursday 18 September" in page.locator("h1").inner_text()
        save_screenshot(page, tmp_path, "10-today-360", full_page=False)
        exercises = page.locator(".exercise input[type=checkbox]")
        for i in range(min(2, exercises.count())):
            exercises.nth(i).check()
        # The big scale buttons: the (transparent) radio input lies over its label.
        page.locator("input[name=back_pain][value='2']").check()
        page.locator("input[name=leg_pain][value='5']").check()
        page.locator("input[name=leg_side][value=left]").check()
        page.fill("#note", "Bruise still sore when sitting; walked 15 minutes.")
        save_screenshot(page, tmp_path, "11-today-filled-360")
        page.locator("button[type=submit]", has_text="Save today").click()
        page.wait_for_selector("text=Today's log is stored.")
        body = page.locator("main").inner_text()
        assert "Saved." in body and "5 / 10 (left)" in body
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        save_screenshot(page, tmp_path, "12-saved-360")

        page.click("text=See my progress")
        page.wait_for_selector("#chart-progress .main-svg")
        assert "days in a row" in page.locator(".stat-cards").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        save_screenshot(page, tmp_path, "13-progress-360")

        # Her activities (the PSFS her clinic chose with her), rated on the phone.
        page.click("text=Rate my activities")
        scales = page.locator("fieldset.scale")
        assert scales.count() == len(PSFS_ACTIVITIES)
        assert PSFS_ACTIVITIES[0] in scales.nth(0).inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        for i in range(scales.count()):
            page.locator(f"input[name=rating_{i}][value='8']").check()
        save_screenshot(page, tmp_path, "13b-activities-360")
        page.locator("button[type=submit]", has_text="Save").click()
        page.wait_for_selector("text=Your activities score 8 out of 10 today")
        assert csp_violations(page) == []
        context.close()


def test_patient_downloads_her_data_on_a_360px_phone(
    demo: Flask, browser: Any, tmp_path: Path
) -> None:
    """Her account page fits the phone; the download button hands the browser a CSV file
    (an attachment, named by id and date only) with her logs and her fall."""
    with live_server(demo) as base:
        context = browser.new_context(
            viewport={"width": 360, "height": 780}, is_mobile=True, accept_downloads=True
        )
        context.add_init_script(CSP_RECORDER)
        page = context.new_page()
        log_in(page, base, PATIENT_LOGIN.email, PATIENT_LOGIN.password)
        page.goto(base + "/me/account")

        def download(link: str, name: str) -> str:
            """Click the link (the page still fits the phone): the file's text, its
            suggested name the patient's id and the day only."""
            button = page.get_by_role("link", name=link)
            button.scroll_into_view_if_needed()
            assert page.evaluate("document.documentElement.scrollWidth") <= 360
            with page.expect_download() as download_info:
                button.click()
            file = download_info.value
            assert re.fullmatch(rf"rehab-patient-\d+-2025-09-18\.{name}", file.suggested_filename)
            saved = tmp_path / file.suggested_filename
            file.save_as(saved)
            return saved.read_text(encoding="utf-8")

        save_screenshot(page, tmp_path, "14-account-360")
        text = download("Download my logs and events (CSV)", r"csv")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert len({r["patient_id"] for r in rows}) == 1  # hers only
        logged = [r for r in rows if r["back_pain"]]
        assert len(logged) > 300  # a year of daily logs and more
        (fall,) = [r for r in rows if r["event"] == "fall"]
        assert fall["date"] == FALL.isoformat()
        assert fall["event_mechanism"] == "on stairs (10 steps, landed on buttocks)"

        # Her whole record, for another clinic's system or a health app: one FHIR Bundle.
        bundle = json.loads(download("Download my whole record (FHIR)", r"fhir\.json"))
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
        kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
        assert kinds.count("Patient") == 1 and kinds.count("Observation") > 4 * 300
        falls = [
            e["resource"]
            for e in bundle["entry"]
            if e["resource"].get("valueString", "").startswith("Fall on stairs (10 steps")
        ]
        assert [f["effectiveDateTime"] for f in falls] == [FALL.isoformat()]

        # Her login, on the phone: a new password, this phone still logged in afterwards.
        page.get_by_role("link", name="Change your password").click()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        new_password = "a long phrase nobody guesses 42"
        page.fill("#current_password", PATIENT_LOGIN.password)
        page.fill("#password", new_password)
        page.fill("#confirm", new_password)
        save_screenshot(page, tmp_path, "15-password-360")
        page.locator("button[type=submit]", has_text="Change password").click()
        page.wait_for_selector("text=Your password is changed")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.goto(base + "/me/")
        assert page.url.endswith("/me/")  # not sent to the login page
        assert csp_violations(page) == []
        context.close()
