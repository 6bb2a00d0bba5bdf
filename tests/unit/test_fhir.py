"""The FHIR R4 export's mapping (`rehab.fhir`) over plain records, checked against the FHIR
models of `fhir.resources` (R4B): every Bundle it can build is valid, its references resolve,
and it says what the rows say."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from hypothesis import given, settings
from hypothesis import strategies as st

from rehab import fhir
from rehab.domain.vocabulary import (
    EventType,
    FallLocation,
    FindingKind,
    ImagingModality,
    Instrument,
    LandedOn,
    NeurodynamicTest,
    RedFlag,
    Side,
    TestResult,
)

TODAY = dt.date(2025, 10, 1)
FALL_DAY = dt.date(2025, 9, 14)
GENERATED_AT = dt.datetime(2025, 10, 1, 9, 30, tzinfo=dt.UTC)
# What FHIR R4 allows where it fixes the codes (the models check structure, not value sets).
OBSERVATION_STATUSES = {"registered", "preliminary", "final", "amended", "entered-in-error"}
marked = st.none() | st.just(GENERATED_AT)
RETRACTED_KEEPS = {"resourceType", "id", "status", "category", "code", "subject"}
CATEGORIES = {"survey", "exam", "imaging", "therapy"}


@dataclass(frozen=True)
class Patient:
    id: int
    year_of_birth: int | None


@dataclass(frozen=True)
class Log:
    id: int
    log_date: dt.date
    back_pain: int
    leg_pain: int
    leg_side: str | None
    pain_location: str | None
    adherence: float | None
    note: str
    red_flag_new_numbness: bool = False
    red_flag_new_weakness: bool = False
    red_flag_bladder_bowel_change: bool = False
    red_flag_saddle_numbness: bool = False


@dataclass(frozen=True)
class Event:
    id: int
    event_date: dt.date
    event_type: str
    side: str | None
    body_region: str | None
    description: str
    fall_location: str | None = None
    fall_steps: int | None = None
    fall_height_cm: int | None = None
    fall_landed_on: str | None = None
    entered_in_error_at: dt.datetime | None = None


@dataclass(frozen=True)
class Finding:
    id: int
    finding_date: dt.date
    kind: str
    test_name: str | None
    side: str | None
    result: str | None
    modality: str | None
    body_region: str | None
    text: str
    entered_in_error_at: dt.datetime | None = None


@dataclass(frozen=True)
class Outcome:
    id: int
    instrument: str
    measured_on: dt.date
    score: float
    entered_in_error_at: dt.datetime | None = None


@dataclass(frozen=True)
class Program:
    id: int
    title: str
    start_date: dt.date
    end_date: dt.date | None


@dataclass(frozen=True)
class Prescription:
    id: int
    sets: int
    reps: int
    hold_seconds: int
    sessions_per_week: int
    notes: str
    active: bool = True


@dataclass(frozen=True)
class Entry:
    session_log_id: int
    prescription_id: int
    done: bool
    sets_done: int
    reps_done: int


@dataclass(frozen=True)
class Phase:
    name: str
    start_date: dt.date
    goals: str


@dataclass(frozen=True)
class Alert:
    id: int
    kind: str
    metric: str
    severity: str
    status: str
    onset: dt.date
    detected_on: dt.date
    explanation: str
    related_events: list[dict[str, Any]]
    created_at: dt.datetime = GENERATED_AT


@dataclass(frozen=True)
class Step:
    action: str
    by: str | None
    at: dt.datetime | None
    on: dt.date | None
    note: str
    reason: str


@dataclass(frozen=True)
class Pin:
    id: int
    metric: str
    level: float | None
    spread: float | None
    effective_from: dt.date
    replaced_at: dt.datetime | None = None


@dataclass
class Ids:
    """Row ids unique within a generated record, as the database's are."""

    taken: set[int] = field(default_factory=set)


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
optional_text = st.none() | text
days = st.dates(dt.date(2024, 1, 1), TODAY)
sides = st.none() | st.sampled_from([s.value for s in Side])


def logs() -> st.SearchStrategy[Log]:
    flags = st.fixed_dictionaries({f"red_flag_{flag.value}": st.booleans() for flag in RedFlag})
    return st.builds(
        lambda base, flagged: Log(**{**base, **flagged}),
        st.fixed_dictionaries(
            {
                "id": st.integers(1, 10**9),
                "log_date": days,
                "back_pain": st.integers(0, 10),
                "leg_pain": st.integers(0, 10),
                "leg_side": sides,
                "pain_location": optional_text,
                "adherence": st.none() | st.floats(0, 1),
                "note": text,
            }
        ),
        flags,
    )


events = st.builds(
    Event,
    id=st.integers(1, 10**9),
    event_date=days,
    event_type=st.sampled_from([e.value for e in EventType]),
    side=sides,
    body_region=optional_text,
    description=text,
    fall_location=st.none() | st.sampled_from([f.value for f in FallLocation]),
    fall_steps=st.none() | st.integers(1, 200),  # the database's range
    fall_height_cm=st.none() | st.integers(1, 2000),
    fall_landed_on=st.none() | st.sampled_from([x.value for x in LandedOn]),
    entered_in_error_at=marked,
)
findings = st.builds(
    Finding,
    id=st.integers(1, 10**9),
    finding_date=days,
    kind=st.sampled_from([k.value for k in FindingKind]),
    test_name=st.none() | st.sampled_from([t.value for t in NeurodynamicTest]),
    side=sides,
    result=st.none() | st.sampled_from([r.value for r in TestResult]),
    modality=st.none() | st.sampled_from([m.value for m in ImagingModality]),
    body_region=optional_text,
    text=text,
    entered_in_error_at=marked,
)
outcomes = st.builds(
    Outcome,
    id=st.integers(1, 10**9),
    instrument=st.sampled_from([i.value for i in Instrument]),
    measured_on=days,
    score=st.floats(0, 100),
    entered_in_error_at=marked,
)


programs = st.builds(
    fhir.ProgramExport,
    program=st.builds(
        Program,
        id=st.integers(1, 10**9),
        title=text,
        start_date=days,
        end_date=st.none() | st.dates(dt.date(2024, 1, 1), dt.date(2026, 12, 31)),
    ),
    prescriptions=st.lists(
        st.tuples(
            st.builds(
                Prescription,
                id=st.integers(1, 10**9),
                sets=st.integers(1, 20),
                reps=st.integers(1, 200),
                hold_seconds=st.integers(0, 600),
                sessions_per_week=st.integers(1, 14),
                notes=text,
                active=st.booleans(),
            ),
            text,
        ),
        max_size=4,
    ),
    phases=st.lists(st.builds(Phase, name=text, start_date=days, goals=text), max_size=3),
)


def unique_ids(rows: list[Any]) -> bool:
    return len({row.id for row in rows}) == len(rows)


records = (
    st.builds(
        fhir.PatientExport,
        patient=st.builds(
            Patient, id=st.integers(1, 10**9), year_of_birth=st.none() | st.integers(1900, 2024)
        ),
        display_name=text.filter(bool),
        logs=st.lists(logs(), max_size=8).filter(unique_ids),
        events=st.lists(events, max_size=4).filter(unique_ids),
        findings=st.lists(st.tuples(findings, text.filter(bool)), max_size=4).filter(
            lambda pairs: unique_ids([f for f, _ in pairs])
        ),
        outcomes=st.lists(outcomes, max_size=3).filter(unique_ids),
        programs=st.lists(programs, max_size=2).filter(
            lambda ps: (
                unique_ids([p.program for p in ps])
                and unique_ids([rx for p in ps for rx, _ in p.prescriptions])
            )
        ),
    )
    .flatmap(lambda record: with_entries(record))
    .flatmap(lambda record: with_clinic_records(record))
)

ALERT_KINDS = {
    "pain_regression": ["leg_pain", "back_pain"],
    "adherence_drop": ["adherence"],
    "function_decline": ["odi", "psfs"],
    "red_flag": [""],
    "missed_logs": [""],
}
steps = st.builds(
    Step,
    action=st.sampled_from(["followed up", "acknowledged", "resolved"]),
    by=st.none() | text,
    at=st.none() | st.just(GENERATED_AT),
    on=st.none() | days,
    note=text,
    reason=text,
)
pins = st.builds(
    Pin,
    id=st.integers(1, 10**9),
    metric=st.sampled_from(["leg_pain", "back_pain"]),
    level=st.none() | st.floats(0, 10),
    spread=st.none() | st.floats(0.1, 5),
    effective_from=st.dates(dt.date(2025, 1, 1), dt.date(2025, 1, 20)),  # days often shared
    replaced_at=st.none() | st.just(GENERATED_AT),
)


def with_clinic_records(record: fhir.PatientExport) -> st.SearchStrategy[fhir.PatientExport]:
    """The record with alerts citing its own events (and events it does not hold) and pinned
    baselines, several of a metric, some of one day."""
    cited = [
        {"date": e.event_date.isoformat(), "event": e.event_type, "note": ""} for e in record.events
    ]
    cited.append({"date": "2025-02-03", "event": "travel", "note": "not on record"})
    on_record = sorted(
        {log.log_date for log in record.logs} | {m.measured_on for m in record.outcomes}
    )
    alert = st.builds(
        lambda kind_metric, onset, lag, **rest: Alert(
            kind=kind_metric[0],
            metric=kind_metric[1],
            onset=onset,
            detected_on=onset + dt.timedelta(days=lag),
            **rest,
        ),
        kind_metric=st.sampled_from([(k, m) for k, ms in ALERT_KINDS.items() for m in ms]),
        # Mostly on a day of its data, so that logs and scores fall inside its window.
        onset=(st.sampled_from(on_record) | days) if on_record else days,
        lag=st.integers(0, 20),
        id=st.integers(1, 10**9),
        severity=st.sampled_from(["routine", "urgent"]),
        status=st.sampled_from(["open", "acknowledged", "resolved"]),
        explanation=text,
        related_events=st.lists(st.sampled_from(cited), max_size=3),
    )
    return st.builds(
        lambda alerts, pinned: dataclasses.replace(record, alerts=alerts, pins=pinned),
        st.lists(
            st.builds(fhir.AlertExport, alert, st.lists(steps, max_size=3), st.booleans()),
            max_size=3,
        ).filter(lambda xs: unique_ids([x.alert for x in xs])),
        st.lists(st.tuples(pins, text), max_size=4).filter(
            lambda xs: unique_ids([p for p, _ in xs])
        ),
    )


def with_entries(record: fhir.PatientExport) -> st.SearchStrategy[fhir.PatientExport]:
    """The record with exercise entries in its logs, each of one of its prescriptions (at
    most one per prescription and log, as the database holds them)."""
    prescription_ids = [rx.id for p in record.programs for rx, _ in p.prescriptions]
    if not prescription_ids or not record.logs:
        return st.just(record)
    per_log = [
        st.lists(
            st.builds(
                Entry,
                session_log_id=st.just(log.id),
                prescription_id=st.sampled_from(prescription_ids),
                done=st.booleans(),
                sets_done=st.integers(0, 20),
                reps_done=st.integers(0, 200),
            ),
            max_size=3,
            unique_by=lambda e: e.prescription_id,
        )
        for log in record.logs
    ]
    return st.tuples(*per_log).map(
        lambda lists: dataclasses.replace(record, entries=[e for each in lists for e in each])
    )


def resources(bundle: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    found = [entry["resource"] for entry in bundle["entry"]]
    return [r for r in found if all(r.get(k) == v for k, v in match.items())]


def coded(bundle: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [
        r
        for r in resources(bundle, resourceType="Observation")
        if any(c["code"] == code for c in r["code"].get("coding", []))
    ]


def references(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return own + [ref for v in value.values() for ref in references(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in references(v)]
    return []


@settings(max_examples=150, deadline=None)
@given(records)
def test_every_bundle_is_valid_fhir_and_says_what_the_rows_say(
    record: fhir.PatientExport,
) -> None:
    line = "".join(fhir.patient_bundles_json([record], TODAY, GENERATED_AT))
    assert line.endswith("\n") and line.count("\n") == 1
    bundle = json.loads(line)
    Bundle.model_validate(bundle)  # raises on anything FHIR R4(B) does not allow

    # One resource per row and part, each id unique and every reference inside the Bundle.
    full_urls = [entry["fullUrl"] for entry in bundle["entry"]]
    assert len(set(full_urls)) == len(full_urls)
    assert set(references(bundle)) <= set(full_urls)
    observations = resources(bundle, resourceType="Observation")
    assert {o["status"] for o in observations} <= OBSERVATION_STATUSES
    assert {c["code"] for o in observations for c in _codings(o.get("category"))} <= CATEGORIES

    (patient,) = resources(bundle, resourceType="Patient")
    assert patient["identifier"][0]["value"] == str(record.patient.id)
    assert patient["name"] == [{"text": record.display_name.strip() or "(no name)"}]

    prescribed = {
        rx.id: (exported.program.id, name)
        for exported in record.programs
        for rx, name in exported.prescriptions
    }
    panels = coded(bundle, "daily-log")
    assert len(panels) == len(record.logs)
    pain = [o for o in observations if o["code"]["coding"][0] == fhir.PAIN_NRS]
    assert len(pain) == 2 * len(record.logs)
    by_id = {r["id"]: r for r in resources(bundle)}
    for log, panel in zip(record.logs, panels, strict=True):
        assert panel["effectiveDateTime"] == log.log_date.isoformat()
        assert panel["status"] == ("preliminary" if log.log_date >= TODAY else "final")
        members = [by_id[ref["reference"].removeprefix("urn:uuid:")] for ref in panel["hasMember"]]
        back, leg = members[0], members[1]
        assert (back["valueInteger"], back["bodySite"]["text"]) == (log.back_pain, "Back")
        assert leg["valueInteger"] == log.leg_pain
        side_word = {"left": "Left leg", "right": "Right leg", "both": "Both legs", None: "Leg"}
        assert leg["bodySite"]["text"] == side_word[log.leg_side]
        adherence = [m for m in members if "valueQuantity" in m]
        expected = [] if log.adherence is None else [round(log.adherence * 100, 1)]
        assert [m["valueQuantity"]["value"] for m in adherence] == expected
        flagged = sorted(f.value for f in RedFlag if getattr(log, f"red_flag_{f.value}"))
        reported = [m for m in members if _code_of(m).startswith("red-flag-")]
        assert sorted(_code_of(m).removeprefix("red-flag-") for m in reported) == [
            flag.replace("_", "-") for flag in flagged
        ]
        assert all(m["valueBoolean"] is True for m in reported)
        # Its exercises, in the order logged: what was done, and the program that asked.
        logged = [e for e in record.entries if e.session_log_id == log.id]
        exercises = [m for m in members if _code_of(m) == fhir.EXERCISE_DONE]
        assert len(exercises) == len(logged)
        for entry, out in zip(logged, exercises, strict=True):
            assert out["valueBoolean"] is entry.done
            assert [c["valueInteger"] for c in out["component"]] == [
                entry.sets_done,
                entry.reps_done,
            ]
            (program, name) = prescribed[entry.prescription_id]
            assert out["code"]["text"] == (name.strip() or "(exercise)")
            assert out["basedOn"] == [
                {"reference": f"urn:uuid:{fhir.resource_id('Program', program)}"}
            ]
            assert out["status"] == panel["status"]
            assert _category_of(out) == "therapy"
        assert panel.get("note", [{}])[0].get("text", "") == log.note.strip()

    events_out = [o for o in observations if o["code"]["coding"][0]["code"].startswith("event-")]
    assert len(events_out) == len(record.events)
    for event, out in zip(record.events, events_out, strict=True):
        if event.entered_in_error_at is not None:
            assert out["status"] == "entered-in-error"
            assert set(out) <= RETRACTED_KEEPS  # nothing of its content
            continue
        assert out["status"] == "final"
        assert out["effectiveDateTime"] == event.event_date.isoformat()
        steps = [c["valueInteger"] for c in out.get("component", []) if "valueInteger" in c]
        assert steps == ([] if event.fall_steps is None else [event.fall_steps])
        assert out.get("note", [{}])[0].get("text", "") == event.description.strip()

    exam = [o for o in observations if _category_of(o) in {"exam", "imaging"}]
    assert len(exam) == len(record.findings)
    for (finding, author), out in zip(record.findings, exam, strict=True):
        if finding.entered_in_error_at is not None:
            assert out["status"] == "entered-in-error" and set(out) <= RETRACTED_KEEPS
            continue
        assert out["status"] == "final"
        assert out.get("performer") == ([{"display": author.strip()}] if author.strip() else None)
        if finding.result:
            assert out["valueCodeableConcept"]["coding"][0]["code"] == f"result-{finding.result}"

    scores = coded(bundle, "odi") + coded(bundle, "psfs")
    assert sorted(o["valueQuantity"]["value"] for o in scores if o["status"] == "final") == sorted(
        round(o.score, 1) for o in record.outcomes if o.entered_in_error_at is None
    )
    retracted = [o for o in scores if o["status"] == "entered-in-error"]
    assert len(retracted) == sum(o.entered_in_error_at is not None for o in record.outcomes)
    assert all(set(o) <= RETRACTED_KEEPS for o in retracted)

    plans = resources(bundle, resourceType="CarePlan")
    assert len(plans) == len(record.programs)
    for exported, plan in zip(record.programs, plans, strict=True):
        program = exported.program
        ended = program.end_date is not None and program.end_date < TODAY
        assert plan["status"] == ("completed" if ended else "active")
        assert plan["intent"] == "plan"
        assert plan["period"]["start"] == program.start_date.isoformat()
        assert plan.get("period", {}).get("end") == (
            program.end_date.isoformat() if program.end_date else None
        )
        details = [a["detail"] for a in plan.get("activity", [])]
        assert len(details) == len(exported.prescriptions)
        for (prescription, _), detail in zip(exported.prescriptions, details, strict=True):
            assert detail["scheduledTiming"]["repeat"]["frequency"] == (
                prescription.sessions_per_week
            )
            assert detail["description"].startswith(
                f"{prescription.sets} sets of {prescription.reps} repetitions"
            )
            if not prescription.active:
                assert detail["status"] == "stopped"
            elif ended:
                assert detail["status"] == "completed"
        assert len(plan.get("note", [])) == len(exported.phases)

    _check_clinic_records(record, bundle)


def _check_clinic_records(record: fhir.PatientExport, bundle: dict[str, Any]) -> None:
    """Each alert a DetectedIssue citing what it was detected from and the events it names;
    each pin an Observation over the days it was in force."""
    by_url = {entry["fullUrl"]: entry["resource"] for entry in bundle["entry"]}
    issues = resources(bundle, resourceType="DetectedIssue")
    assert len(issues) == len(record.alerts)
    for exported, issue in zip(record.alerts, issues, strict=True):
        alert = exported.alert
        assert issue["status"] == ("final" if alert.status == "resolved" else "preliminary")
        assert issue["severity"] == {"urgent": "high", "routine": "moderate"}[alert.severity]
        assert issue["identifiedDateTime"] == alert.created_at.isoformat()
        assert issue["patient"] == {"reference": f"urn:uuid:{by_url_patient(bundle)}"}
        assert _code_of(issue).startswith(f"alert-{alert.kind.replace('_', '-')}")
        current_keys = {
            (e.event_date.isoformat(), e.event_type)
            for e in record.events
            if e.entered_in_error_at is None
        }
        withdrawn = exported.withdrawn or any(
            (c["date"], c["event"]) not in current_keys for c in alert.related_events
        )
        said = fhir.WITHHELD if withdrawn else alert.explanation.strip()
        assert issue["detail"].startswith(said)
        assert issue["detail"].endswith(f"detected on the data of {alert.detected_on}.")
        cited = {
            (c["code"][0]["coding"][0]["code"]): [by_url[ref["reference"]] for ref in c["detail"]]
            for c in issue.get("evidence", [])
        }
        window = (alert.onset.isoformat(), alert.detected_on.isoformat())
        for data in cited.get("alert-data", []):
            assert window[0] <= data["effectiveDateTime"] <= window[1]
            assert data["status"] != "entered-in-error"
        in_window = [log for log in record.logs if alert.onset <= log.log_date <= alert.detected_on]
        in_window.sort(key=lambda log: log.log_date)
        # Exactly what it was detected from, per kind, as the Bundle names each row's part.
        if alert.kind == "pain_regression":
            parts = [(log.id, alert.metric) for log in in_window]
        elif alert.kind == "adherence_drop":
            parts = [(log.id, "adherence") for log in in_window if log.adherence is not None]
        elif alert.kind == "red_flag":
            parts = [
                (log.id, f"red_flag_{flag.value}")
                for log in in_window
                for flag in RedFlag
                if getattr(log, f"red_flag_{flag.value}")
            ]
        else:
            parts = []
        expected_data = [fhir.resource_id("SessionLog", *part) for part in parts]
        if alert.kind == "function_decline":
            expected_data = [
                fhir.resource_id("OutcomeMeasure", m.id)
                for m in record.outcomes
                if m.entered_in_error_at is None
                and m.instrument == alert.metric
                and alert.onset <= m.measured_on <= alert.detected_on
            ]
        assert [
            ref["reference"].removeprefix("urn:uuid:")
            for c in issue.get("evidence", [])
            if c["code"][0]["coding"][0]["code"] == "alert-data"
            for ref in c["detail"]
        ] == expected_data
        events = cited.get("related-events", [])
        named = {(c["date"], c["event"]) for c in alert.related_events}
        current = [e for e in record.events if e.entered_in_error_at is None]
        assert len(events) == sum(
            (e.event_date.isoformat(), e.event_type) in named for e in current
        )
        for event in events:
            assert event["status"] == "final"
            assert (event["effectiveDateTime"], _code_of(event).removeprefix("event-")) in {
                (d, t.replace("_", "-")) for d, t in named
            }
        mitigation = issue.get("mitigation", [])
        assert len(mitigation) == len(exported.steps)
        for step, said in zip(exported.steps, mitigation, strict=True):
            assert said.get("author") == (
                {"display": step.by.strip()} if step.by and step.by.strip() else None
            )
            automatic = step.action == "resolved" and step.by is None
            assert said["action"]["coding"][0]["code"] == (
                "alert-resolved-automatically"
                if automatic
                else f"alert-{step.action.replace(' ', '-')}"
            )
            if step.note.strip():
                assert said["action"]["text"].endswith(f": {step.note.strip()}")
            when = step.on if automatic and step.on is not None else step.at
            assert said.get("date") == (when.isoformat() if when is not None else None)

    pinned = [
        r
        for r in resources(bundle, resourceType="Observation")
        if _code_of(r).startswith("pinned-baseline-") and r["status"] == "final"
    ]
    # A replaced pin (one that had a level: a return to automatic is never exported) is
    # retracted, its id and code only.
    retracted = {
        r["id"]: set(r)
        for r in resources(bundle, resourceType="Observation")
        if _code_of(r).startswith("pinned-baseline-") and r["status"] == "entered-in-error"
    }
    assert retracted == {
        fhir.resource_id("PinnedBaseline", p.id): {
            "resourceType",
            "id",
            "status",
            "code",
            "subject",
        }
        for p, _ in record.pins
        if p.replaced_at is not None and p.level is not None
    }
    expected = []
    for metric in ("leg_pain", "back_pain"):
        rows = sorted(
            [p for p, _ in record.pins if p.metric == metric and p.replaced_at is None],
            key=lambda p: p.effective_from,
        )  # stable: of one day, the later written wins
        for i, pin in enumerate(rows):
            following = rows[i + 1].effective_from if i + 1 < len(rows) else None
            if pin.level is None or following == pin.effective_from:
                continue  # a return to automatic, or replaced on its first day
            end = None if following is None else (following - dt.timedelta(days=1)).isoformat()
            expected.append((metric, pin.effective_from.isoformat(), end, round(pin.level, 2)))
    assert sorted(
        (
            _code_of(p).removeprefix("pinned-baseline-").replace("-", "_"),
            p["effectivePeriod"]["start"],
            p["effectivePeriod"].get("end"),
            p["valueQuantity"]["value"],
        )
        for p in pinned
    ) == sorted(expected)


def by_url_patient(bundle: dict[str, Any]) -> str:
    return str(resources(bundle, resourceType="Patient")[0]["id"])


def test_a_days_exercises_are_its_panels_members_based_on_the_plan_that_prescribed_them() -> None:
    """Today's log (still preliminary) with exercises of two programs, and one of a
    prescription the export does not hold (no plan to point at: named "(exercise)")."""
    first = Program(id=1, title="After surgery", start_date=dt.date(2025, 6, 1), end_date=None)
    second = Program(id=2, title="Home", start_date=dt.date(2025, 9, 1), end_date=None)
    walk = Prescription(id=11, sets=1, reps=1, hold_seconds=0, sessions_per_week=7, notes="")
    bridge = Prescription(id=21, sets=2, reps=10, hold_seconds=5, sessions_per_week=3, notes="")
    record = fhir.PatientExport(
        patient=Patient(id=5, year_of_birth=1970),
        display_name="Test Patient",
        logs=[Log(7, TODAY, 2, 1, None, None, 0.5, "")],
        events=[],
        findings=[],
        outcomes=[],
        programs=[
            fhir.ProgramExport(first, [(walk, "Walking")]),
            fhir.ProgramExport(second, [(bridge, "Glute bridge")]),
        ],
        entries=[Entry(7, 21, True, 2, 10), Entry(7, 11, False, 0, 0), Entry(7, 99, True, 1, 1)],
    )
    bundle = fhir.patient_bundle(record, TODAY, GENERATED_AT)
    Bundle.model_validate(bundle)
    (panel,) = coded(bundle, "daily-log")
    by_url = {entry["fullUrl"]: entry["resource"] for entry in bundle["entry"]}
    members = [by_url[ref["reference"]] for ref in panel["hasMember"]]
    exercises = [m for m in members if _code_of(m) == fhir.EXERCISE_DONE]
    plans = {p["title"]: f"urn:uuid:{p['id']}" for p in resources(bundle, resourceType="CarePlan")}
    assert [
        (e["code"]["text"], e["valueBoolean"], e.get("basedOn"), e["status"]) for e in exercises
    ] == [
        ("Glute bridge", True, [{"reference": plans["Home"]}], "preliminary"),
        ("Walking", False, [{"reference": plans["After surgery"]}], "preliminary"),
        ("(exercise)", True, None, "preliminary"),
    ]
    assert [c["valueInteger"] for c in exercises[0]["component"]] == [2, 10]
    assert len({e["id"] for e in exercises}) == 3


def _codings(concepts: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [c for concept in concepts or [] for c in concept["coding"]]


def _code_of(observation: dict[str, Any]) -> str:
    return str(observation["code"]["coding"][0]["code"])


def _category_of(observation: dict[str, Any]) -> str | None:
    codes = _codings(observation.get("category"))
    return codes[0]["code"] if codes else None


def test_ids_are_stable_across_exports_and_distinct_between_rows() -> None:
    """Exporting again gives the same resource ids (a receiver updates rather than
    duplicates); two rows, or two parts of one log, never share one."""
    log = Log(1, dt.date(2025, 9, 14), 2, 7, "left", "buttock", 0.5, "slipped")
    record = fhir.PatientExport(Patient(12, 1971), "A. Patient", [log], [], [], [])
    first = fhir.patient_bundle(record, TODAY, GENERATED_AT)
    again = fhir.patient_bundle(record, TODAY, GENERATED_AT + dt.timedelta(days=1))
    assert [e["fullUrl"] for e in first["entry"]] == [e["fullUrl"] for e in again["entry"]]
    assert first["id"] != again["id"]  # the Bundle itself is one export
    other = fhir.PatientExport(Patient(13, None), "B. Patient", [log], [], [], [])
    theirs = fhir.patient_bundle(other, TODAY, GENERATED_AT)
    assert fhir.resource_id("SessionLog", 1, "back_pain") != fhir.resource_id(
        "SessionLog", 1, "leg_pain"
    )
    assert (
        resources(theirs, resourceType="Patient")[0]["id"]
        != (resources(first, resourceType="Patient")[0]["id"])
    )
    assert "birthDate" not in resources(theirs, resourceType="Patient")[0]
    assert resources(first, resourceType="Patient")[0]["birthDate"] == "1971"


def test_the_fall_linked_alert_cites_her_leg_pain_and_the_fall_and_says_what_was_done() -> None:
    """The seed case: left leg pain up after the fall on the stairs, acknowledged with a
    note, resolved automatically once back near baseline; an entry of the same fall marked
    entered in error is not cited. Her leg-pain pins: one ended by the next, the next by a
    return to automatic; a back-pain pin replaced on its first day governed nothing."""
    september = [dt.date(2025, 9, d) for d in range(12, 19)]
    logs = [
        Log(100 + i, day, 1, pain, "left", "buttock", 1.0, "")
        for i, (day, pain) in enumerate(zip(september, [1, 1, 1, 6, 7, 7, 7], strict=True))
    ]
    fall = Event(7, FALL_DAY, "fall", "left", "buttock", "", "stairs", 10, None, "buttocks")
    mistaken = dataclasses.replace(fall, id=8, entered_in_error_at=GENERATED_AT)
    alert = Alert(
        id=31,
        kind="pain_regression",
        metric="leg_pain",
        severity="routine",
        status="resolved",
        onset=dt.date(2025, 9, 15),
        detected_on=dt.date(2025, 9, 17),
        explanation="Left leg pain 7/10 (3-day median) vs baseline 1/10 (+6).",
        related_events=[{"date": FALL_DAY.isoformat(), "event": "fall", "note": ""}],
    )
    acknowledged_at = dt.datetime(2025, 9, 17, 16, 0, tzinfo=dt.UTC)
    steps = [
        Step("acknowledged", "Dr Example", acknowledged_at, None, "Phoned her.", ""),
        Step(
            "resolved", None, dt.datetime(2025, 10, 9, tzinfo=dt.UTC), dt.date(2025, 10, 8), "",
            "back near baseline",
        ),
    ]  # fmt: skip
    pinned = [
        (Pin(1, "leg_pain", 1.0, 0.8, dt.date(2025, 6, 1)), "Dr Example"),
        (Pin(2, "back_pain", 3.0, None, dt.date(2025, 6, 1)), "Dr Example"),
        (Pin(3, "back_pain", 2.0, None, dt.date(2025, 6, 1)), "Dr Other"),
        (Pin(4, "leg_pain", 2.0, None, dt.date(2025, 8, 1)), "Dr Example"),
        (Pin(5, "leg_pain", None, None, dt.date(2025, 9, 1)), "Dr Example"),
        # Replaced by pin 4 (pinned from an earlier date): retracted, and no part of the
        # periods of the others.
        (Pin(6, "leg_pain", 5.0, None, dt.date(2025, 8, 15), GENERATED_AT), "Dr Other"),
    ]
    record = fhir.PatientExport(
        Patient(12, 1971),
        "A. Patient",
        logs,
        [fall, mistaken],
        [],
        [],
        alerts=[fhir.AlertExport(alert, steps)],
        pins=pinned,
    )
    bundle = fhir.patient_bundle(record, TODAY, GENERATED_AT)
    Bundle.model_validate(bundle)
    by_url = {entry["fullUrl"]: entry["resource"] for entry in bundle["entry"]}

    (issue,) = resources(bundle, resourceType="DetectedIssue")
    assert issue["code"]["coding"][0]["code"] == "alert-pain-regression-leg-pain"
    assert issue["code"]["text"] == "Leg pain regression"
    assert (issue["status"], issue["severity"]) == ("final", "moderate")
    assert issue["detail"] == (
        "Left leg pain 7/10 (3-day median) vs baseline 1/10 (+6)."
        " Onset 2025-09-15, detected on the data of 2025-09-17."
    )
    assert issue["identifiedDateTime"] == GENERATED_AT.isoformat()
    data, events = issue["evidence"]
    assert [
        (by_url[r["reference"]]["effectiveDateTime"], by_url[r["reference"]]["valueInteger"])
        for r in data["detail"]
    ] == [("2025-09-15", 6), ("2025-09-16", 7), ("2025-09-17", 7)]
    assert {by_url[r["reference"]]["bodySite"]["text"] for r in data["detail"]} == {"Left leg"}
    assert events["detail"] == [{"reference": f"urn:uuid:{fhir.resource_id('Event', 7)}"}]
    assert [
        (m["action"]["coding"][0]["code"], m["action"]["text"], m["date"], m.get("author"))
        for m in issue["mitigation"]
    ] == [
        (
            "alert-acknowledged",
            "Acknowledged: Phoned her.",
            acknowledged_at.isoformat(),
            {"display": "Dr Example"},
        ),
        (
            "alert-resolved-automatically",
            "Resolved automatically (back near baseline)",
            "2025-10-08",
            None,
        ),
    ]

    pins_out = [
        r
        for r in resources(bundle, resourceType="Observation")
        if _code_of(r).startswith("pinned-baseline-") and r["status"] == "final"
    ]
    (replaced,) = [
        r
        for r in resources(bundle, resourceType="Observation")
        if _code_of(r).startswith("pinned-baseline-") and r["status"] == "entered-in-error"
    ]
    assert replaced["id"] == fhir.resource_id("PinnedBaseline", 6)
    assert (
        replaced["code"]["text"] == "Pinned baseline: Leg pain" and "valueQuantity" not in replaced
    )
    assert [
        (
            p["code"]["text"],
            p["effectivePeriod"],
            p["valueQuantity"]["value"],
            [c["valueQuantity"]["value"] for c in p.get("component", [])],
            p["performer"],
        )
        for p in pins_out
    ] == [
        (
            "Pinned baseline: Leg pain",
            {"start": "2025-06-01", "end": "2025-07-31"},
            1.0,
            [0.8],
            [{"display": "Dr Example"}],
        ),
        (
            "Pinned baseline: Leg pain",
            {"start": "2025-08-01", "end": "2025-08-31"},
            2.0,
            [],
            [{"display": "Dr Example"}],
        ),
        (
            "Pinned baseline: Back pain",
            {"start": "2025-06-01"},
            2.0,
            [],
            [{"display": "Dr Other"}],
        ),
    ]


def test_an_alert_citing_an_entry_since_marked_entered_in_error_keeps_none_of_its_words() -> None:
    """A fall recorded on the wrong patient: the alert it raised was resolved with its words
    (which name the fall); the export withdraws the fall's content, and so the alert's words.
    So too an alert the detector resolved because the corrected record no longer shows it."""
    wrong = Event(9, dt.date(2025, 8, 2), "fall", "left", None, "slipped on marble", "stairs")
    wrong = dataclasses.replace(wrong, entered_in_error_at=GENERATED_AT)
    logs = [Log(200 + d, dt.date(2025, 8, d), 1, 7, "left", None, None, "") for d in (3, 4, 5)]

    def alert(alert_id: int, related: list[dict[str, Any]]) -> Alert:
        return Alert(
            id=alert_id,
            kind="pain_regression",
            metric="leg_pain",
            severity="urgent",
            status="resolved",
            onset=dt.date(2025, 8, 3),
            detected_on=dt.date(2025, 8, 5),
            explanation="Left leg pain 7/10. Began after a fall on stairs (slipped on marble).",
            related_events=related,
        )

    cites_fall = alert(1, [{"date": "2025-08-02", "event": "fall", "note": "slipped on marble"}])
    record = fhir.PatientExport(
        Patient(12, 1971),
        "A. Patient",
        logs,
        [wrong],
        [],
        [],
        alerts=[
            fhir.AlertExport(cites_fall),
            fhir.AlertExport(alert(2, []), withdrawn=True),
            fhir.AlertExport(alert(3, [])),
        ],
    )
    bundle = fhir.patient_bundle(record, TODAY, GENERATED_AT)
    Bundle.model_validate(bundle)
    first, second, third = resources(bundle, resourceType="DetectedIssue")
    for withheld in (first, second):
        assert withheld["detail"] == (
            f"{fhir.WITHHELD} Onset 2025-08-03, detected on the data of 2025-08-05."
        )
        assert "marble" not in json.dumps(withheld)
        assert [c["code"][0]["coding"][0]["code"] for c in withheld["evidence"]] == ["alert-data"]
    assert third["detail"].startswith("Left leg pain 7/10. Began after a fall")


def test_a_function_decline_cites_the_scores_of_its_own_instrument_in_its_window() -> None:
    """ODI worse: its evidence is the ODI scores from its onset to its detection, not the
    PSFS scores of those days, not an ODI score before its onset, not one marked in error."""
    scores = [
        Outcome(1, "odi", dt.date(2025, 6, 1), 20.0),
        Outcome(2, "odi", dt.date(2025, 7, 1), 24.0),
        Outcome(3, "psfs", dt.date(2025, 7, 1), 6.0),
        Outcome(4, "odi", dt.date(2025, 7, 29), 38.0),
        Outcome(5, "odi", dt.date(2025, 7, 30), 80.0, entered_in_error_at=GENERATED_AT),
    ]
    decline = Alert(
        id=1,
        kind="function_decline",
        metric="odi",
        severity="routine",
        status="open",
        onset=dt.date(2025, 7, 1),
        detected_on=dt.date(2025, 7, 30),
        explanation="ODI 38 vs 20 (+18).",
        related_events=[],
    )
    record = fhir.PatientExport(
        Patient(12, 1971), "A. Patient", [], [], [], scores, alerts=[fhir.AlertExport(decline)]
    )
    bundle = fhir.patient_bundle(record, TODAY, GENERATED_AT)
    Bundle.model_validate(bundle)
    (issue,) = resources(bundle, resourceType="DetectedIssue")
    assert issue["code"]["coding"][0]["code"] == "alert-function-decline-odi"
    assert issue["code"]["text"] == "ODI decline"
    assert issue["status"] == "preliminary"
    ((data,),) = [[c] for c in issue["evidence"]]
    assert data["detail"] == [
        {"reference": f"urn:uuid:{fhir.resource_id('OutcomeMeasure', i)}"} for i in (2, 4)
    ]
