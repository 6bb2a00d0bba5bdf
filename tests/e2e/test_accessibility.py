"""Every page, for each role, passes axe-core's automated checks (WCAG 2.0–2.2 A and AA, and
axe's best practices) in the real browser, with the page's Content-Security-Policy on: a
patient on a 360 px phone (and each of her pages fits it), a clinician on a phone and at a
desk, an administrator at a desk, and the pages anyone can open. Forms are also checked with
their errors showing.

Automated checks find about a third of what a person with a screen reader or a keyboard would
meet; they keep what they can see from coming back (a table that scrolls out of a keyboard's
reach, a heading out of order, a colour too faint to read, a field without a label).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from axe_playwright_python.sync_playwright import Axe
from flask import Flask

from rehab.db.models import (
    CorrectionAction,
    EntryCorrection,
    Event,
    Patient,
    User,
    utcnow,
)
from rehab.demo.loader import ADMIN_LOGIN, CLINICIAN_LOGIN, PATIENT_LOGIN
from rehab.demo.seed_case import SEED_PATIENT_EMAIL
from rehab.extensions import db
from tests.e2e.test_browser import CSP_RECORDER, browser, csp_violations, demo, log_in
from tests.support.live_server import live_server

pytestmark = [pytest.mark.browser]
__all__ = ["browser", "demo"]

RULES = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}
PHONE = {"width": 360, "height": 780}
DESK = {"width": 1280, "height": 900}

PATIENT_PAGES = [
    "/me/",
    "/me/events/new",
    "/me/history",
    "/me/progress",
    "/me/program",
    "/me/activities",
    "/me/account",
    "/me/access",
    "/account/password",
]
ANONYMOUS_PAGES = ["/login", "/login/forgot", "/api/v1/docs", "/no-such-page"]


def clinician_pages(patient_id: int) -> list[str]:
    p = f"/clinic/patients/{patient_id}"
    return [
        "/clinic/",
        "/clinic/alerts/",
        "/clinic/outcomes",
        p,
        "/clinic/patients/new",
        p + "/details",
        p + "/care-team",
        p + "/program/new",
        p + "/program/end",
        p + "/events/new",
        p + "/findings/new",
        p + "/outcomes/new",
        p + "/baselines/leg_pain",
        p + "/summary",
        "/settings/notifications",
        "/settings/api-keys",
    ]


ADMIN_PAGES = [
    "/admin/",
    "/admin/alerts",
    "/admin/settings",
    "/admin/audit",
    "/admin/notifications",
    "/admin/outbox",
]


def violations(page: Any, where: str) -> list[str]:
    """axe's findings on the page as it stands, one line per element."""
    found = Axe().run(page, options=RULES).response["violations"]
    return [
        f"{where} [{v['id']}, {v['impact']}] {v['help']}: {node['target']}"
        for v in found
        for node in v["nodes"]
    ]


def sweep(page: Any, base: str, paths: Iterable[str], *, fits: int | None = None) -> list[str]:
    found: list[str] = []
    for path in paths:
        page.goto(base + path)
        page.wait_for_load_state("networkidle")  # the charts drawn
        found += violations(page, path)
        if fits is not None:
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > fits:
                found.append(f"{path} is {width} px wide on a {fits} px screen")
    return found


def submit_without_browser_checks(page: Any, button: str) -> None:
    """Send the form as it is (the browser's own required-field checks off), so the server's
    errors show next to the fields."""
    page.evaluate("document.querySelectorAll('form').forEach(f => f.noValidate = true)")
    page.locator("button[type=submit]", has_text=button).click()
    page.wait_for_load_state()
    assert page.locator("[aria-invalid=true]").count() > 0  # the errors do show


def seed_patient_id(app: Flask) -> int:
    with app.app_context():
        return int(
            db.session.scalars(
                sa.select(Patient.id).join(User).where(User.email == SEED_PATIENT_EMAIL)
            ).one()
        )


def test_the_patients_pages_on_a_phone_and_the_public_pages(demo: Flask, browser: Any) -> None:
    with live_server(demo) as base:
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        context.add_init_script(CSP_RECORDER)
        page = context.new_page()
        found = sweep(page, base, ANONYMOUS_PAGES, fits=PHONE["width"])
        page.goto(base + "/login")
        page.fill("#email", PATIENT_LOGIN.email)
        page.fill("#password", "not her password")
        page.click("button[type=submit]")
        page.wait_for_selector(".error, .flash-error")
        found += violations(page, "/login (refused)")

        log_in(page, base, PATIENT_LOGIN.email, PATIENT_LOGIN.password)
        found += sweep(page, base, PATIENT_PAGES, fits=PHONE["width"])
        # A fall logged without the questions a fall asks: the errors beside the fields.
        page.goto(base + "/me/events/new")
        submit_without_browser_checks(page, "Save the event")
        found += violations(page, "/me/events/new (errors)")
        assert csp_violations(page) == []
        context.close()
    assert found == []


@contextmanager
def marked(app: Flask, event_id: int) -> Iterator[None]:
    """The event marked entered in error for the block (the demo clinic is shared)."""
    with app.app_context():
        event = db.session.get(Event, event_id)
        assert event is not None
        event.entered_in_error_at = utcnow()
        event.entered_in_error_by_user_id = event.recorded_by_user_id
        event.entered_in_error_reason = "wrong date"
        db.session.add(
            EntryCorrection(
                patient_id=event.patient_id,
                entry_kind="event",
                entry_id=event_id,
                action=CorrectionAction.MARKED,
                reason="wrong date",
                by_user_id=event.recorded_by_user_id,
                at=event.entered_in_error_at,
            )
        )
        db.session.commit()
    try:
        yield
    finally:
        with app.app_context():
            db.session.execute(
                sa.update(Event)
                .where(Event.id == event_id)
                .values(
                    entered_in_error_at=None,
                    entered_in_error_by_user_id=None,
                    entered_in_error_reason=None,
                )
            )
            db.session.execute(
                sa.delete(EntryCorrection).where(
                    EntryCorrection.entry_kind == "event", EntryCorrection.entry_id == event_id
                )
            )
            db.session.commit()


def test_the_clinicians_pages_on_a_phone_and_at_a_desk(demo: Flask, browser: Any) -> None:
    patient_id = seed_patient_id(demo)
    with demo.app_context():
        event_id = db.session.scalars(
            sa.select(Event.id).where(Event.patient_id == patient_id).order_by(Event.id).limit(1)
        ).one()
    found: list[str] = []
    with live_server(demo) as base:
        for viewport in (PHONE, DESK):
            context = browser.new_context(viewport=viewport)
            context.add_init_script(CSP_RECORDER)
            page = context.new_page()
            log_in(page, base, CLINICIAN_LOGIN.email, CLINICIAN_LOGIN.password)
            found += sweep(page, base, clinician_pages(patient_id), fits=viewport["width"])
            page.goto(base + "/clinic/patients/new")
            submit_without_browser_checks(page, "Add the patient")
            found += violations(page, f"/clinic/patients/new (errors, {viewport['width']} px)")
            # An event's entered-in-error page, unmarked and then marked (its take-back form).
            path = f"/clinic/patients/{patient_id}/events/{event_id}/entered-in-error"
            found += sweep(page, base, [path], fits=viewport["width"])
            with marked(demo, event_id):
                found += sweep(page, base, [f"/clinic/patients/{patient_id}", path])
                page.get_by_role("button", name="Take back the mark").click()
                # Back on the record, which lists the mark taken back.
                page.get_by_text("Marks taken back (1)").click()
                found += violations(page, f"/clinic/patients/{patient_id} (a mark taken back)")
            assert csp_violations(page) == []
            context.close()
    assert found == []


def test_the_admins_pages(demo: Flask, browser: Any) -> None:
    with live_server(demo) as base:
        context = browser.new_context(viewport=DESK)
        context.add_init_script(CSP_RECORDER)
        page = context.new_page()
        log_in(page, base, ADMIN_LOGIN.email, ADMIN_LOGIN.password)
        found = sweep(page, base, ADMIN_PAGES)
        # A setting out of its bounds: the error beside the field.
        page.goto(base + "/admin/settings")
        page.fill("#missed_logs_days", "1")
        submit_without_browser_checks(page, "Save the settings")
        found += violations(page, "/admin/settings (errors)")
        assert csp_violations(page) == []
        context.close()
    assert found == []
