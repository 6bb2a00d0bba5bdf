"""Login (password, then TOTP for clinicians and admins), logout, one-time set-password
links, changing one's own password; the logged-in user for every page."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
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
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from rehab.db.models import User
from rehab.domain.vocabulary import Role
from rehab.extensions import db, limiter, login_manager
from rehab.services import account_settings, accounts, audit, sessions, two_factor
from rehab.services import login as login_service
from rehab.services.actors import Actor
from rehab.services.commands import EmailChangeInput, InvalidInput
from rehab.web.forms import FormInvalid, build, show_service_error

bp = Blueprint("auth", __name__)

# The password step stays valid this long for the second factor to follow.
PENDING_SECONDS = 300


class SessionUser(UserMixin):
    """The logged-in person as the web layer sees them (not the ORM row)."""

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.role = user.role
        self.display_name = user.display_name
        self.email = user.email
        self.session_epoch = user.session_epoch
        self.actor: Actor = accounts.actor_for(user)

    def get_id(self) -> str:
        # The epoch is part of the id: bumping it ends every session of the user at once.
        return f"{self.id}.{self.session_epoch}"


def init_login(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in."

    @login_manager.user_loader
    def _load(session_id: str) -> SessionUser | None:
        user_id, _, epoch = session_id.partition(".")
        token = session.get("sid")
        if not user_id.isdigit() or not epoch.isdigit() or not isinstance(token, str):
            return None
        settings = current_app.config["REHAB_SETTINGS"]
        # Server-side: ended sessions (logout, disable) and idle/expired ones are refused
        # whatever the browser still holds (ASVS 3.3).
        if not sessions.is_valid(
            db.session,
            int(user_id),
            token,
            idle=dt.timedelta(minutes=settings.session_idle_minutes),
            absolute=dt.timedelta(minutes=settings.session_absolute_minutes),
        ):
            return None
        user = db.session.scalars(
            sa.select(User)
            .where(User.id == int(user_id))
            .options(selectinload(User.patient), selectinload(User.clinician))
        ).first()
        if user is None or not user.is_active or user.session_epoch != int(epoch):
            return None
        return SessionUser(user)


def home_for(role: Role) -> str:
    return {
        Role.PATIENT: url_for("patient.today"),
        Role.CLINICIAN: url_for("clinic.caseload"),
        Role.ADMIN: url_for("admin.index"),
    }[role]


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class SecondFactorForm(FlaskForm):
    code = StringField(
        "6-digit code from your authenticator app", validators=[DataRequired(), Length(max=8)]
    )


class ForgotPasswordForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])


class LogoutForm(FlaskForm):
    pass


def _repeated(label: str) -> PasswordField:
    """The new password typed twice: the second must match the first."""
    return PasswordField(
        label,
        validators=[
            DataRequired(),
            Length(max=256),
            EqualTo("password", message="The two passwords differ."),
        ],
    )


class SetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password (at least 12 characters)", validators=[DataRequired(), Length(max=256)]
    )
    confirm = _repeated("Repeat it")


class CurrentPasswordForm(FlaskForm):
    """A change to the login asks for the current password first."""

    current_password = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=256)]
    )


class ChangePasswordForm(CurrentPasswordForm, SetPasswordForm):
    confirm = _repeated("Repeat the new password")


# The address form shares its page with the password form: its fields' names and ids are
# prefixed ("address-current_password"), so that each label points at its own input.
ADDRESS_PREFIX = "address"


class ChangeEmailForm(CurrentPasswordForm):
    email = EmailField("New login address", validators=[DataRequired(), Length(max=254)])


class ConfirmEmailForm(FlaskForm):
    """A link followed from an e-mail changes nothing until this is sent."""

    password = PasswordField(
        "The password of your rehab account", validators=[DataRequired(), Length(max=256)]
    )


def _login_limit() -> str:
    return str(current_app.config["REHAB_SETTINGS"].login_rate_limit)


def _email_key_for(purpose: str) -> Callable[[], str]:
    """flask-limiter's key for a form's e-mail address (each purpose counted apart)."""

    def key() -> str:
        return f"{purpose}:" + (request.form.get("email", "") or "").strip().lower()[:254]

    return key


_email_key = _email_key_for("login")
_reset_email_key = _email_key_for("reset")


def _pending_key() -> str:
    return f"2fa:{session.get('pending_user', '')}"


def _account_key() -> str:
    return f"account:{current_user.get_id() if current_user.is_authenticated else ''}"


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
        outcome = login_service.check_password(
            db.session,
            form.email.data or "",
            form.password.data or "",
            totp_required=current_app.config["REHAB_SETTINGS"].totp_required,
        )
        if outcome.user is None:
            db.session.commit()  # the failure count and the audit rows
            # One answer for unknown e-mail, wrong password, locked or disabled account.
            flash("E-mail or password is not right.", "error")
            return render_template("auth/login.html", form=form), 200
        if outcome.needs_second_factor:
            session.clear()
            session["pending_user"] = outcome.user.id
            session["pending_since"] = time.time()
            db.session.commit()
            return redirect(url_for("auth.second_factor"))
        return _complete_login(outcome.user)
    return render_template("auth/login.html", form=form)


@bp.route("/login/two-factor", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, key_func=_pending_key, methods=["POST"])
def second_factor() -> Any:
    user_id = session.get("pending_user")
    since = float(session.get("pending_since", 0))
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.is_active or time.time() - since > PENDING_SECONDS:
        # Drop only the login under way: a GET here must not end a session already open.
        for key in ("pending_user", "pending_since", "enrol_secret"):
            session.pop(key, None)
        flash("Please log in again.", "error")
        return redirect(url_for("auth.login"))
    enrolling = user.totp_secret is None
    # A new secret lives in the signed session until a code proves the app holds it.
    secret = session.setdefault("enrol_secret", two_factor.new_secret()) if enrolling else None
    secret = secret or user.totp_secret or ""
    form = SecondFactorForm()
    status = 200
    if form.validate_on_submit():
        if login_service.check_second_factor(db.session, user, secret, form.code.data or ""):
            return _complete_login(user)
        db.session.commit()
        form.code.errors = ["That code is not right or was already used; wait for the next one."]
        status = 422
    uri = two_factor.provisioning_uri(user, secret) if enrolling else None
    return (
        render_template(
            "auth/two_factor.html",
            form=form,
            enrolling=enrolling,
            secret=secret if enrolling else None,
            qr=two_factor.qr_data_uri(uri) if uri else None,
        ),
        status,
    )


def _fresh_session(user: User) -> None:
    """A new server-side session for this browser (no fixation); the caller commits."""
    session.clear()
    session["sid"] = sessions.start(db.session, user.id)
    login_user(SessionUser(user))


def _complete_login(user: User) -> Any:
    _fresh_session(user)
    audit.record(db.session, accounts.actor_for(user), "login", None)
    db.session.commit()
    return redirect(home_for(user.role))


def _account_page(
    password_form: ChangePasswordForm | None = None,
    email_form: ChangeEmailForm | None = None,
    status: int = 200,
) -> Any:
    """Her login: the address (and a change waiting for its confirmation) and the password."""
    return (
        render_template(
            "auth/change_password.html",
            form=password_form or ChangePasswordForm(formdata=None),
            email_form=email_form or ChangeEmailForm(formdata=None, prefix=ADDRESS_PREFIX),
            waiting=account_settings.waiting_email_change(db.session, current_user.actor),
            valid_hours=accounts.EMAIL_CHANGE_VALID_HOURS,
        ),
        status,
    )


# One budget for every change to the login of an account, whichever the page (a session
# guessing the current password gets no more tries than a login form).
_account_change_limit = limiter.shared_limit(
    _login_limit, scope="account-change", key_func=_account_key, methods=["POST"]
)


def _refused(form: FlaskForm, exc: InvalidInput) -> None:
    """Show a service's refusal next to its field; a wrong password is committed first, so
    that it counts towards the lockout (the error answer rolls back what is not)."""
    if isinstance(exc, login_service.WrongPassword):
        audit.commit(db.session)
    show_service_error(form, exc)


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@_account_change_limit
def change_password() -> Any:
    """Anyone logged in changes her password, knowing the current one; every other session
    and every API and device key ends, this browser gets a fresh session, and her address
    gets a notice. (GET: the page of her login, address and password.)"""
    form = ChangePasswordForm()
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                user = account_settings.change_password(
                    db.session,
                    current_user.actor,
                    form.current_password.data or "",
                    form.password.data or "",
                )
            except InvalidInput as exc:
                _refused(form, exc)
            else:
                _fresh_session(user)
                audit.commit(db.session)
                flash(
                    "Your password is changed. Every other device was logged out, and every"
                    " app and API key stopped working: make a new one where you need it.",
                    "success",
                )
                return redirect(url_for("auth.change_password"), 303)
        return _account_page(password_form=form, status=422)
    return _account_page()


@bp.route("/account/email", methods=["POST"])
@login_required
@_account_change_limit
def change_email() -> Any:
    """Ask for a new login address, knowing the current password: a message goes to the new
    address, and the login stays as it is until the link in it is followed."""
    form = ChangeEmailForm(prefix=ADDRESS_PREFIX)
    if form.validate_on_submit():
        try:
            data = build(EmailChangeInput, {"email": form.email.data or ""}, form)
            change = account_settings.request_email_change(
                db.session, current_user.actor, form.current_password.data or "", data
            )
        except FormInvalid:
            pass
        except InvalidInput as exc:
            _refused(form, exc)
        else:
            audit.commit(db.session)
            flash(
                f"A message went to {change.new_email}: follow the link in it, within"
                f" {accounts.EMAIL_CHANGE_VALID_HOURS} hours, to make it your login. Until"
                " then your login stays as it is.",
                "success",
            )
            return redirect(url_for("auth.change_password"), 303)
    return _account_page(email_form=form, status=422)


def _unusable_email_link(message: str, status: int) -> Any:
    return render_template("auth/invalid_link.html", message=message, email_change=True), status


@bp.route("/account/email/<token>", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def confirm_email(token: str) -> Any:
    """The link sent to a new login address. GET shows what it confirms (mail scanners
    follow links); confirming asks for the account's password (whoever owns a mistyped
    address does not know it)."""
    try:
        change = accounts.email_change_for_link(db.session, token, current_app.config["SECRET_KEY"])
    except InvalidInput as exc:
        return _unusable_email_link(exc.message, 400)
    form = ConfirmEmailForm()
    if form.validate_on_submit():
        try:
            account_settings.confirm_email_change(db.session, change, form.password.data or "")
            audit.commit(db.session)
        except login_service.WrongPassword as exc:
            _refused(form, exc)
        except InvalidInput as exc:
            if exc.field == "token":
                return _unusable_email_link(exc.message, 400)
            return _unusable_email_link(f"that address {exc.message}", 409)
        except IntegrityError:  # another account took the address at this very moment
            db.session.rollback()
            audit.discard_pending()
            return _unusable_email_link("that address is registered to another account", 409)
        else:
            flash(f"Your login address is now {change.new_email}.", "success")
            return redirect(url_for("auth.index"))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/confirm_email.html", form=form, change=change), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Any:
    form = LogoutForm()
    if form.validate_on_submit():
        audit.record(db.session, current_user.actor, "logout", None)
        token = session.get("sid")
        if isinstance(token, str):
            sessions.end(db.session, token)
        logout_user()
        session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/welcome/<token>", methods=["GET", "POST"])
def set_password(token: str) -> Any:
    """The invitation's one-time link (a clinician or an admin hands it over)."""
    hours = current_app.config["REHAB_SETTINGS"].invite_valid_hours
    return _password_link(token, accounts.INVITE, hours * 3600, "password.set")


@bp.route("/login/forgot", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, key_func=_reset_email_key, methods=["POST"])
def forgot_password() -> Any:
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        login_service.request_password_reset(db.session, form.email.data or "")
        db.session.commit()  # the outbox row, then its delivery task (after the commit)
        # One answer whether or not the address has an account.
        minutes = current_app.config["REHAB_SETTINGS"].password_reset_valid_minutes
        return render_template("auth/forgot_password_sent.html", minutes=minutes)
    return render_template("auth/forgot_password.html", form=form), 422 if form.errors else 200


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Any:
    """The e-mailed one-time link of "Forgot your password?"."""
    minutes = current_app.config["REHAB_SETTINGS"].password_reset_valid_minutes
    return _password_link(token, accounts.PASSWORD_RESET, minutes * 60, "password.reset")


def _password_link(token: str, purpose: str, max_age_seconds: int, action: str) -> Any:
    """A one-time link's page: choose a password; every session and API key of the account
    ends."""
    try:
        user = accounts.user_for_link(
            db.session, token, current_app.config["SECRET_KEY"], max_age_seconds, purpose
        )
    except InvalidInput as exc:
        return render_template("auth/invalid_link.html", message=exc.message), 400
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            login_service.choose_password(db.session, user, form.password.data or "", action)
        except InvalidInput as exc:
            form.password.errors = [exc.message]
        else:
            db.session.commit()
            flash("Your password is set. Please log in.", "info")
            return redirect(url_for("auth.login"))
    return render_template(
        "auth/set_password.html", form=form, user=user, reset=purpose == accounts.PASSWORD_RESET
    )
