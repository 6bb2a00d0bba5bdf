"""One's own API keys (per-device bearer tokens), as two pages offer them: the patient's
account page (an app on her phone sends her logs) and the clinician's settings (an
integration reads her care teams' patients through `/api/v1`). The rules, the audit and the
storage (only a hash) are `services.account_settings`'."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template

from rehab.extensions import db
from rehab.services import account_settings
from rehab.services.access import NotFound
from rehab.services.actors import Actor
from rehab.services.commands import InvalidInput
from rehab.web.forms import ActionForm, DeviceTokenForm, FormInvalid, build, show_service_error


def create_from_form(actor: Actor) -> tuple[DeviceTokenForm, str | None]:
    """The posted form, and the new key's clear value (shown once) when it was created."""
    form = DeviceTokenForm()
    if form.validate():
        try:
            data = build(
                account_settings.DeviceTokenInput, {"device_name": form.device_name.data}, form
            )
            return form, account_settings.create_device_token(db.session, actor, data)
        except FormInvalid:
            pass
        except InvalidInput as exc:
            show_service_error(form, exc)
    return form, None


def revoke_from_form(actor: Actor, token_id: int) -> None:
    """Revoke one of the actor's keys: 400 without a valid form, 404 for anyone else's."""
    if not ActionForm().validate():
        abort(400)
    try:
        account_settings.revoke_device_token(db.session, actor, token_id)
    except NotFound:
        abort(404)


def page(
    template: str,
    actor: Actor,
    form: DeviceTokenForm | None = None,
    new_key: str | None = None,
    status: int = 200,
    **context: Any,
) -> Any:
    """A page with the keys section (`_api_keys.html`): the list, the form, a new key once."""
    return (
        render_template(
            template,
            token_form=form or DeviceTokenForm(formdata=None),
            tokens=account_settings.list_device_tokens(db.session, actor),
            new_token=new_key,
            new_token_name=(form.device_name.data or "").strip() if (form and new_key) else None,
            **context,
        ),
        status,
    )
