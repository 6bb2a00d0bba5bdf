"""In a real browser on a 360 px wide phone: the clinician pins the demo patient's leg pain
baseline from her page (a wrong level first: refused, the field named), sees it shown as
pinned, then returns it to automatic; no page is wider than the screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from rehab.db.models import Patient, PinnedBaseline, User
from rehab.demo.loader import CLINICIAN_LOGIN
from rehab.demo.seed_case import SEED_PATIENT_EMAIL
from rehab.extensions import db
from tests.e2e.test_browser import (  # the fixtures too: the demo clinic and the browser
    CSP_RECORDER,
    browser,
    csp_violations,
    demo,
    log_in,
)
from tests.support.live_server import live_server, save_screenshot

pytestmark = [pytest.mark.browser]
__all__ = ["browser", "demo"]


def test_clinician_pins_and_unpins_on_a_360px_phone(
    demo: Flask, browser: Any, tmp_path: Path
) -> None:
    with demo.app_context():
        elena = db.session.scalars(
            sa.select(Patient.id).join(User).where(User.email == SEED_PATIENT_EMAIL)
        ).one()
    with live_server(demo) as base:
        page = browser.new_page(viewport={"width": 360, "height": 780})
        page.add_init_script(CSP_RECORDER)
        log_in(page, base, CLINICIAN_LOGIN.email, CLINICIAN_LOGIN.password)
        page.goto(f"{base}/clinic/patients/{elena}")
        card = page.locator("#baseline-leg_pain")
        assert "automatic" in card.inner_text().lower()
        level = card.locator("strong").first.inner_text()
        card.locator("summary", has_text="Pin a baseline").click()
        card.locator("#leg_pain-level").fill("12")
        save_screenshot(page, tmp_path, "20-pin-form-360")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        card.get_by_role("button", name="Pin leg pain baseline").click()
        page.wait_for_load_state()
        # The form page sent back shows the same baseline as the patient page.
        assert page.locator("#baseline-leg_pain strong").first.inner_text() == level
        error = page.locator("#leg_pain-level-error")
        assert "from 0 to 10" in error.inner_text()
        assert page.locator("#leg_pain-level").get_attribute("aria-invalid") == "true"
        save_screenshot(page, tmp_path, "21-pin-refused-360")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360

        page.locator("#leg_pain-level").fill("2")
        page.get_by_role("button", name="Pin leg pain baseline").click()
        page.wait_for_load_state()
        assert page.url.startswith(f"{base}/clinic/patients/{elena}")
        card = page.locator("#baseline-leg_pain")
        assert "Pinned by" in card.inner_text()
        save_screenshot(page, tmp_path, "22-pinned-360")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        with demo.app_context():
            assert db.session.scalar(sa.select(sa.func.count()).select_from(PinnedBaseline)) == 1

        card.get_by_role("button", name="Return to automatic").click()
        page.wait_for_load_state()
        card = page.locator("#baseline-leg_pain")
        assert "Automatic:" in card.inner_text()
        # A pin from today governed no day: it is replaced, and the history says so.
        card.locator("summary", has_text="Baseline history (1)").click()
        assert "replaced by" in card.inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        with demo.app_context():
            rows = db.session.execute(
                sa.select(PinnedBaseline.level, PinnedBaseline.replaced_at.is_not(None))
            ).all()
            assert [tuple(r) for r in rows] == [(2.0, True)]
        assert csp_violations(page) == []
