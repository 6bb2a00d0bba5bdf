"""The six kinds of caller the security tests act as, against the clinic of
`tests.support.clinic`: nobody, patient A, patient B, a clinician on A's care team (Cara, team
North), one off it (Dan, team South) and an admin.

Pages are called with a logged-in test client per actor; the API with the actor's bearer
token (none for the anonymous caller).
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.support.clinic import Clinic, Person, csrf_token, login

ANONYMOUS = "anonymous"
PATIENT_A = "patient_a"
PATIENT_B = "patient_b"
CLINICIAN_ON = "clinician_on"  # on A's care team
CLINICIAN_OFF = "clinician_off"  # not on A's care team
ADMIN = "admin"
ACTORS = (ANONYMOUS, PATIENT_A, PATIENT_B, CLINICIAN_ON, CLINICIAN_OFF, ADMIN)
LOGGED_IN = ACTORS[1:]


def person(clinic: Clinic, actor: str) -> Person | None:
    return {
        ANONYMOUS: None,
        PATIENT_A: clinic.patient_a,
        PATIENT_B: clinic.patient_b,
        CLINICIAN_ON: clinic.clinician,
        CLINICIAN_OFF: clinic.other_clinician,
        ADMIN: clinic.admin,
    }[actor]


def bearer(clinic: Clinic, actor: str) -> dict[str, str]:
    """The API headers of `actor` (no Authorization header for the anonymous caller)."""
    who = person(clinic, actor)
    return {} if who is None else {"Authorization": f"Bearer {who.token}"}


def logged_in_clients(app: Flask, clinic: Clinic) -> dict[str, FlaskClient]:
    """A test client per actor, logged in (the anonymous one has a session with a CSRF token
    from the login page, so its POSTs fail for want of a login, not of a token)."""
    clients = {}
    for actor in ACTORS:
        client = app.test_client()
        who = person(clinic, actor)
        if who is None:
            csrf_token(client, "/login")
        else:
            login(client, who.email)
        clients[actor] = client
    return clients


def token_of(client: FlaskClient) -> str:
    """The client's CSRF token (tokens are per session, valid for every form)."""
    return csrf_token(client, "/login")
