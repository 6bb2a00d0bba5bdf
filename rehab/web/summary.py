"""The printable summary of one patient (for a referral, e.g. to the surgeon).

- `/clinic/patients/<id>/summary`: a print-styled page (history, events, findings, open
  alerts, program, outcome measures, the chart as a static image);
- `/clinic/patients/<id>/summary/chart.png`: that image, rendered by kaleido (Debian chromium);
- `/clinic/patients/<id>/summary.pdf`: the same document as a PDF, printed by headless
  chromium (`--print-to-pdf`) from a temporary folder holding the HTML, its stylesheet and the
  chart PNG — no network, no script, no login needed by the printing browser;
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, url_for
from flask_login import current_user

from rehab.domain.vocabulary import RED_FLAG_LABELS, Role, humanize
from rehab.extensions import db, login_manager
from rehab.services import printing, trajectory
from rehab.services.access import NotFound
from rehab.services.actors import Actor
from rehab.web.forms import EVENT_TYPE_LABELS, FALL_LOCATION_LABELS, IMAGING_LABELS
from rehab.web.guards import deny

bp = Blueprint("summary", __name__, url_prefix="/clinic/patients")

# --- access -----------------------------------------------------------------------------------


@bp.before_request
def _clinicians_only() -> Any:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.role is not Role.CLINICIAN or current_user.actor.clinician_id is None:
        deny()
    return None


def _actor() -> Actor:
    actor: Actor = current_user.actor
    return actor


def _page(patient_id: int, action: str) -> trajectory.ClinicianPage:
    try:
        return trajectory.clinician_page(db.session, _actor(), patient_id, action=action)
    except NotFound:
        abort(404)


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
        "print_days": min(printing.PRINT_DAYS, page.chart.days),
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
        png = printing.chart_png(page.chart)
    except printing.PrintUnavailable as exc:
        current_app.logger.warning("summary chart unavailable: %s", exc)
        abort(503)
    return Response(png, mimetype="image/png")


@bp.get("/<int:patient_id>/summary.pdf")
def pdf(patient_id: int) -> Any:
    page = _page(patient_id, "patient.summary_pdf")
    try:
        png = printing.chart_png(page.chart)
        html = render_template(
            "summary/document.html",
            chart_src="chart.png",
            css_href="summary.css",
            **_context(page),
        )
        css = Path(current_app.static_folder or "", "css", "summary.css").read_bytes()
        document = printing.print_pdf(html, {"chart.png": png, "summary.css": css})
    except printing.PrintUnavailable as exc:
        current_app.logger.warning("summary PDF unavailable: %s", exc)
        abort(503)
    name = f"summary-{patient_id}-{page.record.today.isoformat()}.pdf"
    return Response(
        document,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
