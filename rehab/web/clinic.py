"""Clinician pages `/clinic/...`: the caseload, a patient's record, and the forms to add a
patient, prescribe a program, and record events, findings and outcome measures.

A clinician may also pin a patient's pain baseline, or return it to automatic
(`rehab.services.baselines`).

Only clinicians get here (anyone else: 404), and only for patients of their care teams (the
services answer `NotFound` otherwise, which is a 404 too, audited as denied).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from rehab.charts import outcomes as outcome_charts
from rehab.charts import trajectory as trajectory_charts
from rehab.charts.serialize import figure_json
from rehab.domain.outcome_change import mcid_of
from rehab.domain.questionnaires import ODI_SECTION_TITLES
from rehab.domain.vocabulary import RED_FLAG_LABELS, Instrument, Role, humanize
from rehab.extensions import db, login_manager
from rehab.services import (
    accounts,
    assessment,
    clinical,
    export,
    handover,
    logs,
    outcomes_report,
    programs,
    records,
    trajectory,
)
from rehab.services import baselines as baseline_service
from rehab.services import caseload as caseload_service
from rehab.services.access import NotFound, require_patient
from rehab.services.actors import Actor
from rehab.services.commands import (
    EndProgramInput,
    FindingInput,
    HandOverInput,
    InvalidInput,
    OutcomeInput,
    PatientDetailsInput,
    ProgramInput,
)
from rehab.services.outcome_schedule import outcome_interval_days
from rehab.services.time import clinic_today
from rehab.web.alerts import AlertActionForm
from rehab.web.corrections import mark_from_form
from rehab.web.downloads import download
from rehab.web.forms import (
    EVENT_TYPE_LABELS,
    FALL_LOCATION_LABELS,
    IMAGING_LABELS,
    ActionForm,
    CaseloadSearchForm,
    EndProgramForm,
    EnteredInErrorForm,
    EventForm,
    FindingsForm,
    FormInvalid,
    HandOverForm,
    OdiForm,
    PatientDetailsForm,
    PatientForm,
    PinBaselineForm,
    ProgramForm,
    PsfsForm,
    UndoMarkForm,
    choice_list,
    new_client_id,
    show_service_error,
)
from rehab.web.guards import deny

bp = Blueprint("clinic", __name__, url_prefix="/clinic")


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


@bp.context_processor
def _labels() -> dict[str, Any]:
    return {
        "red_flag_labels": {flag.value: label for flag, label in RED_FLAG_LABELS.items()},
        "event_labels": EVENT_TYPE_LABELS,
        "fall_labels": FALL_LOCATION_LABELS,
        "imaging_labels": IMAGING_LABELS,
        "humanize": humanize,
        # Read when a page shows it (the clinic's policy is in the database).
        "outcome_interval_days": lambda: outcome_interval_days(db.session),
    }


def _denied_or_name(
    patient_id: int, action: str, service_called: bool, target: str | None = None
) -> str:
    """The patient's name for a re-rendered form. If the service was never reached (the form
    was invalid), check access and audit the attempt here, exactly once."""
    if not service_called:
        try:
            require_patient(db.session, _actor(), patient_id, action, target, clinician_only=True)
        except NotFound:
            abort(404)
    return records.patient_name(db.session, patient_id)


C = TypeVar("C")


@dataclass(frozen=True)
class _Posted:
    """A clinician's form, posted: `redirect` when saved, else the patient's `name` for the
    form shown again with its errors."""

    redirect: Any = None
    name: str = ""


def _post_form(
    form: Any,
    patient_id: int,
    action: str,
    command: Callable[[], C],
    save: Callable[[C], str],
    index_maps: Mapping[str, Sequence[int]] | None = None,
    then: Callable[[], str] | None = None,
) -> _Posted:
    """The POST of a form adding to a patient's record: validate it, build its command, call
    the service (`save`, which answers the flash message) and go back to the record (or to
    `then()`). Errors go next to their fields; access is checked and audited exactly once, by
    the service or, if it was never reached, here (`_denied_or_name`)."""
    service_called = False
    if form.validate():
        try:
            data = command()
            service_called = True
            message = save(data)
        except FormInvalid:
            pass
        except InvalidInput as exc:
            show_service_error(form, exc, index_maps)
        except NotFound:
            abort(404)
        else:
            flash(message, "success")
            back = then() if then is not None else url_for("clinic.patient", patient_id=patient_id)
            return _Posted(redirect(back))
    return _Posted(name=_denied_or_name(patient_id, action, service_called))


def _form_header(patient_id: int) -> str:
    try:
        patient = records.patient_header(db.session, _actor(), patient_id, "patient.read")
    except NotFound:
        abort(404)
    return patient.user.display_name


# --- caseload -------------------------------------------------------------------------------


@bp.get("/outcomes")
def outcomes() -> Any:
    report = outcomes_report.outcomes_report(db.session, _actor(), clinic_today())
    return render_template(
        "clinic/outcomes.html",
        report=report,
        mcid={name: mcid_of(name) for name in outcomes_report.INSTRUMENTS},
    )


@bp.get("/")
def caseload() -> Any:
    # The search term travels in a POST and lives in the session, never in the URL: a
    # patient's name must not end up in access logs, browser history or Referer headers.
    search = str(session.get(CASELOAD_SEARCH_KEY, ""))
    sort = request.args.get("sort", "attention")
    if sort not in caseload_service.SORTS:
        sort = "attention"
    show = request.args.get("show", "all")
    if show not in caseload_service.FILTERS:
        show = "all"
    per_page: int | None = caseload_service.PAGE_SIZE
    if request.args.get("per_page") == "all":
        per_page = None
    page = caseload_service.caseload_page(
        db.session,
        _actor(),
        search=search,
        sort=sort,
        filter_by=show,
        page=request.args.get("page", 1, type=int) or 1,
        per_page=per_page,
    )
    return render_template(
        "clinic/caseload.html",
        page=page,
        rows=page.rows,
        search=search,
        sort=sort,
        sorts=caseload_service.SORTS,
        show=show,
        filters=caseload_service.FILTERS,
        today=clinic_today(),
        rtm_threshold=caseload_service.RTM_THRESHOLD,
        trend_days=caseload_service.TREND_DAYS,
        search_form=CaseloadSearchForm(q=search),
    )


CASELOAD_SEARCH_KEY = "caseload_search"


@bp.post("/search")
def search_caseload() -> Any:
    form = CaseloadSearchForm()
    if not form.validate_on_submit():
        abort(400)
    term = (form.q.data or "").strip()
    if term:
        session[CASELOAD_SEARCH_KEY] = term
    else:
        session.pop(CASELOAD_SEARCH_KEY, None)
    keep: dict[str, Any] = {
        k: v for k, v in request.form.items() if k in ("sort", "show", "per_page")
    }
    return redirect(url_for("clinic.caseload", **keep), code=303)


# --- new patient ----------------------------------------------------------------------------


@bp.route("/patients/new", methods=["GET", "POST"])
def new_patient() -> Any:
    actor = _actor()
    form = PatientForm()
    teams = caseload_service.care_teams_of(db.session, actor)
    form.care_team_id.choices = choice_list((t.id, t.name) for t in teams)
    if request.method == "GET":
        return render_template("clinic/patient_new.html", form=form, teams=teams)
    if form.validate():
        try:
            data = form.to_command()
            created = accounts.create_patient(
                db.session, actor, data, current_app.config["SECRET_KEY"]
            )
        except FormInvalid:
            pass
        except InvalidInput as exc:
            show_service_error(form, exc)
        else:
            link = url_for("auth.set_password", token=created.invite_token, _external=True)
            return render_template(
                "clinic/patient_created.html",
                patient=created.patient,
                name=data.display_name,
                link=link,
                hours=current_app.config["REHAB_SETTINGS"].invite_valid_hours,
            )
    return render_template("clinic/patient_new.html", form=form, teams=teams), 422


# --- the patient's details ------------------------------------------------------------------


@bp.route("/patients/<int:patient_id>/details", methods=["GET", "POST"])
def patient_details(patient_id: int) -> Any:
    """GET: name, e-mail, year of birth and working summary to correct; POST: save them."""
    form = PatientDetailsForm()
    if request.method == "GET":
        try:
            patient = records.patient_header(db.session, _actor(), patient_id, "patient.read")
        except NotFound:
            abort(404)
        user = patient.user
        form.display_name.data = user.display_name
        form.email.data = user.email
        form.year_of_birth.data = patient.year_of_birth
        form.condition_summary.data = patient.condition_summary
        return _details_page(form, patient_id, user.display_name)

    def save(data: PatientDetailsInput) -> str:
        accounts.update_patient_details(db.session, _actor(), patient_id, data)
        return "Details saved."

    posted = _post_form(form, patient_id, "patient.update", form.to_command, save)
    return posted.redirect or _details_page(form, patient_id, posted.name, 422)


def _details_page(form: PatientDetailsForm, patient_id: int, name: str, status: int = 200) -> Any:
    # (Access is checked and audited by the caller.)
    pending = accounts.invitation_pending(db.session, patient_id)
    return (
        render_template(
            "clinic/patient_details.html",
            form=form,
            patient_id=patient_id,
            name=name,
            pending=pending,
            invite_form=ActionForm(),
        ),
        status,
    )


@bp.route("/patients/<int:patient_id>/care-team", methods=["GET", "POST"])
def hand_over(patient_id: int) -> Any:
    """GET: her care team, and the others she may be handed over to; POST: hand her over."""
    form = HandOverForm()
    teams = handover.care_teams(db.session)
    form.care_team_id.choices = choice_list((t.id, t.name) for t in teams)
    if request.method == "GET":
        try:
            patient = records.patient_header(db.session, _actor(), patient_id, "patient.read")
        except NotFound:
            abort(404)
        form.care_team_id.data = patient.care_team_id
        return _hand_over_page(form, patient_id, patient.user.display_name, patient.care_team_id)
    done: list[handover.HandedOver] = []

    def save(data: HandOverInput) -> str:
        moved = handover.hand_over(db.session, _actor(), patient_id, data)
        done.append(moved)
        message = f"Handed over to {moved.team_name}."
        if moved.told:
            message += (
                f" {moved.told} of its clinicians {'was' if moved.told == 1 else 'were'}"
                " e-mailed that she is theirs now."
            )
        if moved.open_alerts:
            message += (
                f" Its clinicians were sent {moved.notifications} notification"
                f"{'s' if moved.notifications != 1 else ''} of her {moved.open_alerts} open"
                f" alert{'s' if moved.open_alerts != 1 else ''}."
            )
        if not moved.still_visible:
            message += " You are not on that team: her record is theirs now."
        return message

    def then() -> str:
        if done[0].still_visible:
            return url_for("clinic.patient", patient_id=patient_id)
        return url_for("clinic.caseload")

    posted = _post_form(form, patient_id, "patient.transfer", form.to_command, save, then=then)
    if posted.redirect is not None:
        return posted.redirect
    current = records.care_team_id(db.session, patient_id)
    return _hand_over_page(form, patient_id, posted.name, current, 422)


def _hand_over_page(
    form: HandOverForm, patient_id: int, name: str, current: int | None, status: int = 200
) -> Any:
    # (Access is checked and audited by the caller.)
    choices = form.care_team_id.choices
    current_name = next((c.label for c in choices if c.value == str(current)), "")
    return (
        render_template(
            "clinic/care_team.html",
            form=form,
            patient_id=patient_id,
            name=name,
            current_name=current_name,
        ),
        status,
    )


@bp.post("/patients/<int:patient_id>/invite")
def new_patient_invite(patient_id: int) -> Any:
    """A fresh set-password link for a patient who has not set a password yet."""
    if not ActionForm().validate():
        abort(400)
    try:
        patient, token = accounts.new_patient_invite(
            db.session, _actor(), patient_id, current_app.config["SECRET_KEY"]
        )
    except NotFound:
        abort(404)
    except InvalidInput as exc:
        flash(f"No link made: the patient {exc.message}.", "error")
        return redirect(url_for("clinic.patient_details", patient_id=patient_id), code=303)
    return render_template(
        "clinic/patient_created.html",
        patient=patient,
        name=patient.user.display_name,
        link=url_for("auth.set_password", token=token, _external=True),
        hours=current_app.config["REHAB_SETTINGS"].invite_valid_hours,
        renewed=True,
    )


# --- the patient's record ---------------------------------------------------------------------


@bp.get("/patients/<int:patient_id>/export.csv")
def export_patient(patient_id: int) -> Any:
    return _download(patient_id, export.CSV)


@bp.get("/patients/<int:patient_id>/export.fhir.json")
def export_patient_fhir(patient_id: int) -> Any:
    return _download(patient_id, export.FHIR)


def _download(patient_id: int, file_format: str) -> Any:
    try:
        return download(_actor(), [patient_id], file_format)
    except NotFound:
        abort(404)


@bp.get("/patients/<int:patient_id>")
def patient(patient_id: int) -> Any:
    try:
        page = trajectory.clinician_page(db.session, _actor(), patient_id)
    except NotFound:
        abort(404)
    chart = page.chart
    figures = {
        "trajectory": figure_json(
            trajectory_charts.trajectory_spec(chart), trajectory_charts.CONFIG
        ),
        "change": figure_json(trajectory_charts.change_spec(chart), trajectory_charts.CONFIG),
    }
    if page.outcome_points:
        figures["outcomes"] = figure_json(
            outcome_charts.outcomes_spec(page.outcome_points, chart.alerts, today=chart.end),
            outcome_charts.CONFIG,
        )
    return render_template(
        "clinic/patient.html",
        page=page,
        record=page.record,
        patient_id=patient_id,
        figures=figures,
        ranges=trajectory_charts.range_presets(chart),
        form=AlertActionForm(),
        odi_titles=ODI_SECTION_TITLES,
        **_baseline_context(
            patient_id,
            page.record.today,
            {metric: band.current() for metric, band in chart.baselines.items()},
        ),
    )


# --- program ----------------------------------------------------------------------------------


@bp.route("/patients/<int:patient_id>/program/new", methods=["GET", "POST"])
def new_program(patient_id: int) -> Any:
    library = programs.exercise_library(db.session)
    form = ProgramForm()
    form.set_library(library)
    if request.method == "GET":
        name = _form_header(patient_id)
        today = clinic_today()
        form.start_date.data = today
        # Adjusting a program means a new one from today: it starts as the current one.
        current = programs.program_on(db.session, patient_id, today)
        adjusted = current is not None and form.adjust(current)
        return _program_page(form, patient_id, name, library, current=current, adjusted=adjusted)

    def save(data: ProgramInput) -> str:
        programs.create_program(db.session, _actor(), patient_id, data)
        return f"Program “{data.title}” saved."

    posted = _post_form(
        form,
        patient_id,
        "program.write",
        lambda: form.to_command({e.id: e for e in library}),
        save,
        form.index_maps(),
    )
    return posted.redirect or _program_page(form, patient_id, posted.name, library, 422)


@bp.route("/patients/<int:patient_id>/program/end", methods=["GET", "POST"])
def end_program(patient_id: int) -> Any:
    """GET: the program in effect and the form; POST: end it (then back to the record)."""
    form = EndProgramForm()
    if request.method == "GET":
        name = _form_header(patient_id)
        form.end_date.data = clinic_today()
        return _end_program_page(form, patient_id, name)

    def save(data: EndProgramInput) -> str:
        program = programs.end_program(db.session, _actor(), patient_id, data)
        return (
            f"Program “{program.title}” ends on {program.end_date}: no logs are asked for after it."
        )

    posted = _post_form(form, patient_id, "program.write", form.to_command, save)
    return posted.redirect or _end_program_page(form, patient_id, posted.name, 422)


def _end_program_page(form: EndProgramForm, patient_id: int, name: str, status: int = 200) -> Any:
    # (Access is checked and audited by the caller.)
    program = programs.program_on(db.session, patient_id, clinic_today())
    return (
        render_template(
            "clinic/program_end.html", form=form, patient_id=patient_id, name=name, program=program
        ),
        status,
    )


def _program_page(
    form: ProgramForm,
    patient_id: int,
    name: str,
    library: list[Any],
    status: int = 200,
    current: Any = None,
    adjusted: bool = False,
) -> Any:
    return (
        render_template(
            "clinic/program_new.html",
            form=form,
            patient_id=patient_id,
            name=name,
            library=library,
            current=current,
            adjusted=adjusted,
        ),
        status,
    )


# --- events -----------------------------------------------------------------------------------


@bp.route("/patients/<int:patient_id>/events/new", methods=["GET", "POST"])
def new_event(patient_id: int) -> Any:
    form = EventForm()
    today = clinic_today()
    if request.method == "GET":
        name = _form_header(patient_id)
        form.client_id.data = new_client_id()
        form.event_date.data = today
        return render_template(
            "clinic/event_new.html", form=form, patient_id=patient_id, name=name, today=today
        )

    service_called = False
    status = 422
    if form.validate():
        try:
            data = form.to_command()
            service_called = True
            clinical.record_event(db.session, _actor(), patient_id, data)
        except FormInvalid:
            pass
        except InvalidInput as exc:
            show_service_error(form, exc)
        except logs.Conflict:
            form.form_errors.append("This form was already sent with other values; reload it.")
            status = 409
        except NotFound:
            abort(404)
        else:
            flash("Event saved.", "success")
            return redirect(url_for("clinic.patient", patient_id=patient_id))
    name = _denied_or_name(patient_id, "event.write", service_called)
    return (
        render_template(
            "clinic/event_new.html", form=form, patient_id=patient_id, name=name, today=today
        ),
        status,
    )


# --- entered in error -------------------------------------------------------------------------

_CORRECTABLE = "<any(events, findings, outcomes):kind>"


@bp.route(
    f"/patients/<int:patient_id>/{_CORRECTABLE}/<int:record_id>/entered-in-error",
    methods=["GET", "POST"],
)
def entered_in_error(patient_id: int, kind: str, record_id: int) -> Any:
    """GET: the entry and the form; POST: mark it entered in error (then back to the
    record). `clinical.mark_entered_in_error` says what that changes."""
    form = EnteredInErrorForm()
    posting = request.method == "POST"
    try:
        row = clinical.correctable_record(
            db.session, _actor(), patient_id, kind, record_id, None if posting else "patient.read"
        )
    except NotFound:
        abort(404)
    if posting and mark_from_form(form, _actor(), row):
        dated, words = records.describe_entry(row)
        flash(f"Marked entered in error: {words} ({dated.isoformat()}).", "success")
        return redirect(url_for("clinic.patient", patient_id=patient_id))
    name = records.patient_name(db.session, patient_id)
    return _entered_in_error_page(form, patient_id, row, name, 422 if posting else 200)


@bp.post(f"/patients/<int:patient_id>/{_CORRECTABLE}/<int:record_id>/entered-in-error/undo")
def undo_entered_in_error(patient_id: int, kind: str, record_id: int) -> Any:
    """Take back the mark (then back to the record). `clinical.undo_entered_in_error` says
    what that changes."""
    undo_form = UndoMarkForm()
    if not undo_form.validate():
        abort(400)
    try:
        row = clinical.correctable_record(
            db.session,
            _actor(),
            patient_id,
            kind,
            record_id,
            clinical.undo_action(kind, record_id),
            clinician_only=True,
        )
    except NotFound:
        abort(404)
    try:
        clinical.undo_entered_in_error(db.session, _actor(), row, undo_form.seen())
    except InvalidInput as exc:  # not marked, or not as the page showed: the page says so
        db.session.refresh(row)
        form = EnteredInErrorForm(formdata=None)
        what = "the entry" if exc.field == "record" else "its mark"
        form.form_errors.append(f"Nothing taken back: {what} {exc.message}.")
        name = records.patient_name(db.session, patient_id)
        return _entered_in_error_page(form, patient_id, row, name, 422)
    dated, words = records.describe_entry(row)
    flash(f"Back in the record: {words} ({dated.isoformat()}).", "success")
    return redirect(url_for("clinic.patient", patient_id=patient_id))


def _entered_in_error_page(
    form: EnteredInErrorForm,
    patient_id: int,
    row: clinical.Correctable,
    name: str,
    status: int = 200,
) -> Any:
    # (Access is checked and audited by the caller.)
    dated, words = records.describe_entry(row)
    return (
        render_template(
            "clinic/entered_in_error.html",
            form=form,
            undo_form=UndoMarkForm(
                formdata=None,
                mark=row.entered_in_error_at.isoformat() if row.entered_in_error_at else "",
            ),
            kind=clinical.kind_of(row),
            patient_id=patient_id,
            name=name,
            row=row,
            dated=dated,
            words=words,
            history=records.entry_corrections(db.session, row),
        ),
        status,
    )


# --- findings ---------------------------------------------------------------------------------


@bp.route("/patients/<int:patient_id>/findings/new", methods=["GET", "POST"])
def new_findings(patient_id: int) -> Any:
    form = FindingsForm()
    form.fill_tests()
    if request.method == "GET":
        name = _form_header(patient_id)
        form.finding_date.data = clinic_today()
        return _findings_page(form, patient_id, name)

    def save(items: list[FindingInput]) -> str:
        saved = assessment.record_findings(db.session, _actor(), patient_id, items)
        return f"{len(saved)} finding{'s' if len(saved) != 1 else ''} saved."

    posted = _post_form(form, patient_id, "finding.write", form.to_commands, save)
    return posted.redirect or _findings_page(form, patient_id, posted.name, 422)


def _findings_page(form: FindingsForm, patient_id: int, name: str, status: int = 200) -> Any:
    return (
        render_template(
            "clinic/findings_new.html",
            form=form,
            patient_id=patient_id,
            name=name,
            today=clinic_today(),
        ),
        status,
    )


# --- outcome measures -------------------------------------------------------------------------


@bp.route("/patients/<int:patient_id>/outcomes/new", methods=["GET", "POST"])
def new_outcome(patient_id: int) -> Any:
    try:
        instrument = Instrument(request.args.get("instrument", Instrument.ODI.value))
    except ValueError:
        _form_header(patient_id)  # off the care team: the usual audited 404 first
        abort(404)
    form: OdiForm | PsfsForm = OdiForm() if instrument is Instrument.ODI else PsfsForm()
    if request.method == "GET":
        name = _form_header(patient_id)
        form.measured_on.data = clinic_today()
        if isinstance(form, PsfsForm):
            # A follow-up rates the same activities again: their names are filled in.
            activities = clinical.latest_psfs_activities(db.session, patient_id)
            for row, activity in zip(form.activities.entries, activities, strict=False):
                row.form.activity.data = activity
        return _outcome_page(form, instrument, patient_id, name)

    def save(data: OutcomeInput) -> str:
        measure = clinical.record_outcome(db.session, _actor(), patient_id, data)
        return f"{instrument.value.upper()} saved: score {measure.score:g}."

    posted = _post_form(form, patient_id, "outcome.write", form.to_command, save)
    return posted.redirect or _outcome_page(form, instrument, patient_id, posted.name, 422)


def _outcome_page(
    form: OdiForm | PsfsForm, instrument: Instrument, patient_id: int, name: str, status: int = 200
) -> Any:
    return (
        render_template(
            "clinic/outcome_new.html",
            form=form,
            instrument=instrument.value,
            patient_id=patient_id,
            name=name,
            odi_titles=ODI_SECTION_TITLES,
            today=clinic_today(),
        ),
        status,
    )


# --- pinned baselines -------------------------------------------------------------------------

PAIN_METRIC_PATH = "<any(leg_pain, back_pain):metric>"


def _baseline_context(
    patient_id: int,
    today: dt.date,
    levels: dict[str, float | None],
    failed: dict[str, PinBaselineForm] | None = None,
) -> dict[str, Any]:
    """What the baseline panel needs (access already checked and audited by the caller):
    each pain metric's status, its level today and its pin form (`failed`: the one sent
    back with errors)."""
    statuses = baseline_service.baseline_statuses(db.session, patient_id, today)
    forms = dict(failed or {})
    for metric in statuses:
        if metric not in forms:
            form = PinBaselineForm(formdata=None, prefix=metric)
            form.effective_from.data = today
            forms[metric] = form
    return {
        "baselines": statuses,
        "levels": levels,
        "pin_forms": forms,
        "pin_earliest": baseline_service.earliest_pin_date(db.session, patient_id, today),
        "pin_today": today,
        "spread_range": (baseline_service.SPREAD_MIN, baseline_service.SPREAD_MAX),
    }


@bp.route(f"/patients/<int:patient_id>/baselines/{PAIN_METRIC_PATH}", methods=["GET", "POST"])
def pin_baseline(patient_id: int, metric: str) -> Any:
    """GET: the metric's baseline and its pin form; POST: pin (then back to the record)."""
    form = PinBaselineForm(prefix=metric)
    if request.method == "GET":
        name = _form_header(patient_id)
        return _baseline_page(patient_id, metric, name)

    service_called = False
    if form.validate():
        try:
            data = form.to_command(metric)
            service_called = True
            pin = baseline_service.pin_baseline(db.session, _actor(), patient_id, data)
        except InvalidInput as exc:
            show_service_error(form, exc)
        except NotFound:
            abort(404)
        else:
            flash(
                f"{humanize(metric)} baseline pinned at {pin.level:g} from "
                f"{pin.effective_from.isoformat()}; the alerts are being re-checked.",
                "success",
            )
            return redirect(url_for("clinic.patient", patient_id=patient_id) + "#baselines-title")
    name = _denied_or_name(
        patient_id,
        baseline_service.PIN_ACTION,
        service_called,
        baseline_service.audit_target(metric),
    )
    return _baseline_page(patient_id, metric, name, form, 422)


@bp.post(f"/patients/<int:patient_id>/baselines/{PAIN_METRIC_PATH}/automatic")
def unpin_baseline(patient_id: int, metric: str) -> Any:
    try:
        ended = baseline_service.unpin_baseline(db.session, _actor(), patient_id, metric)
    except NotFound:
        abort(404)
    if ended:
        flash(
            f"{humanize(metric)} baseline back to automatic from today; the alerts are being"
            " re-checked.",
            "success",
        )
    else:
        flash(f"{humanize(metric)} baseline was already automatic.", "info")
    return redirect(url_for("clinic.patient", patient_id=patient_id) + "#baselines-title")


def _baseline_page(
    patient_id: int,
    metric: str,
    name: str,
    failed: PinBaselineForm | None = None,
    status: int = 200,
) -> Any:
    today = clinic_today()
    context = _baseline_context(
        patient_id,
        today,
        baseline_service.current_levels(db.session, patient_id, today),
        {metric: failed} if failed is not None else None,
    )
    return (
        render_template(
            "clinic/baseline.html", patient_id=patient_id, name=name, metric=metric, **context
        ),
        status,
    )
