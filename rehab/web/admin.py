"""Admin pages `/admin/...`: users, staff invitations, care teams, and the audit log.

Admins manage people and read the audit trail; they see no clinical data. Anyone else: 404.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from rehab.domain.vocabulary import ALERT_KIND_TITLES, Role
from rehab.extensions import db, login_manager
from rehab.notifications.render import duration_text
from rehab.services import alert_report, clinic_policy, notifications, staff
from rehab.services.access import NotFound
from rehab.services.actors import Actor
from rehab.services.alerts import JUDGEMENT_LABELS
from rehab.services.commands import InvalidInput
from rehab.services.time import clinic_today
from rehab.web.forms import (
    ActionForm,
    AuditSearchForm,
    CareTeamForm,
    ClinicPolicyForm,
    FormInvalid,
    MemberForm,
    StaffForm,
    build,
    choice_list,
    show_service_error,
)
from rehab.web.guards import deny

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _admins_only() -> Any:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.role is not Role.ADMIN:
        deny()
    return None


def _actor() -> Actor:
    actor: Actor = current_user.actor
    return actor


def _member_forms(
    teams: list[staff.TeamItem], clinicians: list[staff.ClinicianItem], failed: MemberForm | None
) -> dict[int, MemberForm]:
    """One add-a-clinician form per team, offering the clinicians not on it yet."""
    forms = {}
    for team in teams:
        on_team = {m.clinician_id for m in team.members}
        form = failed if failed is not None and failed.team_id == team.team_id else None
        form = form or MemberForm(formdata=None, prefix=f"team{team.team_id}")
        form.clinician_id.choices = choice_list(
            (c.clinician_id, c.name) for c in clinicians if c.clinician_id not in on_team
        )
        forms[team.team_id] = form
    return forms


def _index_page(
    staff_form: StaffForm | None = None,
    team_form: CareTeamForm | None = None,
    member_form: MemberForm | None = None,
    status: int = 200,
) -> Any:
    actor = _actor()
    teams = staff.list_care_teams(db.session, actor)
    clinicians = staff.list_clinicians(db.session, actor)
    return (
        render_template(
            "admin/index.html",
            users=staff.list_users(db.session, actor),
            teams=teams,
            member_forms=_member_forms(teams, clinicians, member_form),
            staff_form=staff_form or StaffForm(formdata=None),
            team_form=team_form or CareTeamForm(formdata=None),
            action_form=ActionForm(formdata=None),
            unattended=staff.unattended_teams(db.session),
            waiting=notifications.follow_ups_waiting(db.session),
            follow_up_within=duration_text(
                clinic_policy.current(db.session).urgent_follow_up_minutes
            ),
        ),
        status,
    )


@bp.get("/")
def index() -> Any:
    return _index_page()


def _invite_page(user: Any, token: str) -> Any:
    link = url_for("auth.set_password", token=token, _external=True)
    return render_template(
        "admin/invite.html",
        user=user,
        link=link,
        hours=current_app.config["REHAB_SETTINGS"].invite_valid_hours,
    )


@bp.post("/users")
def create_user() -> Any:
    form = StaffForm()
    if form.validate():
        try:
            data = build(
                staff.StaffInput,
                {
                    "display_name": form.display_name.data or "",
                    "email": form.email.data or "",
                    "role": form.role.data,
                },
                form,
            )
            user, token = staff.create_staff(
                db.session, _actor(), data, current_app.config["SECRET_KEY"]
            )
        except FormInvalid:
            pass
        except InvalidInput as exc:
            show_service_error(form, exc)
        else:
            return _invite_page(user, token)
    return _index_page(staff_form=form, status=422)


def _valid_action() -> None:
    if not ActionForm().validate():
        abort(400)


@bp.post("/users/<int:user_id>/invite")
def invite_user(user_id: int) -> Any:
    _valid_action()
    try:
        user, token = staff.new_invite(
            db.session, _actor(), user_id, current_app.config["SECRET_KEY"]
        )
    except NotFound:
        abort(404)
    except InvalidInput as exc:
        flash(f"No link made: the account {exc.message}.", "error")
        return redirect(url_for("admin.index"))
    return _invite_page(user, token)


@bp.post("/users/<int:user_id>/disable")
def disable_user(user_id: int) -> Any:
    return _set_active(user_id, False)


@bp.post("/users/<int:user_id>/enable")
def enable_user(user_id: int) -> Any:
    return _set_active(user_id, True)


def _set_active(user_id: int, active: bool) -> Any:
    _valid_action()
    try:
        user, left_unattended = staff.set_active(db.session, _actor(), user_id, active)
    except NotFound:
        abort(404)
    except InvalidInput as exc:
        flash(exc.message.capitalize() + ".", "error")
    else:
        if active:
            flash(f"{user.display_name} can log in again.", "success")
        else:
            flash(f"{user.display_name} is disabled and logged out everywhere.", "success")
            _flash_unattended(left_unattended)
    return redirect(url_for("admin.index"))


def _flash_unattended(teams: list[staff.UnattendedTeam]) -> None:
    """After a clinician leaves a team (disabled, or taken off it): the teams this left with
    patients and no active clinician, at once, where the admin is looking (the admin page
    lists every such team until someone joins it)."""
    for team in teams:
        patients = f"{team.patient_count} patient{'' if team.patient_count == 1 else 's'}"
        flash(
            f"“{team.name}” has {patients} and no active clinician: no one can open their"
            " records, and their alerts reach no one. Add a clinician to it.",
            "error",
        )


@bp.post("/teams")
def create_team() -> Any:
    form = CareTeamForm()
    if form.validate():
        try:
            data = build(staff.CareTeamInput, {"name": form.name.data or ""}, form)
            staff.create_care_team(db.session, _actor(), data)
        except FormInvalid:
            pass
        except InvalidInput as exc:
            show_service_error(form, exc)
        else:
            flash(f"Care team “{data.name}” created.", "success")
            return redirect(url_for("admin.index"))
    return _index_page(team_form=form, status=422)


@bp.post("/teams/<int:team_id>/members")
def add_member(team_id: int) -> Any:
    form = MemberForm(prefix=f"team{team_id}")
    form.team_id = team_id
    clinicians = staff.list_clinicians(db.session, _actor())
    form.clinician_id.choices = choice_list((c.clinician_id, c.name) for c in clinicians)
    if form.validate():
        try:
            staff.add_member(db.session, _actor(), team_id, form.clinician_id.data)
        except NotFound:
            abort(404)
        except InvalidInput as exc:
            show_service_error(form, exc)
        else:
            flash("Clinician added to the care team.", "success")
            return redirect(url_for("admin.index"))
    return _index_page(member_form=form, status=422)


@bp.post("/teams/<int:team_id>/members/<int:clinician_id>/remove")
def remove_member(team_id: int, clinician_id: int) -> Any:
    _valid_action()
    try:
        left_unattended = staff.remove_member(db.session, _actor(), team_id, clinician_id)
    except NotFound:
        abort(404)
    flash("Clinician removed from the care team; their access to its patients ends now.", "success")
    _flash_unattended(left_unattended)
    return redirect(url_for("admin.index"))


@bp.get("/audit")
def audit_log() -> Any:
    form = AuditSearchForm(request.args)
    page = None
    status = 200
    if form.validate():
        try:
            query = build(
                staff.AuditQuery,
                {
                    "user_id": form.user_id.data,
                    "patient_id": form.patient_id.data,
                    "action": form.action.data or "",
                    "date_from": form.date_from.data,
                    "date_to": form.date_to.data,
                    "page": form.page.data or 1,
                },
                form,
            )
        except FormInvalid:
            status = 422
        else:
            page = staff.search_audit(db.session, _actor(), query)
    else:
        status = 422
    filters = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("admin/audit.html", form=form, page=page, filters=filters), status


@bp.get("/alerts")
def alert_response() -> Any:
    report = alert_report.alert_report(
        db.session,
        _actor(),
        clinic_today(),
        clinic_policy.current(db.session).urgent_follow_up_minutes,
    )
    return render_template(
        "admin/alerts.html",
        report=report,
        limit=duration_text(report.limit_minutes),
        kind_labels=ALERT_KIND_TITLES,
        judgement_labels=JUDGEMENT_LABELS,
    )


def _policy_page(form: ClinicPolicyForm | None = None, status: int = 200) -> Any:
    """The settings page; without a form, one holding the values in effect."""
    page = clinic_policy.policy_page(db.session, _actor())
    if form is None:
        values = {line.name: line.value for line in page.lines}
        form = ClinicPolicyForm(formdata=None, data={**values, "version": page.version})
    return render_template("admin/settings.html", form=form, page=page), status


@bp.get("/settings")
def clinic_settings() -> Any:
    return _policy_page()


@bp.post("/settings")
def change_clinic_settings() -> Any:
    form = ClinicPolicyForm()
    if form.validate():
        try:
            wanted = build(clinic_policy.ClinicPolicy, form.values(), form)
            changed = clinic_policy.change(db.session, _actor(), wanted, form.version.data)
        except FormInvalid:
            pass
        except clinic_policy.ChangedMeanwhile:
            db.session.rollback()
            flash(
                "Another administrator changed the settings after this page was opened, so"
                " nothing was saved. Here they are now: make your change again.",
                "error",
            )
            return _policy_page(status=409)
        else:
            labels = [clinic_policy.TEXT[name].label for name in changed]
            flash(f"Saved: {', '.join(labels)}." if labels else "Nothing changed.", "success")
            return redirect(url_for("admin.clinic_settings"), 303)
    return _policy_page(form, status=422)
