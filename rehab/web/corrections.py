"""Marking an entry entered in error from a page: the clinician's (any event, finding or
score of her care team's patients) and the patient's (an event she logged herself)."""

from __future__ import annotations

from rehab.extensions import db
from rehab.services import clinical
from rehab.services.actors import Actor
from rehab.services.commands import InvalidInput
from rehab.web.forms import EnteredInErrorForm, FormInvalid, show_service_error


def mark_from_form(form: EnteredInErrorForm, actor: Actor, row: clinical.Correctable) -> bool:
    """A POST's form, for a row `clinical.correctable_record` checked: True once marked;
    otherwise the errors are on the form."""
    if not form.validate():
        return False
    try:
        clinical.mark_entered_in_error(db.session, actor, row, form.to_command())
    except FormInvalid:
        return False
    except InvalidInput as exc:
        show_service_error(form, exc)
        db.session.refresh(row)  # (marked meanwhile: the page shows that mark)
        return False
    return True
