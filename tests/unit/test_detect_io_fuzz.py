"""Fuzzing the CSV importer of `rehab detect` and the API's date parsing with hypothesis
(issue 6, item 6).

The importer's contract (design §4): any input either parses, or raises `DetectInputError`
naming the line (1 = header) and, where a cell is at fault, its column; never another
exception. Parsed input must also replay through the detector. The API's dates (query
parameters and bodies) are parsed by pydantic: a bad one is a `ValidationError` (the API's
422), never anything else.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rehab.detect_io import CSV_COLUMNS, DetectInput, DetectInputError, parse_detect_csv
from rehab.domain.config import DEFAULT_CONFIG
from rehab.domain.detection import detect_episodes_many
from rehab.services.commands import EventInput, SessionLogInput
from rehab.web.schemas import SeriesQuery

FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HUGE = "9" * 200_000  # beyond csv's field size limit (131072)

DATES = st.one_of(
    st.dates(dt.date(2024, 1, 1), dt.date(2024, 3, 31)).map(dt.date.isoformat),
    st.sampled_from(
        ["2024-02-29", "2023-02-29", "2024-13-01", "2024-00-10", "0000-01-01", "0001-01-01",
         "9999-12-31", "2024-1-5", "2024/01/05", "20240105", " 2024-01-05 ", "2024-01-05T00:00",
         "２０２４-01-05", "2024-01-05\x00", "", "yesterday"]
    ),
)  # fmt: skip
PAIN = st.one_of(
    st.integers(0, 10).map(str),
    st.sampled_from(["", "11", "-1", "3.0", "1e1", "٣", "²", "10 ", "0x3", "NaN", "007", HUGE]),
)
ADHERENCE = st.one_of(
    st.floats(0, 1).map(repr),
    st.sampled_from(["", "1.5", "-0", "nan", "inf", "-inf", "1_0", "0,5", ".5", "1e-3", "½"]),
)
FLAG = st.sampled_from(["", "0", "1", "2", "yes", "true", " 1"])
EVENT = st.sampled_from(["", "fall", "FALL", "surgery", "imaging", "other", "flood", "fall "])
SIDE = st.sampled_from(["", "left", "Right", "both", "none", "centre"])
NOTE = st.one_of(
    st.text(max_size=30),
    st.sampled_from(['say "hi"', "a,b", "line\nbreak", "\ufeffbom", "'", '"', "\r", HUGE]),
)
CELLS: dict[str, st.SearchStrategy[str]] = {
    "patient_id": st.one_of(st.sampled_from(["p1", "p2", "p3"]), st.text(max_size=8)),
    "date": DATES,
    "back_pain": PAIN,
    "leg_pain": PAIN,
    "adherence": ADHERENCE,
    "red_flag": FLAG,
    "event": EVENT,
    "event_note": NOTE,
    "leg_side": SIDE,
    "red_flags": st.one_of(
        st.sampled_from(["new_numbness;new_weakness", "Saddle numbness", "numb", ";;", "x;"]),
        st.text(max_size=12),
    ),
    "event_side": SIDE,
    "event_body_region": NOTE,
    "event_mechanism": NOTE,
}


def check_error(error: DetectInputError, text: str) -> None:
    """The error names a line that exists (1 = header) and, if any, a column >= 1."""
    lines = text.count("\n") + text.count("\r") + 2
    assert 1 <= error.line <= lines, (error.line, lines)
    assert error.column is None or error.column >= 1
    assert str(error).startswith(f"line {error.line}")


def parse(text: str) -> DetectInput | DetectInputError:
    try:
        return parse_detect_csv(io.StringIO(text, newline=""))
    except DetectInputError as exc:
        check_error(exc, text)
        return exc


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
@example("")
@example("\ufeff")
@example("patient_id,date\n")
@example('patient_id,date\n"p1,2024-01-01\n')
@example("patient_id,date\np1,2024-01-01\x00\n")
@example("patient_id,date,patient_id\np1,2024-01-01,p2\n")
@example("patient_id;date\np1;2024-01-01\n")
@example(f"patient_id,date,event_note\np1,2024-01-01,{HUGE}\n")
def test_any_text_parses_or_names_the_line(text: str) -> None:
    parse(text)


def mostly(valid: st.SearchStrategy[str], odd: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Valid cells nine times in ten, so that whole documents parse often enough."""
    return st.integers(0, 9).flatmap(lambda n: odd if n == 0 else valid)


VALID_CELLS: dict[str, st.SearchStrategy[str]] = {
    "patient_id": st.sampled_from(["p1", "p2", "p3"]),
    "date": st.dates(dt.date(2024, 1, 1), dt.date(2024, 3, 31)).map(dt.date.isoformat),
    "back_pain": st.one_of(st.just(""), st.integers(0, 10).map(str)),
    "leg_pain": st.one_of(st.just(""), st.integers(0, 10).map(str)),
    "adherence": st.one_of(st.just(""), st.floats(0, 1).map(repr)),
    "red_flag": st.sampled_from(["", "0", "0", "0", "1"]),
    "event": st.sampled_from(["", "", "", "fall", "surgery"]),
    "event_note": st.text(max_size=10),
    "leg_side": st.sampled_from(["", "left", "right", "both"]),
    "red_flags": st.sampled_from(["", "", "new_numbness", "new_weakness; saddle_numbness"]),
    "event_side": st.sampled_from(["", "left", "right"]),
    "event_body_region": st.text(max_size=10),
    "event_mechanism": st.text(max_size=10),
}


@st.composite
def csv_documents(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A CSV with a header of known (and unknown) columns and rows of mostly valid cells."""
    optional = [c for c in CSV_COLUMNS if c not in ("patient_id", "date")]
    extra = draw(st.lists(st.sampled_from([*optional, "unknown", "Date"]), max_size=8))
    columns = ["patient_id", "date", *extra]
    if draw(st.integers(0, 9)) == 0:  # sometimes a required column is missing or odd
        columns[draw(st.integers(0, 1))] = draw(st.sampled_from(["", " date ", "\ufeffdate"]))
    columns = draw(st.permutations(columns))
    rows = []
    for _ in range(draw(st.integers(0, 15))):
        row = []
        for name in columns:
            key = name.strip().lstrip("\ufeff")
            cell = mostly(VALID_CELLS.get(key, st.text(max_size=5)), CELLS.get(key, st.text()))
            row.append(draw(cell))
        if draw(st.integers(0, 19)) == 0:
            row = row[: draw(st.integers(0, len(row)))]  # a short row
        rows.append(row)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue(), columns


@FUZZ
@given(csv_documents())
def test_csv_documents_parse_or_name_line_and_column(document: tuple[str, list[str]]) -> None:
    text, header = document
    result = parse(text)
    if isinstance(result, DetectInputError):
        event("refused")
        if result.column is not None:
            assert result.column <= len(header) + 1
        return
    event("parsed")
    # What parses, replays through the detector (the worker's code) without error.
    detect_episodes_many(result.patients, DEFAULT_CONFIG, as_of=result.last_date)


@st.composite
def valid_documents(draw: st.DrawFn) -> tuple[str, dict[str, set[dt.date]]]:
    """Only valid values: the parse must succeed and keep every logged day."""
    days = st.dates(dt.date(2024, 1, 1), dt.date(2024, 2, 29))
    logged: dict[str, set[dt.date]] = {}
    buffer = io.StringIO()
    # "\r\n" as the terminator: the writer then quotes any cell holding \r or \n.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for _ in range(draw(st.integers(1, 25))):
        patient = draw(st.sampled_from(["p1", "p2", "x 3", 'quote"d']))
        day = draw(days)
        leg = draw(st.integers(0, 10))
        if day in logged.setdefault(patient, set()):
            continue  # a second value for the same day would be a (correct) error
        logged[patient].add(day)
        row = [patient, day.isoformat(), "", str(leg), "", draw(FLAG.filter(
            lambda f: f in ("", "0", "1"))), "", draw(st.text(max_size=10)), "",
            draw(VALID_CELLS["red_flags"]), "", "", ""]  # fmt: skip
        writer.writerow(row)
    return buffer.getvalue(), logged


@FUZZ
@given(valid_documents())
def test_valid_documents_always_parse(document: tuple[str, dict[str, set[dt.date]]]) -> None:
    text, logged = document
    result = parse(text)
    assert isinstance(result, DetectInput), result
    assert {p.patient_id: set(p.dates) for p in result.patients} == logged
    detect_episodes_many(result.patients, DEFAULT_CONFIG, as_of=result.last_date)


# --- the API's dates ------------------------------------------------------------------------

JSON_VALUES = st.one_of(
    st.text(max_size=30),
    DATES,
    st.integers(),
    st.floats(allow_nan=True),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)


@FUZZ
@given(start=st.one_of(st.none(), st.text(max_size=30), DATES), end=st.one_of(st.none(), DATES))
def test_series_query_dates_parse_or_are_a_validation_error(start: Any, end: Any) -> None:
    query = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    try:
        parsed = SeriesQuery.model_validate(query)
    except ValidationError as exc:
        assert exc.errors()
        return
    assert parsed.start is None or isinstance(parsed.start, dt.date)
    if parsed.start and parsed.end:
        assert parsed.start <= parsed.end


@FUZZ
@given(log_date=JSON_VALUES, event_date=JSON_VALUES)
def test_body_dates_parse_or_are_a_validation_error(log_date: Any, event_date: Any) -> None:
    log = {"client_id": "c" * 32, "log_date": log_date, "back_pain": 1, "leg_pain": 0}
    event = {"event_date": event_date, "event_type": "other"}
    for model, body in ((SessionLogInput, log), (EventInput, event)):
        try:
            model.model_validate(body)
        except ValidationError as exc:
            assert exc.errors()


@pytest.mark.parametrize("text", ["2024-02-30", "2024-02-29T10:00:00", "99999-01-01", "1e9"])
def test_odd_series_dates_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        SeriesQuery.model_validate({"start": text})
