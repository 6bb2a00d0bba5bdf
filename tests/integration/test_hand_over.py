"""A clinician hands a patient over to another care team (`/clinic/patients/{id}/care-team`).

The new team sees her record from then on, and is notified of her open alerts; the old team
no longer sees her (nor gets the messages about her not sent yet); the move is audited with
the team it went to. Bad input is a 422 naming the field, with nothing changed."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from rehab import create_app
from rehab.db.models import (
    Alert,
    AlertStatus,
    AuditEvent,
    CareTeam,
    CareTeamMember,
    Notification,
    Patient,
    User,
)
from rehab.domain.vocabulary import Role
from rehab.extensions import db
from rehab.notifications.render import HANDOVER_SUBJECT
from rehab.services import accounts, evaluation, handover, notifications
from rehab.services.access import NotFound
from rehab.services.commands import HandOverInput, InvalidInput
from rehab.services.time import clinic_today
from tests.conftest import app_settings, dispose_engines
from tests.integration.test_alert_inbox import open_pain_alert
from tests.support.clinic import Clinic, csrf_token, login
from tests.support.pages import visible_text
from tests.support.smtp import SmtpServer

PUBLIC_URL = "https://rehab.clinic.test"


@pytest.fixture
def app(database_url: str, tmp_path: Path, smtp: SmtpServer) -> Iterator[Flask]:
    """The app, its e-mail going to a real SMTP server."""
    app = create_app(
        app_settings(
            database_url,
            tmp_path,
            smtp_url=smtp.url,
            public_url=PUBLIC_URL,
            # UTC+14: the e-mail's time is the clinic's, not UTC.
            clinic_timezone="Pacific/Kiritimati",
        )
    )
    yield app
    dispose_engines(app)


def hand_over(client: FlaskClient, patient_id: int, care_team_id: object) -> tuple[int, str, str]:
    path = f"/clinic/patients/{patient_id}/care-team"
    # (Someone who may not open the page takes a token from her own caseload.)
    token = csrf_token(client, path if client.get(path).status_code == 200 else "/clinic/")
    response = client.post(path, data={"csrf_token": token, "care_team_id": str(care_team_id)})
    return response.status_code, response.headers.get("Location", ""), visible_text(response)


def team_of(app: Flask, patient_id: int) -> int:
    with app.app_context():
        patient = db.session.get(Patient, patient_id)
        assert patient is not None
        team = patient.care_team_id
        db.session.rollback()
        return team


def notified(app: Flask, alert_id: int) -> dict[int, str]:
    """Recipient user id → status of the alert's notification rows."""
    with app.app_context():
        found = {
            user_id: status
            for user_id, status in db.session.execute(
                sa.select(Notification.recipient_user_id, Notification.status).where(
                    Notification.alert_id == alert_id
                )
            )
        }
        db.session.rollback()
        return found


def test_handing_over_moves_the_record_and_its_open_alerts(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    alert_id = open_pain_alert(app, clinic)
    cara, dan = clinic.clinician.user_id, clinic.other_clinician.user_id
    assert set(notified(app, alert_id)) == {cara}

    client = app.test_client()
    login(client, clinic.clinician.email)
    page = visible_text(client.get(f"/clinic/patients/{a}/care-team"))
    assert "is with Team North" in page and "Team South" in page
    status, location, _ = hand_over(client, a, clinic.team_south_id)
    assert (status, location) == (302, "/clinic/")
    shown = visible_text(client.get("/clinic/"))
    assert "Handed over to Team South" in shown and "1 open alert" in shown
    assert team_of(app, a) == clinic.team_south_id
    assert client.get(f"/clinic/patients/{a}").status_code == 404

    # The new team sees her, and was told of her open alert.
    dan_client = app.test_client()
    login(dan_client, clinic.other_clinician.email)
    assert dan_client.get(f"/clinic/patients/{a}").status_code == 200
    assert set(notified(app, alert_id)) == {cara, dan}
    # What was queued for the old team is not sent to her any more.
    with app.app_context():
        cara_row = db.session.scalar(
            sa.select(Notification.id).where(
                Notification.alert_id == alert_id, Notification.recipient_user_id == cara
            )
        )
        assert cara_row is not None
        assert notifications.deliver(db.session, cara_row).status == "failed"
        audited = db.session.execute(
            sa.select(AuditEvent.user_id, AuditEvent.outcome, AuditEvent.target).where(
                AuditEvent.action == "patient.transfer", AuditEvent.patient_id == a
            )
        ).all()
    assert [(u, o.value, t) for u, o, t in audited] == [
        (cara, "allowed", f"care_team:{clinic.team_south_id}")
    ]

    # Handed back: Cara, whose message was dropped while the patient was away, is told again.
    assert hand_over(dan_client, a, clinic.team_north_id)[:2] == (302, "/clinic/")
    with app.app_context():
        rows = db.session.execute(
            sa.select(Notification.recipient_user_id, Notification.status)
            .where(Notification.alert_id == alert_id)
            .order_by(Notification.id)
        ).all()
    assert [(u, st.value) for u, st in rows] == [
        (cara, "failed"),
        (dan, "pending"),
        (cara, "pending"),
    ]


def test_a_clinician_on_both_teams_stays_on_the_record(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        db.session.add(
            CareTeamMember(
                care_team_id=clinic.team_south_id, clinician_id=clinic.clinician.clinician_id
            )
        )
        db.session.commit()
    client = app.test_client()
    login(client, clinic.clinician.email)
    status, location, _ = hand_over(client, a, clinic.team_south_id)
    assert (status, location) == (302, f"/clinic/patients/{a}")
    assert "Handed over to Team South" in visible_text(client.get(location))
    assert team_of(app, a) == clinic.team_south_id


def test_bad_hand_overs_name_the_field_and_change_nothing(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        empty = CareTeam(name="Team Empty")  # nobody would see her there
        db.session.add(empty)
        db.session.commit()
        empty_id = empty.id
    client = app.test_client()
    login(client, clinic.clinician.email)
    for team, says in (
        (clinic.team_north_id, "is her care team already"),
        (empty_id, "has no active clinician"),
        (987654, "Not a valid choice"),
        ("north", "could not coerce"),
        ("", "This field is required"),
    ):
        status, _, text = hand_over(client, a, team)
        assert status == 422, team
        assert "Hand over to" in text and says in text, (team, text)
        assert team_of(app, a) == clinic.team_north_id


def test_only_her_care_team_may_hand_her_over(app: Flask, clinic: Clinic) -> None:
    a = clinic.patient_a.patient_id
    assert a is not None
    dan = app.test_client()
    login(dan, clinic.other_clinician.email)
    assert dan.get(f"/clinic/patients/{a}/care-team").status_code == 404
    assert hand_over(dan, a, clinic.team_south_id)[0] == 404
    patient = app.test_client()
    login(patient, clinic.patient_a.email)
    assert patient.get(f"/clinic/patients/{a}/care-team").status_code == 404
    assert team_of(app, a) == clinic.team_north_id
    with app.app_context():
        denied = db.session.scalars(
            sa.select(AuditEvent.action).where(
                AuditEvent.patient_id == a,
                AuditEvent.user_id == clinic.other_clinician.user_id,
                AuditEvent.outcome == "denied",
            )
        ).all()
    assert "patient.transfer" in denied


def handover_notices(app: Flask) -> list[tuple[int, str]]:
    """(recipient user id, id) of each hand-over notice written, oldest first."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(Notification.recipient_user_id, Notification.id)
            .where(Notification.purpose == notifications.HANDOVER_NOTICE)
            .order_by(Notification.id)
        ).all()
        db.session.rollback()
    return [(user_id, str(row_id)) for user_id, row_id in rows]


def deliver(app: Flask, notification_id: str) -> str:
    with app.app_context():
        return notifications.deliver(db.session, int(notification_id)).status


def test_the_new_team_is_told_of_her_hand_over_alerts_or_not(
    app: Flask, clinic: Clinic, smtp: SmtpServer
) -> None:
    """Each clinician of the new team who could not see her before is e-mailed (by record
    number, as alert e-mails are: no name in it); not one who could, nor the one handing her
    over. Handed on again before it went out, the notice is not sent."""
    a = clinic.patient_a.patient_id
    assert a is not None
    cara, dan = clinic.clinician.user_id, clinic.other_clinician.user_id
    with app.app_context():
        # Eve is on both teams: she could see Alice already.
        eve = User(
            email="eve@clinic.test",
            display_name="Eve Clinician",
            role=Role.CLINICIAN,
            password_hash="x",
        )
        eve.clinician = accounts.Clinician()
        db.session.add(eve)
        db.session.flush()
        for team in (clinic.team_north_id, clinic.team_south_id):
            db.session.add(CareTeamMember(care_team_id=team, clinician_id=eve.clinician.id))
        db.session.commit()

    client = app.test_client()
    login(client, clinic.clinician.email)
    assert hand_over(client, a, clinic.team_south_id)[:2] == (302, "/clinic/")
    ((recipient, notice),) = handover_notices(app)
    assert recipient == dan
    assert deliver(app, notice) == "sent"
    (message,) = smtp.wait_for(1)
    assert message.rcpt_tos == [clinic.other_clinician.email]
    assert message.subject == HANDOVER_SUBJECT
    text = " ".join(message.text().split())
    assert 'handed over to your care team "Team South" by Cara Clinician on ' in text
    moment = re.search(r"by Cara Clinician on (\S+) at (\S+) (\S+)\.", text)
    assert moment is not None and moment.group(3) == "+14"
    with app.app_context():
        assert moment.group(1) == clinic_today().isoformat()
    assert "None of her alerts waits for acknowledgement." in text
    assert f"Patient record #{a}." in text
    assert f"{PUBLIC_URL}/clinic/patients/{a}" in message.text().splitlines()
    assert f'href="{PUBLIC_URL}/clinic/patients/{a}"' in message.html()
    for part in (message.text(), message.html(), message.subject):
        assert "Alice" not in part and "alice@" not in part

    # Back to North with an open alert: Cara is told (with the alert waiting), Eve is not.
    alert_id = open_pain_alert(app, clinic)
    dan_client = app.test_client()
    login(dan_client, clinic.other_clinician.email)
    assert hand_over(dan_client, a, clinic.team_north_id)[:2] == (302, "/clinic/")
    assert [user for user, _ in handover_notices(app)] == [dan, cara]
    assert deliver(app, handover_notices(app)[1][1]) == "sent"
    text = " ".join(smtp.wait_for(2)[1].text().split())
    assert "by Dan Clinician" in text and '"Team North"' in text
    with app.app_context():
        waiting = db.session.scalar(
            sa.select(sa.func.count(Alert.id)).where(
                Alert.patient_id == a, Alert.status == AlertStatus.OPEN
            )
        )
        db.session.rollback()
    assert waiting == 1
    assert "1 of her alerts is not yet acknowledged" in text
    assert set(notified(app, alert_id)) >= {cara}

    # To South again, and back before Dan's notice went out: it is not sent.
    login(client, clinic.clinician.email)
    assert hand_over(client, a, clinic.team_south_id)[:2] == (302, "/clinic/")
    assert hand_over(dan_client, a, clinic.team_north_id)[:2] == (302, "/clinic/")
    *_, (dan_again, dans), (cara_again, _) = handover_notices(app)
    assert (dan_again, cara_again) == (dan, cara)
    assert deliver(app, dans) == "failed"
    assert len(smtp.messages) == 2


@pytest.mark.parametrize("cara_on_both_teams", [False, True])
def test_two_hand_overs_at_once_move_her_once(
    app: Flask, clinic: Clinic, monkeypatch: pytest.MonkeyPatch, cara_on_both_teams: bool
) -> None:
    """Cara hands Alice over from two pages at once: the second waits for the first (the
    evaluation's lock) and reads her team again. Off the new team, Cara is refused (404,
    audited); on it too, she is told Alice is with it already (422). One move either way,
    one notice, her alerts told once."""
    a = clinic.patient_a.patient_id
    assert a is not None
    if cara_on_both_teams:
        with app.app_context():
            db.session.add(
                CareTeamMember(
                    care_team_id=clinic.team_south_id, clinician_id=clinic.clinician.clinician_id
                )
            )
            db.session.commit()
    with app.app_context():
        first, second = Session(db.engine), Session(db.engine)
        cara = [
            accounts.actor_for(s.get_one(User, clinic.clinician.user_id)) for s in (first, second)
        ]
        to_south = HandOverInput(care_team_id=clinic.team_south_id)
        real_lock = evaluation.lock_patients

        def lock(session: Session, ids: Sequence[int]) -> None:
            if session is second:  # past its checks, waiting while the first goes through
                handover.hand_over(first, cara[0], a, to_south)
            real_lock(session, ids)

        monkeypatch.setattr(evaluation, "lock_patients", lock)
        refused = InvalidInput if cara_on_both_teams else NotFound
        try:
            with pytest.raises(refused):
                handover.hand_over(second, cara[1], a, to_south)
            if not cara_on_both_teams:
                second.commit()  # (the refusal's audit row, as a request writes it)
        finally:
            first.close()
            second.close()
    assert team_of(app, a) == clinic.team_south_id
    assert [user for user, _ in handover_notices(app)] == [clinic.other_clinician.user_id]
    with app.app_context():
        audited = db.session.execute(
            sa.select(AuditEvent.outcome)
            .where(AuditEvent.action == "patient.transfer", AuditEvent.patient_id == a)
            .order_by(AuditEvent.id)
        ).all()
    # (The 422's own access row went with the transaction this test rolled back.)
    expected = ["allowed"] if cara_on_both_teams else ["allowed", "denied"]
    assert [o.value for (o,) in audited] == expected


def test_a_notice_of_a_team_she_has_left_is_not_sent(app: Flask, clinic: Clinic) -> None:
    """Handed to South, then on to East before Dan (on both) was told: his notice would name
    the wrong team and the wrong clinician, so it does not go."""
    a = clinic.patient_a.patient_id
    assert a is not None
    with app.app_context():
        east = CareTeam(name="Team East")
        db.session.add(east)
        db.session.flush()
        db.session.add(
            CareTeamMember(care_team_id=east.id, clinician_id=clinic.other_clinician.clinician_id)
        )
        db.session.commit()
        east_id = east.id
    cara = app.test_client()
    login(cara, clinic.clinician.email)
    assert hand_over(cara, a, clinic.team_south_id)[:2] == (302, "/clinic/")
    dan = app.test_client()
    login(dan, clinic.other_clinician.email)
    assert hand_over(dan, a, east_id)[:2] == (302, f"/clinic/patients/{a}")
    ((recipient, notice),) = handover_notices(app)  # (Dan saw her when she went East)
    assert recipient == clinic.other_clinician.user_id
    assert deliver(app, notice) == "failed"
