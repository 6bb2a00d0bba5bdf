"""Login, logout, one-time set-password links; the logged-in user for every page."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import selectinload
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from rehab.db.models import User
from rehab.domain.vocabulary import AuditOutcome, Role
from rehab.extensions import db, limiter, login_manager
from rehab.services import accounts, audit
from rehab.services.actors import Actor
from rehab.services.commands import InvalidInput

bp = Blueprint("auth", __name__)


class SessionUser(UserMixin):
    """The logged-in person as the web layer sees them (not the ORM row)."""

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.role = user.role
        self.display_name = user.display_name
        self.session_epoch = user.session_epoch
        self.actor: Actor = accounts.actor_for(user)

    def get_id(self) -> str:
        # The epoch is part of the id: bumping it (password change, disable, "log out
        # everywhere") invalidates every existing session cookie at once.
        return f"{self.id}.{self.session_epoch}"


def init_login(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in."
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def _load(session_id: str) -> SessionUser | None:
        user_id, _, epoch = session_id.partition(".")
        if not user_id.isdigit() or not epoch.isdigit():
            return None
        user = db.session.scalars(
            sa.select(User)
            .where(User.id == int(user_id))
            .options(selectinload(User.patient), selectinload(User.clinician))
        ).first()
        if user is None or not user.is_active or user.session_epoch != int(epoch):
            return None
        if _session_expired():
            return None
        return SessionUser(user)


def _session_expired() -> bool:
    """Idle and absolute limits (ASVS 3.3): checked on every request, renewed when active."""
    settings = current_app.config["REHAB_SETTINGS"]
    now = time.time()
    started = session.get("started_at", now)
    last_seen = session.get("last_seen", now)
    if now - started > settings.session_absolute_minutes * 60:
        return True
    if now - last_seen > settings.session_idle_minutes * 60:
        return True
    session["last_seen"] = now
    return False


def home_for(role: Role) -> str:
    return {
        Role.PATIENT: url_for("patient.today"),
        Role.CLINICIAN: url_for("clinic.caseload"),
        Role.ADMIN: url_for("admin.index"),
    }[role]


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


def _login_limit() -> str:
    return str(current_app.config["REHAB_SETTINGS"].login_rate_limit)


def _email_key() -> str:
    return "login:" + (request.form.get("email", "") or "").strip().lower()[:254]


@bp.route("/", methods=["GET"])
def index() -> Any:
    if current_user.is_authenticated:
        return redirect(home_for(current_user.role))
    return redirect(url_for("auth.login"))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, key_func=_email_key, methods=["POST"])
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(db.session, form.email.data or "", form.password.data or "")
        if user is None:
            audit.record(db.session, Actor(None, None), "login", None, AuditOutcome.DENIED)
            # One message for unknown e-mail, wrong password and disabled account.
            flash("E-mail or password is not right.", "error")
            return render_template("auth/login.html", form=form), 200
        session.clear()  # a fresh session at login (no fixation)
        session["started_at"] = session["last_seen"] = time.time()
        login_user(SessionUser(user))
        audit.record(db.session, accounts.actor_for(user), "login", None)
        db.session.commit()
        return redirect(home_for(user.role))
    return render_template("auth/login.html", form=form)


class LogoutForm(FlaskForm):
    pass


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Any:
    form = LogoutForm()
    if form.validate_on_submit():
        audit.record(db.session, current_user.actor, "logout", None)
        logout_user()
        session.clear()
    return redirect(url_for("auth.login"))


class SetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password (at least 12 characters)", validators=[DataRequired(), Length(max=256)]
    )
    confirm = PasswordField("Repeat it", validators=[DataRequired(), Length(max=256)])


@bp.route("/welcome/<token>", methods=["GET", "POST"])
def set_password(token: str) -> Any:
    settings = current_app.config["REHAB_SETTINGS"]
    try:
        user = accounts.user_for_invite(
            db.session, token, current_app.config["SECRET_KEY"], settings.invite_valid_hours
        )
    except InvalidInput as exc:
        return render_template("auth/invalid_link.html", message=exc.message), 400
    form = SetPasswordForm()
    if form.validate_on_submit():
        if form.password.data != form.confirm.data:
            form.confirm.errors = ["The two passwords differ."]
        else:
            try:
                accounts.set_password(db.session, user, form.password.data or "")
            except InvalidInput as exc:
                form.password.errors = [exc.message]
            else:
                audit.record(db.session, accounts.actor_for(user), "password.set", None)
                db.session.commit()
                flash("Your password is set. Please log in.", "info")
                return redirect(url_for("auth.login"))
    return render_template("auth/set_password.html", form=form, user=user)
