"""WTForms classes of the HTML pages, and their conversion to the services' pydantic commands.

WTForms checks what a browser can get wrong (a number that is not a number, a missing choice,
the CSRF token); the commands in `rehab.services.commands` hold the rules shared with the JSON
API. The form fields carry the commands' field names, so an error raised by either (or by a
service, as `InvalidInput(field, ...)`) is shown next to its field by `attach_errors`.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from flask_wtf import FlaskForm
from pydantic import BaseModel, ValidationError
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    FieldList,
    FloatField,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.fields.core import Field
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, HiddenInput, ListWidget

from rehab.db.models import Exercise, Program
from rehab.domain.questionnaires import ODI_MAX_PER_SECTION, ODI_SECTIONS, PSFS_MAX_ACTIVITIES
from rehab.domain.vocabulary import (
    RED_FLAG_LABELS,
    EventType,
    FallLocation,
    FindingKind,
    ImagingModality,
    Instrument,
    LandedOn,
    NeurodynamicTest,
    Role,
    Side,
    TestResult,
    humanize,
)
from rehab.services.baselines import PinInput
from rehab.services.clinic_policy import TEXT as POLICY_TEXT
from rehab.services.commands import (
    EndProgramInput,
    EnteredInErrorInput,
    EventInput,
    FindingInput,
    HandOverInput,
    InvalidInput,
    OutcomeInput,
    PatientDetailsInput,
    PatientInput,
    ProgramInput,
    PsfsActivity,
    PsfsRatingsInput,
    SessionLogInput,
    error_list,
)

M = TypeVar("M", bound=BaseModel)

PROGRAM_PHASE_ROWS = 3
PROGRAM_EXERCISE_ROWS = 12

FALL_LOCATION_LABELS = {
    FallLocation.STAIRS: "Stairs",
    FallLocation.LEVEL_GROUND: "Level ground (tripped or slipped)",
    FallLocation.FROM_HEIGHT: "From a height (ladder, chair, wall)",
    FallLocation.ICE_OR_WET: "Ice or a wet floor",
    FallLocation.OTHER: "Other",
}
IMAGING_LABELS = {
    ImagingModality.MRI: "MRI",
    ImagingModality.CT: "CT",
    ImagingModality.XRAY: "X-ray",
    ImagingModality.ULTRASOUND: "Ultrasound",
}
EVENT_TYPE_LABELS = {t: humanize(t.value) for t in EventType}


def enum_choices(
    enum: Iterable[StrEnum], labels: Mapping[Any, str] | None = None, blank: str | None = None
) -> list[SelectChoice]:
    choices = [SelectChoice("", blank)] if blank is not None else []
    return choices + [SelectChoice(m.value, (labels or {}).get(m, humanize(m.value))) for m in enum]


def choice_list(pairs: Iterable[tuple[Any, str]]) -> list[SelectChoice]:
    return [SelectChoice(str(value), label) for value, label in pairs]


def new_client_id() -> str:
    return uuid.uuid4().hex


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


PAIN_MESSAGE = "Choose a number from 0 to 10."


def pain_field(label: str) -> RadioField:
    return RadioField(
        label,
        choices=choice_list((i, str(i)) for i in range(11)),
        coerce=int,
        # The range check below gives the message; the choice check would only say "invalid".
        validate_choice=False,
        validators=[InputRequired(PAIN_MESSAGE), NumberRange(0, 10, PAIN_MESSAGE)],
    )


# --- errors -------------------------------------------------------------------------------


def attach_errors(
    form: Form,
    errors: Iterable[Mapping[str, str]],
    index_maps: Mapping[str, Sequence[int]] | None = None,
) -> None:
    """Show each `{"field": "a.0.b", "message": ...}` next to its form field.

    `index_maps` translates list positions of the command back to form rows (the command
    holds only the rows that were filled in). Unknown fields become form-level errors.
    """
    for error in errors:
        field = _resolve(form, error["field"], index_maps or {})
        if field is None:
            form.form_errors.append(error["message"])
            continue
        if isinstance(field.errors, tuple):
            field.errors = list(field.errors)
        if error["message"] not in field.errors:
            field.errors.append(error["message"])


_SMALL_INT = re.compile(r"[0-9]{1,9}")


def small_int(raw: str) -> int | None:
    """A form's whole number in ASCII digits, or None: `str.isdigit` also accepts "²" and
    other digits `int` refuses, and a 5,000-digit number is no choice of ours either."""
    return int(raw) if _SMALL_INT.fullmatch(raw) else None


class RowList(FieldList):
    """WTForms' `FieldList` reading row numbers with `small_int`: its own reading takes any
    key whose row part passes `str.isdigit` ("exercises-²-done") to `int`, which raises
    while the form is being built, before validation or the access check (a 500)."""

    def _extract_indices(self, prefix: str, formdata: Any) -> Iterator[int]:
        offset = len(prefix) + 1
        for key in formdata:
            if key.startswith(prefix):
                number = small_int(key[offset:].split(self._field_separator, 1)[0])
                if number is not None:
                    yield number


def _resolve(form: Form, path: str, index_maps: Mapping[str, Sequence[int]]) -> Field | None:
    parts = path.split(".")
    node: Any = form
    for i, part in enumerate(parts):
        if isinstance(node, FieldList):
            number = small_int(part)
            if number is None:
                return None
            index = number
            mapping = index_maps.get(parts[i - 1]) if i > 0 else None
            if mapping is not None:
                if index >= len(mapping):
                    return None
                index = mapping[index]
            if index >= len(node.entries):
                return None
            node = node.entries[index]
            continue
        if isinstance(node, FormField):
            node = node.form
        if not isinstance(node, Form) or part not in node._fields:
            return None
        node = node._fields[part]
    if isinstance(node, (FormField, FieldList)):
        return None  # about the whole group: shown at the top of the form
    return node if isinstance(node, Field) else None


class FormInvalid(Exception):
    """The form's values break a command rule; the errors are attached to the form."""


def build(
    model: type[M],
    data: Mapping[str, Any],
    form: Form,
    index_maps: Mapping[str, Sequence[int]] | None = None,
    prefix: str = "",
) -> M:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        errors = error_list(exc)
        if prefix:
            errors = [{**e, "field": prefix + e["field"]} for e in errors]
        attach_errors(form, errors, index_maps)
        raise FormInvalid from None


def show_service_error(
    form: Form, exc: InvalidInput, index_maps: Mapping[str, Sequence[int]] | None = None
) -> None:
    attach_errors(form, [{"field": exc.field, "message": exc.message}], index_maps)


def _field_has_errors(field: Field) -> bool:
    if isinstance(field, FieldList):
        return any(_field_has_errors(entry) for entry in field.entries)
    if isinstance(field, FormField):
        return _form_has_errors(field.form)
    return bool(field.errors)


def _form_has_errors(form: Form) -> bool:
    return bool(form.form_errors) or any(_field_has_errors(f) for f in form)


class PageForm(FlaskForm):
    """A form of the HTML pages: knows whether any field, however nested, has an error
    (WTForms' FieldList collects its entries' errors only while validating)."""

    def has_errors(self) -> bool:
        return _form_has_errors(self)


# --- simple forms ---------------------------------------------------------------------------


class ActionForm(PageForm):
    """A bare POST button (revoke, disable, remove): the CSRF token is its only field."""


# --- daily log ----------------------------------------------------------------------------


class ExerciseRowForm(Form):
    prescription_id = IntegerField(widget=HiddenInput(), validators=[InputRequired()])
    done = BooleanField("Done")
    sets_done = IntegerField("Sets", validators=[Optional(), NumberRange(0, 50)])
    reps_done = IntegerField("Reps", validators=[Optional(), NumberRange(0, 500)])


class SessionLogForm(PageForm):
    client_id = HiddenField(validators=[DataRequired(), Length(max=64)])
    # The day the page was opened for (`logs.web_log_is_late` says whether it still may be).
    log_date = DateField(widget=HiddenInput(), validators=[Optional()])
    exercises = RowList(FormField(ExerciseRowForm), max_entries=50)
    back_pain = pain_field("Back pain")
    leg_pain = pain_field("Leg pain")
    leg_side = RadioField(
        "Which leg?",
        choices=enum_choices(Side),
        validate_choice=False,
        filters=[_blank_to_none],
    )
    pain_location = StringField(
        "Where exactly? (optional, e.g. buttock, calf)",
        validators=[Optional(), Length(max=80)],
        filters=[_blank_to_none],
    )
    red_flags = MultiCheckboxField(
        "Any of these since yesterday?",
        choices=choice_list((flag.value, label) for flag, label in RED_FLAG_LABELS.items()),
    )
    note = TextAreaField("Note (optional)", validators=[Length(max=2000)])

    def set_day(self, day: dt.date) -> None:
        """The day the page is for, also over a posted one (the field shows what was posted
        before its data)."""
        self.log_date.data = day
        self.log_date.raw_data = None

    def to_command(self, log_date: dt.date) -> SessionLogInput:
        entries = []
        for row in self.exercises.entries:
            done = bool(row.form.done.data)
            entries.append(
                {
                    "prescription_id": row.form.prescription_id.data,
                    "done": done,
                    # Unticked: nothing was done, whatever the prefilled numbers say.
                    "sets_done": (row.form.sets_done.data or 0) if done else 0,
                    "reps_done": (row.form.reps_done.data or 0) if done else 0,
                }
            )
        return build(
            SessionLogInput,
            {
                "client_id": self.client_id.data,
                "log_date": log_date,
                "back_pain": self.back_pain.data,
                "leg_pain": self.leg_pain.data,
                "leg_side": self.leg_side.data,
                "pain_location": self.pain_location.data,
                "red_flags": list(self.red_flags.data or []),
                "exercises": entries,
                "note": self.note.data or "",
            },
            self,
        )


# --- events -------------------------------------------------------------------------------


class EventForm(PageForm):
    client_id = HiddenField(validators=[DataRequired(), Length(max=64)])
    event_type = SelectField(
        "What happened?",
        choices=enum_choices(EventType, EVENT_TYPE_LABELS, blank="Choose…"),
        validators=[InputRequired("Choose what happened.")],
        validate_choice=False,
        filters=[_blank_to_none],
    )
    event_date = DateField("When?", validators=[InputRequired("Give the date.")])
    side = SelectField(
        "Side (for a fall: the side that hurts or that you landed on)",
        choices=enum_choices(Side, blank="Not one side / not applicable"),
        validate_choice=False,
        filters=[_blank_to_none],
    )
    body_region = StringField(
        "Body region (optional, e.g. lower back, left buttock)",
        validators=[Optional(), Length(max=80)],
        filters=[_blank_to_none],
    )
    description = TextAreaField("What happened, in your words", validators=[Length(max=2000)])
    fall_location = SelectField(
        "Where did you fall?",
        choices=enum_choices(FallLocation, FALL_LOCATION_LABELS, blank="Choose…"),
        validate_choice=False,
        filters=[_blank_to_none],
    )
    fall_steps = IntegerField(
        "How many steps did you fall down?", validators=[Optional(), NumberRange(1, 200)]
    )
    fall_height_cm = IntegerField(
        "Or from what height (cm)?", validators=[Optional(), NumberRange(1, 2000)]
    )
    fall_landed_on = SelectField(
        "What landed first?",
        choices=enum_choices(LandedOn, blank="Choose…"),
        validate_choice=False,
        filters=[_blank_to_none],
    )

    FALL_FIELDS = ("fall_location", "fall_steps", "fall_height_cm", "fall_landed_on")

    def to_command(self) -> EventInput:
        is_fall = self.event_type.data == EventType.FALL.value
        data: dict[str, Any] = {
            "client_id": self.client_id.data,
            "event_date": self.event_date.data,
            "event_type": self.event_type.data,
            "side": self.side.data,
            "body_region": self.body_region.data,
            "description": self.description.data or "",
        }
        # Fall details typed before switching to another type are dropped, not an error.
        for name in self.FALL_FIELDS:
            data[name] = self[name].data if is_fall else None
        return build(EventInput, data, self)


# --- clinician forms ------------------------------------------------------------------------


class PatientDetailsForm(PageForm):
    display_name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    year_of_birth = IntegerField(
        "Year of birth (optional)", validators=[Optional(), NumberRange(1900, 2100)]
    )
    condition_summary = TextAreaField(
        "Condition summary (e.g. left L5 radiculopathy after L4-L5 decompression)",
        validators=[Length(max=300)],
    )

    def details(self) -> dict[str, Any]:
        return {
            "display_name": self.display_name.data or "",
            "email": self.email.data or "",
            "year_of_birth": self.year_of_birth.data,
            "condition_summary": (self.condition_summary.data or "").strip(),
        }

    def to_command(self) -> PatientDetailsInput:
        return build(PatientDetailsInput, self.details(), self)


class PatientForm(PatientDetailsForm):
    care_team_id = SelectField("Care team", coerce=int, validators=[InputRequired()])

    def to_command(self) -> PatientInput:
        return build(PatientInput, {**self.details(), "care_team_id": self.care_team_id.data}, self)


class HandOverForm(PageForm):
    care_team_id = SelectField("Hand over to", coerce=int, validators=[InputRequired()])

    def to_command(self) -> HandOverInput:
        return build(HandOverInput, {"care_team_id": self.care_team_id.data}, self)


class PhaseRowForm(Form):
    name = StringField("Phase name", validators=[Optional(), Length(max=80)])
    start_date = DateField("Starts", validators=[Optional()])
    goals = TextAreaField("Goals", validators=[Optional(), Length(max=2000)])


class PrescriptionRowForm(Form):
    exercise_id = SelectField("Exercise", choices=[], validate_choice=False)
    sets = IntegerField("Sets", validators=[Optional(), NumberRange(1, 20)])
    reps = IntegerField("Reps", validators=[Optional(), NumberRange(1, 200)])
    hold_seconds = IntegerField("Hold (s)", validators=[Optional(), NumberRange(0, 600)])
    sessions_per_week = IntegerField("Per week", validators=[Optional(), NumberRange(1, 14)])
    notes = StringField("Notes", validators=[Optional(), Length(max=2000)])


class ProgramForm(PageForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=120)])
    start_date = DateField("Start date", validators=[InputRequired()])
    end_date = DateField("End date (optional)", validators=[Optional()])
    phases = RowList(
        FormField(PhaseRowForm),
        min_entries=PROGRAM_PHASE_ROWS,
        max_entries=PROGRAM_PHASE_ROWS,
    )
    prescriptions = RowList(
        FormField(PrescriptionRowForm),
        min_entries=PROGRAM_EXERCISE_ROWS,
        max_entries=PROGRAM_EXERCISE_ROWS,
    )

    def adjust(self, current: Program) -> bool:
        """Start from the program in effect: its title and exercises with their doses, to
        change what changes (phases start anew). False, and nothing filled in, if it has more
        exercises than the form has rows (a part of it would be dropped unseen)."""
        if len(current.prescriptions) > len(self.prescriptions.entries):
            return False
        self.title.data = current.title
        for row, item in zip(self.prescriptions.entries, current.prescriptions, strict=False):
            form = row.form
            form.exercise_id.data = str(item.exercise_id)
            form.sets.data = item.sets
            form.reps.data = item.reps
            form.hold_seconds.data = item.hold_seconds
            form.sessions_per_week.data = item.sessions_per_week
            form.notes.data = item.notes
        return True

    def set_library(self, library: Sequence[Exercise]) -> None:
        choices = choice_list(
            [("", "—")] + [(e.id, f"{e.name} ({e.body_region})") for e in library]
        )
        for row in self.prescriptions.entries:
            row.form.exercise_id.choices = choices

    def to_command(self, library: Mapping[int, Exercise]) -> ProgramInput:
        phases, phase_rows = [], []
        for index, row in enumerate(self.phases.entries):
            f = row.form
            if not (f.name.data or "").strip():
                if f.start_date.data or (f.goals.data or "").strip():
                    f.name.errors = ["Give the phase a name (or clear the row)."]
                continue
            phases.append(
                {"name": f.name.data, "start_date": f.start_date.data, "goals": f.goals.data or ""}
            )
            phase_rows.append(index)
        items, item_rows = [], []
        for index, row in enumerate(self.prescriptions.entries):
            f = row.form
            raw = (f.exercise_id.data or "").strip()
            if not raw:
                continue
            number = small_int(raw)
            exercise = library.get(number) if number is not None else None
            if exercise is None:
                f.exercise_id.errors = ["Choose an exercise from the library."]
                continue
            items.append(
                {
                    "exercise_id": exercise.id,
                    "sets": f.sets.data if f.sets.data is not None else exercise.default_sets,
                    "reps": f.reps.data if f.reps.data is not None else exercise.default_reps,
                    "hold_seconds": (
                        f.hold_seconds.data
                        if f.hold_seconds.data is not None
                        else exercise.default_hold_seconds
                    ),
                    "sessions_per_week": f.sessions_per_week.data or 7,
                    "notes": (f.notes.data or "").strip(),
                }
            )
            item_rows.append(index)
        if any(self._row_errors()):
            raise FormInvalid
        maps = {"phases": phase_rows, "prescriptions": item_rows}
        if not items:
            self.form_errors.append("Pick at least one exercise.")
            raise FormInvalid
        return build(
            ProgramInput,
            {
                "title": self.title.data or "",
                "start_date": self.start_date.data,
                "end_date": self.end_date.data,
                "phases": phases,
                "prescriptions": items,
            },
            self,
            maps,
        )

    def index_maps(self) -> dict[str, list[int]]:
        """Form rows of the filled-in phases and exercises (for service errors)."""
        return {
            "phases": [
                i for i, r in enumerate(self.phases.entries) if (r.form.name.data or "").strip()
            ],
            "prescriptions": [
                i
                for i, r in enumerate(self.prescriptions.entries)
                if (r.form.exercise_id.data or "").strip()
            ],
        }

    def _row_errors(self) -> Iterable[bool]:
        for row in [*self.phases.entries, *self.prescriptions.entries]:
            yield any(bool(field.errors) for field in row.form)


class TestRowForm(Form):
    __test__ = False  # not a pytest class despite the name

    test_name = HiddenField()
    side = SelectField("Side", choices=enum_choices(Side, blank="—"), validate_choice=False)
    result = SelectField(
        "Result",
        choices=enum_choices(TestResult, blank="Not tested"),
        validate_choice=False,
    )


class FindingsForm(PageForm):
    finding_date = DateField("Assessment date", validators=[InputRequired()])
    tests = RowList(FormField(TestRowForm), max_entries=len(NeurodynamicTest))
    imaging_modality = SelectField(
        "Imaging",
        choices=enum_choices(ImagingModality, IMAGING_LABELS, blank="No imaging"),
        validate_choice=False,
    )
    imaging_region = StringField(
        "Imaged region (e.g. lumbar spine, pelvis and gluteal soft tissue)",
        validators=[Optional(), Length(max=80)],
    )
    imaging_text = TextAreaField("Imaging result", validators=[Optional(), Length(max=2000)])
    observation_region = StringField(
        "Observed region (optional)", validators=[Optional(), Length(max=80)]
    )
    observation_text = TextAreaField("Observation", validators=[Optional(), Length(max=2000)])

    def fill_tests(self) -> None:
        """One row per neurodynamic test, in the vocabulary's order."""
        while len(self.tests.entries) < len(NeurodynamicTest):
            self.tests.append_entry()
        for row, test in zip(self.tests.entries, NeurodynamicTest, strict=False):
            row.form.test_name.data = test.value

    def test_label(self, index: int) -> str:
        value = self.tests.entries[index].form.test_name.data or ""
        return humanize(value) if value in NeurodynamicTest._value2member_map_ else value

    def to_commands(self) -> list[FindingInput]:
        day = self.finding_date.data
        items: list[FindingInput] = []
        failed = False
        for index, row in enumerate(self.tests.entries):
            f = row.form
            if not f.result.data:
                if f.side.data:
                    f.result.errors = ["Choose a result (or clear the side)."]
                    failed = True
                continue
            try:
                items.append(
                    build(
                        FindingInput,
                        {
                            "finding_date": day,
                            "kind": FindingKind.NEURODYNAMIC_TEST,
                            "test_name": f.test_name.data,
                            "side": f.side.data or None,
                            "result": f.result.data,
                        },
                        self,
                        prefix=f"tests.{index}.",
                    )
                )
            except FormInvalid:
                failed = True
        imaging = self.imaging_modality.data or None
        if imaging or (self.imaging_text.data or "").strip():
            failed |= not self._add(
                items,
                {
                    "finding_date": day,
                    "kind": FindingKind.IMAGING,
                    "modality": imaging,
                    "body_region": (self.imaging_region.data or "").strip() or None,
                    "text": self.imaging_text.data or "",
                },
                {"modality": "imaging_modality", "text": "imaging_text"},
            )
        if (self.observation_text.data or "").strip() or (self.observation_region.data or ""):
            failed |= not self._add(
                items,
                {
                    "finding_date": day,
                    "kind": FindingKind.OBSERVATION,
                    "body_region": (self.observation_region.data or "").strip() or None,
                    "text": self.observation_text.data or "",
                },
                {"text": "observation_text", "body_region": "observation_region"},
            )
        if failed:
            raise FormInvalid
        if not items:
            self.form_errors.append("Record at least one test result, imaging or observation.")
            raise FormInvalid
        return items

    def _add(
        self, items: list[FindingInput], data: dict[str, Any], renames: Mapping[str, str]
    ) -> bool:
        try:
            items.append(FindingInput.model_validate(data))
        except ValidationError as exc:
            errors = [{**e, "field": renames.get(e["field"], e["field"])} for e in error_list(exc)]
            attach_errors(self, errors)
            return False
        return True


class OdiForm(PageForm):
    measured_on = DateField("Date", validators=[InputRequired()])
    sections = RowList(
        SelectField(
            choices=choice_list(
                [("", "Not answered")] + [(i, str(i)) for i in range(ODI_MAX_PER_SECTION + 1)]
            ),
            validate_choice=False,
        ),
        min_entries=ODI_SECTIONS,
        max_entries=ODI_SECTIONS,
    )

    def to_command(self) -> OutcomeInput:
        sections: list[int | None] = []
        for field in self.sections.entries:
            raw = (field.data or "").strip()
            if not raw:
                sections.append(None)
            elif (number := small_int(raw)) is not None:
                sections.append(number)
            else:
                field.errors = [f"Choose 0–{ODI_MAX_PER_SECTION}."]
                raise FormInvalid
        return build(
            OutcomeInput,
            {
                "instrument": Instrument.ODI,
                "measured_on": self.measured_on.data,
                "odi_sections": sections,
            },
            self,
        )


class PsfsRowForm(Form):
    activity = StringField("Activity", validators=[Optional(), Length(max=80)])
    rating = IntegerField("Rating 0–10", validators=[Optional(), NumberRange(0, 10)])


def _activity_rating() -> RadioField:
    return RadioField(
        "Rating",
        choices=choice_list((i, str(i)) for i in range(11)),
        coerce=int,
        validate_choice=False,
        validators=[Optional(), NumberRange(0, 10, PAIN_MESSAGE)],
    )


class OwnActivitiesForm(PageForm):
    """A patient rates the activities of her latest PSFS: one field per activity, by
    position (a row list would shift the rows after one left unanswered); the view shows as
    many as she has and sets their labels."""

    rating_0 = _activity_rating()
    rating_1 = _activity_rating()
    rating_2 = _activity_rating()
    rating_3 = _activity_rating()
    rating_4 = _activity_rating()

    def rating_fields(self, count: int) -> list[RadioField]:
        return [self[f"rating_{i}"] for i in range(min(count, PSFS_MAX_ACTIVITIES))]

    def to_command(self, count: int) -> PsfsRatingsInput:
        ratings = []
        for f in self.rating_fields(count):
            if f.data is None:
                f.errors = [PAIN_MESSAGE]
                raise FormInvalid
            ratings.append(f.data)
        return build(PsfsRatingsInput, {"ratings": ratings}, self)


class PsfsForm(PageForm):
    measured_on = DateField("Date", validators=[InputRequired()])
    activities = RowList(
        FormField(PsfsRowForm), min_entries=PSFS_MAX_ACTIVITIES, max_entries=PSFS_MAX_ACTIVITIES
    )

    def to_command(self) -> OutcomeInput:
        activities, rows = [], []
        for index, row in enumerate(self.activities.entries):
            f = row.form
            name = (f.activity.data or "").strip()
            if not name:
                if f.rating.data is not None:
                    f.activity.errors = ["Name the activity (or clear its rating)."]
                    raise FormInvalid
                continue
            if f.rating.data is None:
                f.rating.errors = ["Rate the activity from 0 to 10."]
                raise FormInvalid
            activities.append(PsfsActivity(activity=name, rating=f.rating.data).model_dump())
            rows.append(index)
        return build(
            OutcomeInput,
            {
                "instrument": Instrument.PSFS,
                "measured_on": self.measured_on.data,
                "psfs_activities": activities,
            },
            self,
            {"psfs_activities": rows},
        )


class PinBaselineForm(PageForm):
    """A clinician's pinned baseline for one pain metric (the metric is in the URL; each
    metric's form on the patient page carries the metric as its prefix)."""

    level = FloatField(
        "Baseline level (0–10)",
        validators=[InputRequired("Give the level, a number from 0 to 10.")],
    )
    spread = FloatField("Day-to-day spread (optional)", validators=[Optional()])
    effective_from = DateField("In force from", validators=[InputRequired("Give the date.")])

    def to_command(self, metric: str) -> PinInput:
        return PinInput(
            metric=metric,
            level=self.level.data,
            spread=self.spread.data,
            effective_from=self.effective_from.data,
        )


class EnteredInErrorForm(PageForm):
    reason = StringField(
        "What was wrong",
        validators=[InputRequired("Say what was wrong: it stays in the record."), Length(max=300)],
    )

    def to_command(self) -> EnteredInErrorInput:
        return build(EnteredInErrorInput, {"reason": self.reason.data or ""}, self)


class UndoMarkForm(PageForm):
    """Taking back a mark of entered in error: the mark as the page showed it (its time)."""

    mark = HiddenField()

    def seen(self) -> dt.datetime | None:
        try:
            return dt.datetime.fromisoformat(self.mark.data or "")
        except ValueError:
            return None


class EndProgramForm(PageForm):
    end_date = DateField("Last day of the program", validators=[InputRequired("Give the date.")])

    def to_command(self) -> EndProgramInput:
        return build(EndProgramInput, {"end_date": self.end_date.data}, self)


# --- account --------------------------------------------------------------------------------


class RemindersForm(PageForm):
    reminder_opt_in = BooleanField("E-mail me a reminder when I have not logged for a while")


class DeviceTokenForm(PageForm):
    device_name = StringField(
        "Device name (e.g. my phone)", validators=[DataRequired(), Length(max=80)]
    )


# --- admin ----------------------------------------------------------------------------------


class StaffForm(PageForm):
    display_name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    role = SelectField(
        "Role",
        choices=choice_list([(Role.CLINICIAN.value, "Clinician"), (Role.ADMIN.value, "Admin")]),
        validators=[InputRequired()],
    )


class CareTeamForm(PageForm):
    name = StringField("New care team name", validators=[DataRequired(), Length(max=120)])


def _policy_field(name: str) -> IntegerField:
    # Bounds are the policy's own (pydantic, `config.settings.ClinicPolicy`), checked by
    # `build`; this only reads a whole number.
    return IntegerField(POLICY_TEXT[name].label, validators=[InputRequired()])


class ClinicPolicyForm(PageForm):
    missed_logs_days = _policy_field("missed_logs_days")
    urgent_follow_up_minutes = _policy_field("urgent_follow_up_minutes")
    outcome_interval_days = _policy_field("outcome_interval_days")
    digest_hour = _policy_field("digest_hour")
    reminder_after_days = _policy_field("reminder_after_days")
    reminder_hour = _policy_field("reminder_hour")
    # The settings' version the page showed (`clinic_policy.version`).
    version = IntegerField(widget=HiddenInput(), validators=[InputRequired()])

    def values(self) -> dict[str, Any]:
        return {name: self[name].data for name in POLICY_TEXT}


class MemberForm(PageForm):
    # Which team's form this is (each team on the page has its own, with its own prefix).
    team_id: int | None = None

    clinician_id = SelectField("Clinician", coerce=int, validators=[InputRequired()])


class AuditSearchForm(Form):
    """GET parameters of the audit search (no CSRF: it changes nothing)."""

    user_id = IntegerField("User id", validators=[Optional(), NumberRange(min=1)])
    patient_id = IntegerField("Patient id", validators=[Optional(), NumberRange(min=1)])
    action = StringField("Action (prefix)", validators=[Optional(), Length(max=64)])
    date_from = DateField("From (UTC date)", validators=[Optional()])
    date_to = DateField("To (UTC date)", validators=[Optional()])
    page = IntegerField(widget=HiddenInput(), validators=[Optional(), NumberRange(min=1)])


class CaseloadSearchForm(FlaskForm):
    """Caseload search: posted, so a typed name never appears in a URL."""

    q = StringField("Search by name", validators=[Length(max=120)])
