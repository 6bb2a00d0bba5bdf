"""A patient's record as a FHIR R4 Bundle (design §1: the integrator pulls "CSV or FHIR R4").

What a Bundle (type `collection`) holds, for one patient:
- `Patient`: our id as an identifier, the display name, the year of birth (a partial date).
- Per daily log, `Observation`s: back pain and leg pain (LOINC 72514-3, the 0–10 numeric
  rating, with the body site and the leg's side), the fraction of the prescribed session done,
  one per red flag reported; and a panel (`hasMember`) that holds the day's note and pain
  location. A log of the clinic's today is `preliminary` (the patient may still edit it), older
  ones `final`. Each exercise the patient logged is a member too (category `therapy`): the
  exercise's name as its code's text, done or not as its value, the sets and repetitions done
  as components, and `basedOn` the program's `CarePlan` that prescribed it.
- An event, finding or score a clinician marked entered in error is still there, with the
  status `entered-in-error`, so that a receiver that imported it before can drop it: its id,
  code and subject only (no date, value, note or author: it may be another patient's).
- Per event (a fall, surgery, imaging…): an `Observation` coded by its type, with its side and
  body region, its description as a note and a fall's mechanism as components (where, steps,
  height, what landed first).
- Per finding: an `Observation` (category `exam` or `imaging`): a neurodynamic test's result as
  a coded value with the side tested; an imaging result or an observation as text; its author.
- Per ODI or PSFS score: an `Observation` (category `survey`).
- Per program: a `CarePlan` (`active` until its end date has passed, then `completed`) with
  its title, period and phases (notes), and per prescribed exercise an activity: the
  exercise's name, its dose as text and its sessions a week as a timing (`stopped` for one
  taken off the program).
- The clinic's working records, in a clinician's or the system's export (not in a patient's
  own: her pages show neither): per pinned baseline an `Observation` over the days it was in
  force (`effectivePeriod`, by the detector's rule), its level and spread, who pinned it
  (retracted, `entered-in-error`, once replaced by a pin from the same or an earlier date); per
  alert a `DetectedIssue`: kind and metric as its code, `high` for urgent, the day detected,
  the explanation's facts and the onset as its detail, as `evidence` the Bundle's own
  resources it was detected from (the metric's log parts or scores from its onset to that
  day) and the events it cites, and as `mitigation` each step of its lifecycle as its page
  tells it (followed up, acknowledged, resolved: when, who, the note or reason).
  `preliminary` while unresolved (an open alert's figures follow the logs), then `final`.

Codes. Pain uses LOINC; categories use HL7's observation-category. What LOINC and SNOMED codes
we are not sure of (the tests, the questionnaires, red flags, event types) carry our own code
system (`CODE_SYSTEM`) and a display text, never a guessed standard code: a receiving system
maps them once. Body sites are text.

Identity. Every resource's id is a UUID derived (uuid5) from its row (`Patient/12`,
`SessionLog/7/back_pain`), so exporting again gives the same ids and a receiver can update
rather than duplicate. References inside the Bundle are `urn:uuid:` full URLs.

The tests check every Bundle they build against the FHIR models of `fhir.resources` (R4B, whose
resources used here are R4's: structure, types, one value[x]), the demo clinic's and
hypothesis-generated records alike. The export itself does not. Measured on the demo's seed
patient (586 logs, 3,292 exercises logged: 5,689 resources) on a shared 2-core box: building
them as dicts and `json.dumps` took ≈ 0.3 s (≈ 0.13 s for the 2,397 resources without the
exercises, in the same run), validating them with the models ≈ 3.9 s more and serialising
through them ≈ 4.5 s more.

The records come in as plain read-only attributes (`LogRecord`…): the service hands ORM rows,
the tests plain objects.
"""

from __future__ import annotations

import json
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from rehab.domain.baseline import pin_periods
from rehab.domain.event_text import fall_mechanism
from rehab.domain.explain import metric_label
from rehab.domain.vocabulary import (
    ALERT_KIND_TITLES,
    RED_FLAG_LABELS,
    FindingKind,
    Instrument,
    RedFlag,
    Side,
    humanize,
)

MEDIA_TYPE = "application/fhir+json"
NDJSON_MEDIA_TYPE = "application/fhir+ndjson"
FHIR_VERSION = "4.0.1"

CODE_SYSTEM = "urn:rehab:fhir:code"
PATIENT_ID_SYSTEM = "urn:rehab:fhir:patient-id"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:rehab:fhir")

PAIN_NRS = {
    "system": LOINC,
    "code": "72514-3",
    "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
}
INSTRUMENT_LABELS = {
    Instrument.ODI: "Oswestry Disability Index (0-100)",
    Instrument.PSFS: "Patient-Specific Functional Scale (0-10)",
}
_LEG_SITES = {Side.LEFT: "Left leg", Side.RIGHT: "Right leg", Side.BOTH: "Both legs"}
_RED_FLAG_COLUMNS = {flag: f"red_flag_{flag.value}" for flag in RedFlag}


class PatientRecord(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def year_of_birth(self) -> int | None: ...


class LogRecord(Protocol):
    """A `SessionLog`: also `red_flag_<flag>` booleans, read by name (`_RED_FLAG_COLUMNS`)."""

    @property
    def id(self) -> int: ...
    @property
    def log_date(self) -> date: ...
    @property
    def back_pain(self) -> int: ...
    @property
    def leg_pain(self) -> int: ...
    @property
    def leg_side(self) -> str | None: ...
    @property
    def pain_location(self) -> str | None: ...
    @property
    def adherence(self) -> float | None: ...
    @property
    def note(self) -> str: ...


class EntryRecord(Protocol):
    """An `ExerciseEntry`: one prescribed exercise of a daily log."""

    @property
    def session_log_id(self) -> int: ...
    @property
    def prescription_id(self) -> int: ...
    @property
    def done(self) -> bool: ...
    @property
    def sets_done(self) -> int: ...
    @property
    def reps_done(self) -> int: ...


class EventRecord(Protocol):
    @property
    def entered_in_error_at(self) -> datetime | None: ...

    @property
    def id(self) -> int: ...
    @property
    def event_date(self) -> date: ...
    @property
    def event_type(self) -> str: ...
    @property
    def side(self) -> str | None: ...
    @property
    def body_region(self) -> str | None: ...
    @property
    def description(self) -> str: ...
    @property
    def fall_location(self) -> str | None: ...
    @property
    def fall_steps(self) -> int | None: ...
    @property
    def fall_height_cm(self) -> int | None: ...
    @property
    def fall_landed_on(self) -> str | None: ...


class FindingRecord(Protocol):
    @property
    def entered_in_error_at(self) -> datetime | None: ...

    @property
    def id(self) -> int: ...
    @property
    def finding_date(self) -> date: ...
    @property
    def kind(self) -> str: ...
    @property
    def test_name(self) -> str | None: ...
    @property
    def side(self) -> str | None: ...
    @property
    def result(self) -> str | None: ...
    @property
    def modality(self) -> str | None: ...
    @property
    def body_region(self) -> str | None: ...
    @property
    def text(self) -> str: ...


class OutcomeRecord(Protocol):
    @property
    def entered_in_error_at(self) -> datetime | None: ...

    @property
    def id(self) -> int: ...
    @property
    def instrument(self) -> str: ...
    @property
    def measured_on(self) -> date: ...
    @property
    def score(self) -> float: ...


class ProgramRecord(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def start_date(self) -> date: ...
    @property
    def end_date(self) -> date | None: ...


class PrescriptionRecord(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def sets(self) -> int: ...
    @property
    def reps(self) -> int: ...
    @property
    def hold_seconds(self) -> int: ...
    @property
    def sessions_per_week(self) -> int: ...
    @property
    def notes(self) -> str: ...
    @property
    def active(self) -> bool: ...


class PhaseRecord(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def start_date(self) -> date: ...
    @property
    def goals(self) -> str: ...


class AlertRecord(Protocol):
    """An `Alert` (design §2); what became of it comes as its steps (`AlertExport`)."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def metric(self) -> str: ...  # "" for a kind without one
    @property
    def severity(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def onset(self) -> date: ...
    @property
    def detected_on(self) -> date: ...
    @property
    def explanation(self) -> str: ...
    @property
    def related_events(self) -> Sequence[dict[str, Any]]: ...
    @property
    def created_at(self) -> datetime: ...


class StepRecord(Protocol):
    """One step of an alert's lifecycle, as the alert's page tells it (`alerts.history`)."""

    @property
    def action(self) -> str: ...  # "followed up", "acknowledged", "reopened" or "resolved"
    @property
    def by(self) -> str | None: ...  # a clinician's name; None: the system
    @property
    def at(self) -> datetime | None: ...
    @property
    def on(self) -> date | None: ...  # an automatic resolution's day
    @property
    def note(self) -> str: ...
    @property
    def reason(self) -> str: ...


class PinRecord(Protocol):
    """A `PinnedBaseline` row: a level of None returns the metric to the automatic baseline."""

    @property
    def id(self) -> int: ...
    @property
    def metric(self) -> str: ...
    @property
    def level(self) -> float | None: ...
    @property
    def spread(self) -> float | None: ...
    @property
    def effective_from(self) -> date: ...
    @property
    def replaced_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class AlertExport:
    """An alert and its lifecycle's steps, oldest first; `withdrawn`: resolved by the
    detector because the record, corrected since, no longer shows it."""

    alert: AlertRecord
    steps: Sequence[StepRecord] = ()
    withdrawn: bool = False


@dataclass(frozen=True)
class ProgramExport:
    """A program with its prescriptions (each with its exercise's name), in the order the
    clinician listed them, and its phases by start date."""

    program: ProgramRecord
    prescriptions: Sequence[tuple[PrescriptionRecord, str]] = ()
    phases: Sequence[PhaseRecord] = ()


@dataclass(frozen=True)
class PatientExport:
    """One patient's rows, each list in date order; a finding comes with its author's name."""

    patient: PatientRecord
    display_name: str
    logs: Sequence[LogRecord]
    events: Sequence[EventRecord]
    findings: Sequence[tuple[FindingRecord, str]]
    outcomes: Sequence[OutcomeRecord]
    programs: Sequence[ProgramExport] = ()
    entries: Sequence[EntryRecord] = ()  # of `logs`, each log's in its program's order
    # The clinic's working records, which its clinicians see and its patients do not (none in
    # a patient's own export): alerts by detection day, pinned baselines as stored (each
    # metric's rows in the order they were written) with who pinned each.
    alerts: Sequence[AlertExport] = ()
    pins: Sequence[tuple[PinRecord, str]] = ()


def resource_id(kind: str, *parts: object) -> str:
    """The stable id of a row's resource: `resource_id("SessionLog", 7, "back_pain")`."""
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join([kind, *map(str, parts)])))


def patient_bundles_json(
    records: Iterable[PatientExport], today: date, generated_at: datetime
) -> Iterator[str]:
    """One compact JSON line per patient's Bundle (NDJSON)."""
    for record in records:
        yield json.dumps(patient_bundle(record, today, generated_at), separators=(",", ":"))
        yield "\n"


def patient_bundle(record: PatientExport, today: date, generated_at: datetime) -> dict[str, Any]:
    """The patient's Bundle as JSON-ready data."""
    patient_id = resource_id("Patient", record.patient.id)
    subject = {"reference": f"urn:uuid:{patient_id}"}
    resources: list[dict[str, Any]] = [_patient(patient_id, record)]
    prescribed = {
        prescription.id: _Prescribed(exported.program.id, name)
        for exported in record.programs
        for prescription, name in exported.prescriptions
    }
    entries: dict[int, list[EntryRecord]] = {}
    for entry in record.entries:
        entries.setdefault(entry.session_log_id, []).append(entry)
    for log in record.logs:
        resources.extend(
            _log_observations(log, subject, today, entries.get(log.id, ()), prescribed)
        )
    resources.extend(_retracted(_event_observation(e, subject)) for e in record.events)
    resources.extend(
        _retracted(_finding_observation(f, author, subject)) for f, author in record.findings
    )
    resources.extend(_retracted(_outcome_observation(m, subject)) for m in record.outcomes)
    resources.extend(_care_plan(p, subject, today) for p in record.programs)
    resources.extend(_pinned_baselines(record.pins, subject))
    evidence = _Evidence(record)
    resources.extend(_detected_issue(a, subject, evidence) for a in record.alerts)
    return {
        "resourceType": "Bundle",
        "id": resource_id("Bundle", record.patient.id, generated_at.isoformat()),
        "meta": {"lastUpdated": generated_at.isoformat()},
        "type": "collection",
        "timestamp": generated_at.isoformat(),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def _patient(patient_id: str, record: PatientExport) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [{"system": PATIENT_ID_SYSTEM, "value": str(record.patient.id)}],
        "name": [{"text": _text(record.display_name) or "(no name)"}],
    }
    if record.patient.year_of_birth is not None:
        resource["birthDate"] = f"{record.patient.year_of_birth:04d}"
    return resource


def _care_plan(exported: ProgramExport, subject: dict[str, str], today: date) -> dict[str, Any]:
    """A program as a `CarePlan`: its period, title and phases (as notes), and per exercise
    an activity with its dose (`description`) and sessions a week (`scheduledTiming`)."""
    program = exported.program
    ended = program.end_date is not None and program.end_date < today
    started = program.start_date <= today
    period = {"start": program.start_date.isoformat()}
    if program.end_date is not None:
        period["end"] = program.end_date.isoformat()
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": resource_id("Program", program.id),
        "status": "completed" if ended else "active",
        "intent": "plan",
        "category": [_code("home-exercise-program", "Home exercise program")],
        "title": _text(program.title) or "(untitled program)",
        "subject": subject,
        "period": period,
    }
    activities = []
    for prescription, exercise_name in exported.prescriptions:
        if not prescription.active:
            status = "stopped"
        else:
            status = "completed" if ended else "in-progress" if started else "not-started"
        detail: dict[str, Any] = {
            "code": {"text": _text(exercise_name) or "(exercise)"},
            "status": status,
            "scheduledTiming": {
                "repeat": {
                    "frequency": prescription.sessions_per_week,
                    "period": 1,
                    "periodUnit": "wk",
                }
            },
            "description": _dose(prescription),
        }
        activities.append({"detail": detail})
    if activities:
        resource["activity"] = activities
    notes = [
        {"text": f"Phase “{_text(p.name) or '?'}” from {p.start_date.isoformat()}"
         + (f": {goals}" if (goals := _text(p.goals)) else "")}
        for p in exported.phases
    ]  # fmt: skip
    if notes:
        resource["note"] = notes
    return resource


def _dose(prescription: PrescriptionRecord) -> str:
    """ "2 sets of 10 repetitions, holding 5 s; slowly" """
    dose = f"{prescription.sets} sets of {prescription.reps} repetitions"
    if prescription.hold_seconds:
        dose += f", holding {prescription.hold_seconds} s"
    notes = _text(prescription.notes)
    return f"{dose}; {notes}" if notes else dose


def _category(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": CATEGORY_SYSTEM, "code": code}]}]


def _code(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": CODE_SYSTEM, "code": code, "display": display}], "text": display}


def _observation(
    kind: str,
    parts: tuple[object, ...],
    subject: dict[str, str],
    on: date,
    code: dict[str, Any],
    category: str | None,
    status: str = "final",
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_id(kind, *parts),
        "status": status,
        "code": code,
        "subject": subject,
        "effectiveDateTime": on.isoformat(),
    }
    if category is not None:
        resource["category"] = _category(category)
    return resource


@dataclass(frozen=True)
class _Prescribed:
    program_id: int
    exercise_name: str


EXERCISE_DONE = "prescribed-exercise"


def _log_observations(
    log: LogRecord,
    subject: dict[str, str],
    today: date,
    entries: Sequence[EntryRecord],
    prescribed: dict[int, _Prescribed],
) -> list[dict[str, Any]]:
    # Today's log can still be edited by the patient (design §2): not final yet.
    status = "preliminary" if log.log_date >= today else "final"
    members: list[dict[str, Any]] = []

    def member(part: str, code: dict[str, Any], category: str, **fields: Any) -> None:
        observation = _observation(
            "SessionLog", (log.id, part), subject, log.log_date, code, category, status
        )
        observation.update(fields)
        members.append(observation)

    pain_code = {"coding": [PAIN_NRS], "text": "Pain 0-10"}
    member(
        "back_pain",
        {**pain_code, "text": "Back pain 0-10"},
        "survey",
        bodySite={"text": "Back"},
        valueInteger=log.back_pain,
    )
    leg_site = _LEG_SITES.get(Side(log.leg_side)) if log.leg_side else None
    member(
        "leg_pain",
        {**pain_code, "text": "Leg pain 0-10"},
        "survey",
        bodySite={"text": leg_site or "Leg"},
        valueInteger=log.leg_pain,
    )
    if log.adherence is not None:
        member(
            "adherence",
            _code("session-adherence", "Prescribed exercise session done"),
            "therapy",
            valueQuantity={
                "value": round(log.adherence * 100, 1),
                "unit": "%",
                "system": UCUM,
                "code": "%",
            },
        )
    for entry in entries:
        source = prescribed.get(entry.prescription_id)
        code = _code(EXERCISE_DONE, "Prescribed exercise done")
        code["text"] = _text(source.exercise_name if source else None) or "(exercise)"
        fields: dict[str, Any] = {
            "valueBoolean": entry.done,
            "component": [
                {"code": _code("sets-done", "Sets done"), "valueInteger": entry.sets_done},
                {
                    "code": _code("repetitions-done", "Repetitions done"),
                    "valueInteger": entry.reps_done,
                },
            ],
        }
        if source is not None:
            fields["basedOn"] = [
                {"reference": f"urn:uuid:{resource_id('Program', source.program_id)}"}
            ]
        member(f"exercise/{entry.prescription_id}", code, "therapy", **fields)
    for flag, column in _RED_FLAG_COLUMNS.items():
        if getattr(log, column):
            member(
                f"red_flag_{flag.value}",
                _code(f"red-flag-{flag.value.replace('_', '-')}", RED_FLAG_LABELS[flag]),
                "survey",
                valueBoolean=True,
            )
    panel = _observation(
        "SessionLog",
        (log.id,),
        subject,
        log.log_date,
        _code("daily-log", "Daily rehabilitation log"),
        "survey",
        status,
    )
    panel["hasMember"] = [{"reference": f"urn:uuid:{m['id']}"} for m in members]
    if location := _text(log.pain_location):
        panel["component"] = [
            {"code": _code("pain-location", "Pain location"), "valueString": location}
        ]
    if note := _text(log.note):
        panel["note"] = [{"text": note}]
    return [panel, *members]


def _text(value: str | None) -> str | None:
    """Free text as FHIR takes it: a string must hold more than whitespace (any Unicode
    whitespace: a no-break space alone is refused)."""
    stripped = (value or "").strip()
    return stripped or None


def _body_site(side: str | None, region: str | None) -> dict[str, str] | None:
    words = " ".join(w for w in (side, _text(region)) if w)
    return {"text": humanize(words)} if words else None


# What a retracted entry keeps: enough for a receiver to find what it imported and drop it.
# Its content goes: the usual mistake is the wrong patient, whose data it would carry.
_RETRACTED_KEEPS = ("resourceType", "id", "status", "category", "code", "subject")


def _retracted(observation: dict[str, Any]) -> dict[str, Any]:
    if observation["status"] != "entered-in-error":
        return observation
    return {key: observation[key] for key in _RETRACTED_KEEPS if key in observation}


def _status(row: EventRecord | FindingRecord | OutcomeRecord) -> str:
    # A clinician's correction: a receiver that imported the row before learns to drop it.
    return "entered-in-error" if row.entered_in_error_at is not None else "final"


def _event_observation(event: EventRecord, subject: dict[str, str]) -> dict[str, Any]:
    observation = _observation(
        "Event",
        (event.id,),
        subject,
        event.event_date,
        _code(f"event-{event.event_type.replace('_', '-')}", humanize(event.event_type)),
        None,
        _status(event),
    )
    site = _body_site(event.side, event.body_region)
    if site:
        observation["bodySite"] = site
    components: list[dict[str, Any]] = []
    if event.fall_location:
        components.append(
            {
                "code": _code("fall-location", "Where the fall happened"),
                "valueString": humanize(event.fall_location),
            }
        )
    if event.fall_steps is not None:
        components.append(
            {"code": _code("fall-steps", "Steps fallen"), "valueInteger": event.fall_steps}
        )
    if event.fall_height_cm is not None:
        components.append(
            {
                "code": _code("fall-height", "Height fallen"),
                "valueQuantity": {
                    "value": event.fall_height_cm,
                    "unit": "cm",
                    "system": UCUM,
                    "code": "cm",
                },
            }
        )
    if event.fall_landed_on:
        components.append(
            {
                "code": _code("fall-landed-on", "Landed first on"),
                "valueString": humanize(event.fall_landed_on),
            }
        )
    if components:
        observation["component"] = components
        mechanism = fall_mechanism(
            event.fall_location, event.fall_steps, event.fall_height_cm, event.fall_landed_on
        )
        observation["valueString"] = f"Fall {mechanism}".strip()
    if description := _text(event.description):
        observation["note"] = [{"text": description}]
    return observation


def _finding_observation(
    finding: FindingRecord, author: str, subject: dict[str, str]
) -> dict[str, Any]:
    kind = FindingKind(finding.kind)
    if kind is FindingKind.NEURODYNAMIC_TEST and finding.test_name:
        code = _code(finding.test_name.replace("_", "-"), humanize(finding.test_name))
    elif kind is FindingKind.IMAGING:
        modality = (finding.modality or "").upper() or "Imaging"
        code = _code(f"imaging-{finding.modality or 'other'}", f"{modality} result")
    else:
        code = _code("clinical-observation", "Clinical observation")
    observation = _observation(
        "Finding",
        (finding.id,),
        subject,
        finding.finding_date,
        code,
        "imaging" if kind is FindingKind.IMAGING else "exam",
        _status(finding),
    )
    if name := _text(author):
        observation["performer"] = [{"display": name}]
    site = _body_site(finding.side, finding.body_region)
    if site:
        observation["bodySite"] = site
    if finding.result:
        observation["valueCodeableConcept"] = _code(
            f"result-{finding.result}", humanize(finding.result)
        )
        if text := _text(finding.text):
            observation["note"] = [{"text": text}]
    elif text := _text(finding.text):
        observation["valueString"] = text
    return observation


def _outcome_observation(outcome: OutcomeRecord, subject: dict[str, str]) -> dict[str, Any]:
    instrument = Instrument(outcome.instrument)
    observation = _observation(
        "OutcomeMeasure",
        (outcome.id,),
        subject,
        outcome.measured_on,
        _code(instrument.value, INSTRUMENT_LABELS[instrument]),
        "survey",
        _status(outcome),
    )
    observation["valueQuantity"] = {"value": round(outcome.score, 1)}
    return observation


# --- the clinic's working records: pinned baselines and alerts -----------------------------

DETECTOR = {"display": "rehab regression detection (automatic)"}
WITHHELD = (
    "Explanation withheld: the record it was written from has since been corrected (an entry"
    " marked entered in error, or changed)."
)
_SEVERITIES = {"urgent": "high", "routine": "moderate"}


def _dashed(value: str) -> str:
    return value.replace("_", "-")


def _pinned_baselines(
    pins: Sequence[tuple[PinRecord, str]], subject: dict[str, str]
) -> list[dict[str, Any]]:
    """Each current pin as an `Observation` over the days it was in force (`effectivePeriod`,
    open while it still is), by the detector's own rule (`pin_periods`); a return to the
    automatic baseline only ends the pin before it. A pin replaced by one from the same or an
    earlier date is retracted (`entered-in-error`, its id, status, code and subject only, as
    a corrected entry): a receiver that imported it learns to drop it."""
    by_metric: dict[str, list[tuple[PinRecord, str]]] = {}
    resources: list[dict[str, Any]] = []
    for pin, author in pins:
        if pin.replaced_at is None:
            by_metric.setdefault(pin.metric, []).append((pin, author))
        elif pin.level is not None:  # (a return to automatic was never exported)
            code = _pin_code(pin.metric)
            resources.append(
                _retracted(
                    _observation(
                        "PinnedBaseline",
                        (pin.id,),
                        subject,
                        pin.effective_from,
                        code,
                        None,
                        "entered-in-error",
                    )
                )
            )
    for metric, rows in by_metric.items():
        code = _pin_code(metric)
        periods = pin_periods(
            [(pin.effective_from.toordinal(), pin.level, pin.spread) for pin, _ in rows]
        )
        for period in periods:
            pin, author = rows[period.position]
            observation = _observation(
                "PinnedBaseline", (pin.id,), subject, pin.effective_from, code, None
            )
            del observation["effectiveDateTime"]
            observation["effectivePeriod"] = {"start": pin.effective_from.isoformat()}
            if period.until is not None:  # the day before the metric's next row
                end = date.fromordinal(period.until - 1)
                observation["effectivePeriod"]["end"] = end.isoformat()
            observation["valueQuantity"] = {"value": round(period.level, 2)}
            if period.spread is not None:
                observation["component"] = [
                    {
                        "code": _code("baseline-spread", "Day-to-day spread"),
                        "valueQuantity": {"value": round(period.spread, 2)},
                    }
                ]
            if name := _text(author):
                observation["performer"] = [{"display": name}]
            resources.append(observation)
    return resources


def _pin_code(metric: str) -> dict[str, Any]:
    return _code(f"pinned-baseline-{_dashed(metric)}", f"Pinned baseline: {metric_label(metric)}")


class _Evidence:
    """What an alert was detected from, as the Bundle's own resources: the logs' parts or the
    scores from its onset to the day it was detected, and the events it cites."""

    def __init__(self, record: PatientExport) -> None:
        self._logs = sorted(record.logs, key=lambda log: log.log_date)
        self._days = [log.log_date for log in self._logs]
        self._outcomes = [m for m in record.outcomes if m.entered_in_error_at is None]
        self._events: dict[tuple[date | None, str], list[int]] = {}
        for event in record.events:
            if event.entered_in_error_at is None:
                key = (event.event_date, event.event_type)
                self._events.setdefault(key, []).append(event.id)

    def data(self, alert: AlertRecord) -> list[str]:
        first = bisect_left(self._days, alert.onset)
        last = bisect_right(self._days, alert.detected_on)
        logs = self._logs[first:last]
        if alert.kind == "pain_regression" and alert.metric:
            return [resource_id("SessionLog", log.id, alert.metric) for log in logs]
        if alert.kind == "adherence_drop":
            return [
                resource_id("SessionLog", log.id, "adherence")
                for log in logs
                if log.adherence is not None
            ]
        if alert.kind == "red_flag":
            return [
                resource_id("SessionLog", log.id, column)
                for log in logs
                for column in _RED_FLAG_COLUMNS.values()
                if getattr(log, column)
            ]
        if alert.kind == "function_decline":
            return [
                resource_id("OutcomeMeasure", m.id)
                for m in self._outcomes
                if m.instrument == alert.metric
                and alert.onset <= m.measured_on
                and m.measured_on <= alert.detected_on
            ]
        return []  # missed logs: what is missing is not a resource

    def cites_withdrawn(self, alert: AlertRecord) -> bool:
        """Whether an event the alert cites is no longer on record (marked entered in error,
        or not there at all)."""
        return any(key not in self._events for key in map(_cited_key, alert.related_events))

    def events(self, alert: AlertRecord) -> list[str]:
        ids: list[int] = []
        for key in map(_cited_key, alert.related_events):
            ids.extend(i for i in self._events.get(key, ()) if i not in ids)
        return [resource_id("Event", i) for i in ids]


def _cited_key(cited: dict[str, Any]) -> tuple[date | None, str]:
    """An alert's cited event as (day, event type): how `_Evidence` finds it on record."""
    try:
        return date.fromisoformat(str(cited.get("date"))), str(cited.get("event"))
    except ValueError:
        return None, str(cited.get("event"))


def _references(ids: Sequence[str]) -> list[dict[str, str]]:
    return [{"reference": f"urn:uuid:{i}"} for i in ids]


def _detected_issue(
    exported: AlertExport, subject: dict[str, str], evidence: _Evidence
) -> dict[str, Any]:
    """An alert as a `DetectedIssue`: what was detected (kind and metric as its code, its
    severity, the day, the explanation's facts), from what (the logs or scores since its
    onset, the events it cites) and what the clinic did about it (`mitigation`: acknowledged,
    resolved, each with when, who and their note). `preliminary` while unresolved: an open
    alert's figures are updated as logs come in; `final` once resolved."""
    alert = exported.alert
    resolved = alert.status == "resolved"
    metric = alert.metric or None
    if alert.kind == "pain_regression" and metric:
        title = f"{metric_label(metric)} regression"
    elif alert.kind == "function_decline" and metric:
        title = f"{metric_label(metric)} decline"
    else:
        title = ALERT_KIND_TITLES.get(alert.kind, humanize(alert.kind))
    code = f"alert-{_dashed(alert.kind)}" + (f"-{_dashed(metric)}" if metric else "")
    resource: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": resource_id("Alert", alert.id),
        "status": "final" if resolved else "preliminary",
        "code": _code(code, title),
        "severity": _SEVERITIES.get(alert.severity, "moderate"),
        "patient": subject,
        # When the clinic's system raised it; the data's own days are in `detail` (a first
        # scan or a late sync raises alerts about weeks past).
        "identifiedDateTime": alert.created_at.isoformat(),
        "author": dict(DETECTOR),
    }
    onset = f"Onset {alert.onset.isoformat()}, detected on the data of {alert.detected_on}."
    # Its words were written from the record as it stood: once an entry it cites was marked
    # entered in error (often the wrong patient's), they may carry that entry's content,
    # which the export otherwise withdraws.
    said = WITHHELD if exported.withdrawn or evidence.cites_withdrawn(alert) else alert.explanation
    resource["detail"] = " ".join(filter(None, [_text(said), onset]))
    found = []
    if data := evidence.data(alert):
        found.append(
            {
                "code": [_code("alert-data", "Data from its onset to its detection")],
                "detail": _references(data),
            }
        )
    if events := evidence.events(alert):
        found.append(
            {"code": [_code("related-events", "Related events")], "detail": _references(events)}
        )
    if found:
        resource["evidence"] = found
    if mitigation := [_mitigation(step) for step in exported.steps]:
        resource["mitigation"] = mitigation
    return resource


# A step's action: (code, display); its text starts with the display's first words.
_STEP_CODES = {
    "followed up": ("alert-followed-up", "Followed up"),
    "acknowledged": ("alert-acknowledged", "Acknowledged"),
    "reopened": ("alert-reopened", "Reopened"),
    "resolved": ("alert-resolved", "Resolved"),
}
_RESOLVED_AUTOMATICALLY = ("alert-resolved-automatically", "Resolved automatically")


def _mitigation(step: StepRecord) -> dict[str, Any]:
    """A step as the clinic's action on the issue: what (coded, and in words with the reason
    or judgement and the note), when, who (a clinician's name; none for the system)."""
    automatic = step.action == "resolved" and step.by is None
    code, display = (
        _RESOLVED_AUTOMATICALLY
        if automatic
        else _STEP_CODES.get(step.action, (f"alert-{_dashed(step.action)}", humanize(step.action)))
    )
    said = display
    if reason := _text(step.reason):
        said += f" ({reason})"
    if note := _text(step.note):
        said += f": {note}"
    action = _code(code, display)
    action["text"] = said
    mitigation: dict[str, Any] = {"action": action}
    # An automatic resolution happened on the day the data showed it; a person's on the minute.
    when = step.on if automatic and step.on is not None else step.at
    if when is not None:
        mitigation["date"] = when.isoformat()
    if name := _text(step.by):
        mitigation["author"] = {"display": name}
    return mitigation
