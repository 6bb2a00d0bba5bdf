"""TOTP second factor (RFC 6238) with pyotp: enrolment and verification, replay refused."""

from __future__ import annotations

import base64
import hmac
import time

import pyotp
import segno

from rehab.db.models import User

ISSUER = "rehab"
# Accept the previous and next 30-second step too: phone clocks drift.
VALID_WINDOW = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The enrolment QR code as an SVG data URI (allowed by the CSP's img-src data:)."""
    svg = segno.make(uri, error="m").svg_inline(scale=4)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def accepted_step(
    secret: str, code: str, last_step: int | None, now: float | None = None
) -> int | None:
    """The time step `code` is valid for, if any and not already used; else None.

    A code whose step is not after the last accepted one is refused even within its window,
    so an observed code cannot be replayed.
    """
    code = code.strip().replace(" ", "")
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now if now is not None else time.time())
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
