"""The clinician's alert inbox: explained alerts, acknowledge and resolve, each audited."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from rehab.db.models import Alert, AlertStatus, AuditEvent, utcnow
from rehab.extensions import db
from rehab.services import alerts as alerts_service
from rehab.services import evaluation
from rehab.services.time import clinic_today
from tests.integration.test_evaluation import seed_like_history
from tests.support.clinic import Clinic, csrf_token, login
from tests.support.pages import visible_text
from tests.support.queries import counting_queries


def open_pain_alert(app: Flask, clinic: Clinic) -> int:
    with app.app_context():
        a, _ = seed_like_history(clinic)
        evaluation.evaluate_and_commit(db.session, [a], clinic_today())
        alert_id = db.session.scalar(
            sa.select(Alert.id).where(Alert.patient_id == a, Alert.kind == "pain_regression")
        )
    assert alert_id is not None
    return alert_id


def status_of(app: Flask, alert_id: int) -> AlertStatus:
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        assert alert is not None
        return alert.status


def test_inbox_shows_the_explained_alert_and_actions_work(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    alert_id = open_pain_alert(app, clinic)
    login(client, clinic.clinician.email)
    page = client.get("/clinic/alerts/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Left leg pain" in html and "fall" in html and "Alice Patient" in html

    token = csrf_token(client, "/clinic/alerts/")
    response = client.post(
        f"/clinic/alerts/{alert_id}/acknowledge",
        data={"csrf_token": token, "note": "Phoned her; assessment booked."},
    )
    assert response.status_code == 303
    assert status_of(app, alert_id) is AlertStatus.ACKNOWLEDGED
    response = client.post(
        f"/clinic/alerts/{alert_id}/resolve", data={"csrf_token": token, "note": "Settled."}
    )
    assert status_of(app, alert_id) is AlertStatus.RESOLVED
    with app.app_context():
        actions = list(
            db.session.scalars(
                sa.select(AuditEvent.action).where(
                    AuditEvent.target == f"alert:{alert_id}",
                    AuditEvent.user_id == clinic.clinician.user_id,
                )
            )
        )
    assert actions == ["alert.acknowledge", "alert.resolve"]


def test_clinician_off_the_team_neither_sees_nor_acts(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    alert_id = open_pain_alert(app, clinic)
    login(client, clinic.other_clinician.email)
    assert "Alice Patient" not in client.get("/clinic/alerts/").get_data(as_text=True)
    token = csrf_token(client, "/clinic/alerts/")
    response = client.post(f"/clinic/alerts/{alert_id}/acknowledge", data={"csrf_token": token})
    assert response.status_code == 404
    assert (
        client.post("/clinic/alerts/999999/acknowledge", data={"csrf_token": token}).status_code
        == 404
    )
    assert status_of(app, alert_id) is AlertStatus.OPEN


def test_patients_cannot_reach_the_inbox(client: FlaskClient, clinic: Clinic) -> None:
    login(client, clinic.patient_a.email)
    assert client.get("/clinic/alerts/").status_code == 404


# --- paging ---------------------------------------------------------------------------------

ALERT_ID_RE = re.compile(r'id="alert-(\d+)-title"')
PAGER_RE = re.compile(r'<nav class="pager"[^>]*>(.*?)</nav>', re.S)
STATUSES = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED)


def add_alerts(
    app: Flask, patient_id: int, count: int, *, statuses: tuple[AlertStatus, ...] = STATUSES
) -> list[int]:
    """`count` red-flag alerts (each on its own day: no dedup rule in the way), statuses and
    severities mixed, detected on days that repeat across patients (ties for the id to break)."""
    today = clinic_today()
    with app.app_context():
        rows = []
        for i in range(count):
            day = today - dt.timedelta(days=i)
            status = statuses[i % len(statuses)]
            rows.append(
                Alert(
                    patient_id=patient_id,
                    kind="red_flag",
                    metric="",
                    severity="urgent" if i % 4 == 0 else "routine",
                    onset=day,
                    detected_on=day,
                    explanation=f"Test alert {i}.",
                    status=status,
                )
            )
        db.session.add_all(rows)
        db.session.commit()
        return [r.id for r in rows]


def expected_order(app: Flask, *, include_resolved: bool) -> list[int]:
    """The inbox order, computed here rather than by the query under test."""
    rank = {AlertStatus.OPEN: 0, AlertStatus.ACKNOWLEDGED: 1, AlertStatus.RESOLVED: 2}
    with app.app_context():
        alerts = list(db.session.scalars(sa.select(Alert)))
    alerts = [a for a in alerts if include_resolved or a.status is not AlertStatus.RESOLVED]
    alerts.sort(
        key=lambda a: (
            rank[a.status],
            a.severity != "urgent",
            -a.detected_on.toordinal(),
            -a.id,
        )
    )
    return [a.id for a in alerts]


def shown_ids(html: str) -> list[int]:
    return [int(i) for i in ALERT_ID_RE.findall(html)]


def pager_links(html: str) -> list[str]:
    match = PAGER_RE.search(html)
    return re.findall(r'href="([^"]*)"', unescape(match.group(1))) if match else []


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("show", ["", "all"])
def test_inbox_pages_through_every_alert_once_in_order(
    app: Flask, client: FlaskClient, clinic: Clinic, show: str
) -> None:
    assert clinic.patient_a.patient_id and clinic.patient_b.patient_id
    add_alerts(app, clinic.patient_a.patient_id, 80)
    add_alerts(app, clinic.patient_b.patient_id, 77)
    add_alerts(app, clinic.patient_c.patient_id, 5)  # another team's: never shown
    include_resolved = show == "all"
    expected = expected_order(app, include_resolved=include_resolved)
    with app.app_context():
        c_ids = set(
            db.session.scalars(
                sa.select(Alert.id).where(Alert.patient_id == clinic.patient_c.patient_id)
            )
        )
    expected = [i for i in expected if i not in c_ids]
    total = len(expected)
    pages = -(-total // alerts_service.PAGE_SIZE)
    assert pages >= 2
    login(client, clinic.clinician.email)

    seen: list[int] = []
    url = "/clinic/alerts/" + ("?show=all" if include_resolved else "")
    visited = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        visited += 1
        ids = shown_ids(html)
        assert 0 < len(ids) <= alerts_service.PAGE_SIZE
        seen += ids
        assert f"Page {visited} of {pages}" in visible_text(response)
        assert f"{total} alerts" in visible_text(response)
        links = pager_links(html)
        # Page links carry the page number and the view, nothing else (no patient data).
        for link in links:
            parsed = urlsplit(link)
            assert parsed.path == "/clinic/alerts/"
            query = parse_qs(parsed.query)
            assert set(query) <= {"page", "show"}
            assert query.get("show", ["all"]) == ["all"]
            assert ("show" in query) == include_resolved
            assert query["page"][0].isdigit()
        nexts = re.findall(r'<a href="([^"]*)" rel="next"', html)
        url = unescape(nexts[0]) if nexts else ""
        # The forms on the page bring the clinician back to this page (and view).
        for back in re.findall(r'name="next" value="([^"]*)"', html):
            query = parse_qs(urlsplit(unescape(back)).query)
            assert query.get("page", ["1"]) == [str(visited)]
            assert ("show" in query) == include_resolved
    assert visited == pages
    assert seen == expected  # none missing, none twice, in the inbox order
    assert len(set(seen)) == len(seen)


@pytest.mark.parametrize(
    ("asked", "shown"),
    [
        ("0", 1),
        ("-1", 1),
        ("abc", 1),
        ("", 1),
        ("1.5", 1),
        ("1e3", 1),
        ("٣", 1),  # an Arabic-Indic digit: int() would take it, we do not
        ("99999999999999999999999999", 1),
        ("4", 4),
        ("5", 4),
        ("999", 4),
    ],
)
def test_inbox_page_numbers_out_of_range_or_malformed_show_the_nearest_page(
    app: Flask, client: FlaskClient, clinic: Clinic, asked: str, shown: int
) -> None:
    assert clinic.patient_a.patient_id
    add_alerts(app, clinic.patient_a.patient_id, 160, statuses=(AlertStatus.OPEN,))
    expected = expected_order(app, include_resolved=False)
    size = alerts_service.PAGE_SIZE
    login(client, clinic.clinician.email)
    response = client.get(f"/clinic/alerts/?page={asked}")
    assert response.status_code == 200
    assert f"Page {shown} of 4" in visible_text(response)
    assert shown_ids(response.get_data(as_text=True)) == expected[(shown - 1) * size :][:size]
    in_range = asked == str(shown)
    assert ("There is no such page" in visible_text(response)) is not in_range


def test_a_nul_in_the_page_number_is_refused_by_name(client: FlaskClient, clinic: Clinic) -> None:
    # The app-wide guard (rehab.web): a 400 naming the field, not a server error.
    login(client, clinic.clinician.email)
    response = client.get("/clinic/alerts/?page=%00")
    assert response.status_code == 400
    assert "page: contains a NUL character" in visible_text(response)


def test_an_empty_inbox_takes_any_page_number(client: FlaskClient, clinic: Clinic) -> None:
    login(client, clinic.clinician.email)
    for asked in ("1", "2", "-5", "x"):
        response = client.get(f"/clinic/alerts/?page={asked}")
        assert response.status_code == 200
        assert "No alerts to review." in visible_text(response)
        assert pager_links(response.get_data(as_text=True)) == []


def test_inbox_audits_only_the_patients_on_the_page_shown(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    assert a and b
    # Alice's alerts are open (all of page 1), Bob's resolved (all on page 2).
    add_alerts(app, a, alerts_service.PAGE_SIZE, statuses=(AlertStatus.OPEN,))
    add_alerts(app, b, 10, statuses=(AlertStatus.RESOLVED,))
    login(client, clinic.clinician.email)

    def listed(url: str) -> list[int | None]:
        with app.app_context():
            before = db.session.scalar(sa.select(sa.func.max(AuditEvent.id))) or 0
        assert client.get(url).status_code == 200
        with app.app_context():
            return list(
                db.session.scalars(
                    sa.select(AuditEvent.patient_id)
                    .where(AuditEvent.id > before, AuditEvent.action == "alert.list")
                    .order_by(AuditEvent.id)
                )
            )

    assert listed("/clinic/alerts/?show=all") == [a]
    assert listed("/clinic/alerts/?show=all&page=2") == [b]
    assert listed("/clinic/alerts/?show=all&page=7") == [b]  # clamped: the page shown
    assert listed("/clinic/alerts/") == [a]  # Bob's resolved alerts are not in this view


# --- who and when -------------------------------------------------------------------------


def test_who_and_when_are_shown_after_acknowledge_and_resolve(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    app.config["REHAB_CLINIC_TIMEZONE"] = "America/New_York"
    alert_id = open_pain_alert(app, clinic)
    login(client, clinic.clinician.email)
    token = csrf_token(client, "/clinic/alerts/")
    client.post(
        f"/clinic/alerts/{alert_id}/acknowledge",
        data={"csrf_token": token, "note": "Phoned her; assessment booked."},
    )
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        assert alert is not None and alert.acknowledged_at is not None
        acked = alert.acknowledged_at.astimezone(ZoneInfo("America/New_York"))
        patient_id = alert.patient_id
    acknowledged = (
        f"Acknowledged by Cara Clinician on {acked:%Y-%m-%d %H:%M} {acked:%Z}"
        " — Phoned her; assessment booked."
    )
    assert acked.strftime("%Z") in ("EST", "EDT")
    for url in ("/clinic/alerts/", f"/clinic/patients/{patient_id}"):
        page = visible_text(client.get(url))
        assert acknowledged in page, url
        assert "Resolved by" not in page

    client.post(
        f"/clinic/alerts/{alert_id}/resolve", data={"csrf_token": token, "note": "Settled."}
    )
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        assert alert is not None and alert.resolved_at is not None
        done = alert.resolved_at.astimezone(ZoneInfo("America/New_York"))
    resolved = f"Resolved by Cara Clinician on {done:%Y-%m-%d %H:%M} {done:%Z} — Settled."
    assert "Acknowledged by" not in visible_text(client.get("/clinic/alerts/"))  # resolved
    for url in ("/clinic/alerts/?show=all", f"/clinic/patients/{patient_id}"):
        page = visible_text(client.get(url))
        assert acknowledged in page and resolved in page, url


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (alerts_service.AUTO_BACK_NEAR_BASELINE, "(back near baseline)"),
        (
            alerts_service.AUTO_SUPERSEDED,
            "(superseded by a newer alert of the same kind and metric)",
        ),
        (
            alerts_service.AUTO_NO_LONGER_SHOWN,
            "(no longer shown by the record as it now stands)",
        ),
        (  # as stored before entries could be marked entered in error
            "Resolved automatically: the logs and baselines as they now stand no longer show "
            "it (a log or a pinned baseline changed after it was raised).",
            "(no longer shown by the record as it now stands)",
        ),
    ],
)
def test_an_automatically_resolved_alert_says_so(
    app: Flask, client: FlaskClient, clinic: Clinic, note: str, reason: str
) -> None:
    alert_id = open_pain_alert(app, clinic)
    back_on = clinic_today()
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        assert alert is not None
        patient_id = alert.patient_id
        # The detector's own way of resolving (read only here: rehab.services.evaluation).
        assert evaluation._auto_resolve(db.session, patient_id, alert_id, back_on, utcnow(), note)
        db.session.commit()
    login(client, clinic.clinician.email)
    expected = f"Resolved automatically on {back_on.isoformat()} {reason}"
    for url in ("/clinic/alerts/?show=all", f"/clinic/patients/{patient_id}"):
        page = visible_text(client.get(url))
        assert expected in page, url
        assert "Resolved by" not in page and "Acknowledged by" not in page


def test_the_inbox_queries_do_not_grow_with_its_alerts_or_their_clinicians(
    app: Flask, client: FlaskClient, clinic: Clinic
) -> None:
    a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
    assert a and b
    first = add_alerts(app, a, 3)
    with app.app_context():
        alert = db.session.get(Alert, first[1])
        assert alert is not None
        alert.acknowledged_by_user_id = clinic.clinician.user_id
        alert.acknowledged_at = utcnow()
        db.session.commit()
    login(client, clinic.clinician.email)
    client.get("/clinic/alerts/?show=all")  # warm up
    with counting_queries(app) as small:
        assert client.get("/clinic/alerts/?show=all").status_code == 200
    ids = add_alerts(app, b, 60)
    with app.app_context():  # acknowledged and resolved by two different people
        for i, alert_id in enumerate(ids):
            alert = db.session.get(Alert, alert_id)
            assert alert is not None
            who = clinic.clinician.user_id if i % 2 else clinic.admin.user_id
            alert.acknowledged_by_user_id, alert.acknowledged_at = who, utcnow()
        db.session.commit()
    with counting_queries(app) as large:
        page = client.get("/clinic/alerts/?show=all")
    assert "Acknowledged by Ada Admin" in visible_text(page)
    assert len(large) == len(small)
