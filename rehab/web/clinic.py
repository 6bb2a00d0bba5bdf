"""Clinician pages `/clinic/...`."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("clinic", __name__, url_prefix="/clinic")


@bp.get("/")
def caseload() -> str:
    return "caseload"
