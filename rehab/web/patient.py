"""Patient pages `/me/...` (mobile-first)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("patient", __name__, url_prefix="/me")


@bp.get("/")
def today() -> str:
    return "today"
