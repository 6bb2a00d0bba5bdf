"""`write_series_csv` and `parse_detect_csv` agree: what `rehab export` writes, `rehab detect`
reads back as the same logs and events (hypothesis), so a file exported from the clinic
replays as the worker saw the patient."""

from __future__ import annotations

import datetime as dt
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from rehab.detect_io import CSV_COLUMNS, parse_detect_csv, write_series_csv
from rehab.domain.series import UNSPECIFIED_RED_FLAG, PatientEvent, PatientSeries
from rehab.domain.vocabulary import EventType, RedFlag

START = dt.date(2025, 1, 1)
# What the app stores: text without surrounding blanks (the importer strips cells).
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs")), max_size=12)
FREE_TEXT = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "slipped, on marble",
            'said "ouch"',
            "line\nbreak",
            "a\rb",
            "a;b",
            "=1+1",
            "-3 steps",
            "+x",
            "@here",
            "'quoted'",
            "'=2",
            "''",
        ]
    ),
)
FLAGS = st.one_of(
    st.just(()),
    st.just((UNSPECIFIED_RED_FLAG,)),
    st.lists(st.sampled_from([f.value for f in RedFlag]), min_size=1, unique=True).map(tuple),
)
EVENTS = st.builds(
    PatientEvent,
    date=st.dates(START - dt.timedelta(days=400), START + dt.timedelta(days=60)),
    event_type=st.sampled_from([e.value for e in EventType]),
    note=FREE_TEXT,
    side=st.sampled_from([None, "left", "right", "both"]),
    body_region=st.one_of(st.none(), TEXT.filter(bool)),
    mechanism=st.one_of(st.none(), FREE_TEXT.filter(bool)),
)


@st.composite
def patient_series(draw: st.DrawFn, patient_id: str) -> PatientSeries:
    days = sorted(draw(st.sets(st.integers(0, 60), max_size=25)))
    n = len(days)
    pain = st.integers(0, 10)
    return PatientSeries(
        patient_id=patient_id,
        dates=tuple(START + dt.timedelta(days=d) for d in days),
        # A stored log always has its back pain (the form and the API require it).
        back_pain=tuple(draw(st.lists(pain, min_size=n, max_size=n))),
        leg_pain=tuple(draw(st.lists(st.one_of(st.none(), pain), min_size=n, max_size=n))),
        adherence=tuple(
            draw(st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=n, max_size=n))
        ),
        red_flags=tuple(draw(st.lists(FLAGS, min_size=n, max_size=n))),
        leg_side=tuple(
            draw(st.lists(st.sampled_from([None, "left", "right", "both"]), min_size=n, max_size=n))
        ),
        events=tuple(sorted(draw(st.lists(EVENTS, max_size=4)), key=lambda e: e.date)),
    )


def logged_patients() -> st.SearchStrategy[list[PatientSeries]]:
    return st.lists(st.sampled_from(["1", "2", "17"]), unique=True, max_size=3).flatmap(
        lambda ids: st.tuples(*(patient_series(pid) for pid in sorted(ids))).map(list)
    )


@settings(max_examples=300, deadline=None)
@given(logged_patients())
def test_what_is_written_reads_back_the_same(patients: list[PatientSeries]) -> None:
    buffer = io.StringIO()
    write_series_csv(patients, buffer)
    parsed = parse_detect_csv(io.StringIO(buffer.getvalue(), newline=""))

    expected = [p for p in patients if p.dates or p.events]
    assert [p.patient_id for p in parsed.patients] == [p.patient_id for p in expected]
    for got, want in zip(parsed.patients, expected, strict=True):
        assert got.dates == want.dates
        assert got.back_pain == want.back_pain
        assert got.leg_pain == want.leg_pain
        assert got.adherence == want.adherence  # exactly: every digit a fraction needs
        assert got.red_flags == want.red_flags
        assert got.leg_side == want.leg_side
        assert got.events == want.events


def test_the_header_names_every_column_and_our_columns_come_last() -> None:
    buffer = io.StringIO()
    write_series_csv([], buffer)
    assert buffer.getvalue() == ",".join(CSV_COLUMNS) + "\r\n"
    # The §4 columns first, in the contract's order: a reader of §4 files finds them there.
    assert CSV_COLUMNS[:8] == (
        "patient_id", "date", "back_pain", "leg_pain", "adherence", "red_flag", "event",
        "event_note",
    )  # fmt: skip


def test_free_text_is_never_a_spreadsheet_formula() -> None:
    event = PatientEvent(
        date=START, event_type="fall", note="=HYPERLINK(1)", body_region="@x", mechanism="-1"
    )
    buffer = io.StringIO()
    write_series_csv([PatientSeries("1", (), (), (), events=(event,))], buffer)
    cells = buffer.getvalue().splitlines()[1].split(",")
    text_cells = [c for c in cells if c]
    assert all(not c.startswith(("=", "+", "-", "@")) for c in text_cells), cells
    assert "'=HYPERLINK(1)" in cells and "'@x" in cells and "'-1" in cells


def test_named_red_flags_mark_the_day_and_unknown_names_are_refused() -> None:
    text = (
        "patient_id,date,back_pain,red_flag,red_flags\n"
        "p1,2025-01-01,2,0,new_weakness; Saddle numbness\n"
        "p1,2025-01-02,2,1,\n"
    )
    (patient,) = parse_detect_csv(io.StringIO(text, newline="")).patients
    assert patient.red_flags == (("new_weakness", "saddle_numbness"), (UNSPECIFIED_RED_FLAG,))

    bad = "patient_id,date,back_pain,red_flags\np1,2025-01-01,2,new_weakness;tingling\n"
    try:
        parse_detect_csv(io.StringIO(bad, newline=""))
    except ValueError as exc:
        assert str(exc).startswith("line 2, column 4: red_flags:"), exc
        assert "'tingling'" in str(exc)
    else:
        raise AssertionError("an unknown red flag was accepted")
