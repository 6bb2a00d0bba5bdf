"""The printable summary of one patient (for a referral, e.g. to the surgeon) and the chart
assets every chart page loads.

- `/clinic/patients/<id>/summary`: a print-styled page (history, events, findings, open
  alerts, program, outcome measures, the chart as a static image);
- `/clinic/patients/<id>/summary/chart.png`: that image, rendered by kaleido (Debian chromium);
- `/clinic/patients/<id>/summary.pdf`: the same document as a PDF, printed by headless
  chromium (`--print-to-pdf`) from a temporary folder holding the HTML, its stylesheet and the
  chart PNG — no network, no script, no login needed by the printing browser;
- `/assets/plotly-<version>.min.js` and `.css`: plotly.js from the installed `plotly` package
  and its stylesheet (see `rehab.charts.assets`), cached for a year under a versioned URL.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from flask_login import current_user

from rehab.charts import assets
from rehab.charts.trajectory import trajectory_figure
from rehab.domain.vocabulary import RED_FLAG_LABELS, Role, humanize
from rehab.extensions import db, login_manager
from rehab.services import trajectory
from rehab.services.access import NotFound
from rehab.services.actors import Actor
from rehab.web.forms import EVENT_TYPE_LABELS, FALL_LOCATION_LABELS, IMAGING_LABELS

bp = Blueprint("summary", __name__, url_prefix="/clinic/patients")
assets_bp = Blueprint("chart_assets", __name__, url_prefix="/assets")

# The printed chart: the last half year (or everything, if shorter), at print size.
PRINT_DAYS = 182
PRINT_WIDTH = 1100
PRINT_HEIGHT = 640
PRINT_SCALE = 1.5
PDF_TIMEOUT_SECONDS = 90
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-pdf-header-footer",
    "--run-all-compositor-stages-before-draw",
)
YEAR = 365 * 24 * 3600


class PrintUnavailable(RuntimeError):
    """The chart image or the PDF could not be made (no chromium, or it failed)."""


# --- access -----------------------------------------------------------------------------------


@bp.before_request
def _clinicians_only() -> Any:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.role is not Role.CLINICIAN or current_user.actor.clinician_id is None:
        abort(404)
    return None


def _actor() -> Actor:
    actor: Actor = current_user.actor
    return actor


def _page(patient_id: int, action: str) -> trajectory.ClinicianPage:
    try:
        return trajectory.clinician_page(db.session, _actor(), patient_id, action=action)
    except NotFound:
        abort(404)


# --- rendering --------------------------------------------------------------------------------


def chart_png(page: trajectory.ClinicianPage) -> bytes:
    """The main chart of the last half year as a PNG (kaleido drives the installed chromium;
    about two seconds)."""
    import plotly.io as pio

    days = min(PRINT_DAYS, page.chart.days)
    fig = trajectory_figure(page.chart, days=days, height=PRINT_HEIGHT, static=True)
    try:
        return pio.to_image(
            fig, format="png", width=PRINT_WIDTH, height=PRINT_HEIGHT, scale=PRINT_SCALE
        )
    except Exception as exc:  # kaleido raises its own types; any failure means "no image"
        raise PrintUnavailable(f"chart image failed: {type(exc).__name__}") from exc


def chromium_path() -> str:
    configured = os.environ.get("REHAB_CHROMIUM_PATH")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    raise PrintUnavailable("no chromium found (install chromium or set REHAB_CHROMIUM_PATH)")


def print_pdf(html: str, files: dict[str, bytes]) -> bytes:
    """Print an HTML document (with the files it refers to, by relative name) to PDF."""
    chromium = chromium_path()
    with tempfile.TemporaryDirectory(prefix="rehab-print-") as tmp:
        folder = Path(tmp)
        for name, content in files.items():
            (folder / name).write_bytes(content)
        document = folder / "summary.html"
        document.write_text(html, encoding="utf-8")
        target = folder / "summary.pdf"
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={folder / 'profile'}",
            f"--print-to-pdf={target}",
            document.as_uri(),
        ]
        try:
            subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=PDF_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PrintUnavailable(f"chromium failed: {type(exc).__name__}") from exc
        pdf = target.read_bytes() if target.exists() else b""
    if not pdf.startswith(b"%PDF"):
        raise PrintUnavailable("chromium produced no PDF")
    return pdf


def _context(page: trajectory.ClinicianPage) -> dict[str, Any]:
    return {
        "page": page,
        "record": page.record,
        "patient_id": page.record.patient.id,
        "printed_by": current_user.display_name,
        "event_labels": EVENT_TYPE_LABELS,
        "fall_labels": FALL_LOCATION_LABELS,
        "imaging_labels": IMAGING_LABELS,
        "red_flag_labels": {flag.value: label for flag, label in RED_FLAG_LABELS.items()},
        "humanize": humanize,
        "print_days": min(PRINT_DAYS, page.chart.days),
    }


# --- routes -----------------------------------------------------------------------------------


@bp.get("/<int:patient_id>/summary")
def summary(patient_id: int) -> Any:
    page = _page(patient_id, "patient.summary")
    return render_template(
        "summary/page.html",
        chart_src=url_for("summary.chart", patient_id=patient_id),
        css_href=url_for("static", filename="css/summary.css"),
        **_context(page),
    )


@bp.get("/<int:patient_id>/summary/chart.png")
def chart(patient_id: int) -> Any:
    page = _page(patient_id, "patient.summary_chart")
    try:
        png = chart_png(page)
    except PrintUnavailable as exc:
        current_app.logger.warning("summary chart unavailable: %s", exc)
        abort(503)
    return Response(png, mimetype="image/png")


@bp.get("/<int:patient_id>/summary.pdf")
def pdf(patient_id: int) -> Any:
    page = _page(patient_id, "patient.summary_pdf")
    try:
        png = chart_png(page)
        html = render_template(
            "summary/document.html",
            chart_src="chart.png",
            css_href="summary.css",
            **_context(page),
        )
        css = Path(current_app.static_folder or "", "css", "summary.css").read_bytes()
        document = print_pdf(html, {"chart.png": png, "summary.css": css})
    except PrintUnavailable as exc:
        current_app.logger.warning("summary PDF unavailable: %s", exc)
        abort(503)
    name = f"summary-{patient_id}-{page.record.today.isoformat()}.pdf"
    return Response(
        document,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- chart assets -----------------------------------------------------------------------------


@cache
def _asset(kind: str) -> tuple[bytes, bytes, str]:
    raw = assets.plotly_js() if kind == "js" else assets.plotly_css()
    return raw, gzip.compress(raw, 6), hashlib.sha256(raw).hexdigest()[:32]


def _serve(kind: str, version: str, mimetype: str) -> Response:
    if version != assets.VERSION:
        abort(404)
    raw, packed, etag = _asset(kind)
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    elif "gzip" in request.headers.get("Accept-Encoding", ""):
        response = Response(packed, mimetype=mimetype)
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(raw, mimetype=mimetype)
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    response.headers["Vary"] = "Accept-Encoding"
    return response


@assets_bp.get("/plotly-<version>.min.js")
def plotly_js(version: str) -> Response:
    return _serve("js", version, "text/javascript")


@assets_bp.get("/plotly-<version>.css")
def plotly_css(version: str) -> Response:
    return _serve("css", version, "text/css")


@assets_bp.app_context_processor
def _chart_assets() -> dict[str, Any]:
    return {
        "plotly_js_url": lambda: url_for("chart_assets.plotly_js", version=assets.VERSION),
        "plotly_css_url": lambda: url_for("chart_assets.plotly_css", version=assets.VERSION),
        "plotly_style_id": assets.STYLE_ELEMENT_ID,
        "plotly_inline_style_ids": assets.inline_style_ids,
    }
