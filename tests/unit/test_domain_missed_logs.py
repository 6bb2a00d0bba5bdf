"""Missed logging while a program asks for logs (`rehab.domain.missed_logs`): runs of
programs, the stretches without logs inside them, and the episodes the detector makes of them."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rehab.domain.detection import (
    DEFAULT_CONFIG,
    PatientSeries,
    detect_episodes,
    detect_episodes_many,
)
from rehab.domain.missed_logs import Gap, Period, asked_gaps, program_runs, stretches_of

D = dt.date(2026, 3, 1)
S = D.toordinal()
N = 3


def day(offset: int) -> dt.date:
    return D + dt.timedelta(days=offset)


def run_of(day: dt.date, runs: list[Period]) -> Period | None:
    """The run of programs in effect on `day`, if any."""
    return next((r for r in runs if r[0] <= day and (r[1] is None or day <= r[1])), None)


@pytest.mark.parametrize(
    ("periods", "run"),
    [
        ([], None),
        ([(D, None)], (D, None)),
        ([(D, day(9))], (D, day(9))),
        # A program replaced by the next (ended the day before it starts): one unbroken run.
        ([(day(10), day(30)), (D, day(9))], (D, day(30))),
        ([(D, day(9)), (day(10), None)], (D, None)),
        # A break in care between two programs ends the run.
        ([(D, day(9)), (day(12), None)], (D, day(9))),
        ([(day(-30), day(-1))], None),
        ([(day(1), None)], None),
    ],
)
def test_which_run_of_programs_asks_for_logs_on_a_day(
    periods: list[Period], run: Period | None
) -> None:
    assert run_of(D, program_runs(periods)) == run


@pytest.mark.parametrize(
    ("log_days", "runs", "as_of", "known_from", "gaps"),
    [
        # Never logged since the program began.
        ([], [(D, None)], S + 5, None, [Gap(S, S + 2, None, None, S)]),
        # Began logging on day 4: the first three days are a gap the first log closed.
        ([S + 4], [(D, None)], S + 4, None, [Gap(S, S + 2, S + 4, None, S)]),
        # Discharged on day 9 with the last log on day 1: closed the day after the end.
        ([S, S + 1], [(D, day(9))], S + 20, None, [Gap(S + 2, S + 4, S + 10, S + 1, S, True)]),
        # Taken on again on day 20 after logging every day of the first program, no log since.
        (
            list(range(S, S + 10)),
            [(D, day(9)), (day(20), None)],
            S + 25,
            None,
            [Gap(S + 20, S + 22, None, S + 9, S + 20)],
        ),
        # A window of a longer history from day 5: what began before it is left out.
        ([S + 8], [(D, None)], S + 12, S + 5, [Gap(S + 9, S + 11, None, S + 8, S)]),
        # Two days without a log are not three.
        ([S, S + 3], [(D, None)], S + 3, None, []),
        # A planned end after today: still open.
        ([S], [(D, day(30))], S + 5, None, [Gap(S + 1, S + 3, None, S, S)]),
    ],
)
def test_stretches_without_logs_inside_the_programs(
    log_days: list[int],
    runs: list[Period],
    as_of: int,
    known_from: int | None,
    gaps: list[Gap],
) -> None:
    assert asked_gaps(stretches_of(log_days), runs, as_of, N, known_from) == gaps


def _day_by_day(log_days: set[int], runs: list[Period], as_of: int, n: int) -> list[int]:
    """The detection days, walking the calendar: the Nth day in a row without a log while a
    run asks for logs (the count starts again at each run)."""
    detected = []
    for start, end in runs:
        last = min(as_of, end.toordinal()) if end is not None else as_of
        without = 0
        for d in range(start.toordinal(), last + 1):
            without = 0 if d in log_days else without + 1
            if without == n:
                detected.append(d)
    return detected


@given(
    logs=st.sets(st.integers(0, 80), max_size=40),
    cuts=st.lists(st.integers(0, 90), min_size=2, max_size=6, unique=True),
    open_ended=st.booleans(),
    as_of=st.integers(0, 95),
    n=st.integers(1, 7),
)
def test_gaps_are_the_calendars_nth_days_without_a_log_inside_the_runs(
    logs: set[int], cuts: list[int], open_ended: bool, as_of: int, n: int
) -> None:
    bounds = sorted(cuts)
    periods: list[Period] = [
        (day(a), day(b - 1)) for a, b in zip(bounds[0::2], bounds[1::2], strict=False) if b > a
    ]
    if open_ended and periods:
        periods[-1] = (periods[-1][0], None)
    runs = program_runs(periods)
    log_days = sorted(S + d for d in logs if d <= as_of)
    gaps = asked_gaps(stretches_of(log_days), runs, S + as_of, n)
    assert [g.detected for g in gaps] == _day_by_day(set(log_days), runs, S + as_of, n)
    for gap in gaps:
        run = run_of(dt.date.fromordinal(gap.detected), runs)
        assert run is not None and gap.onset >= run[0].toordinal()
        assert gap.detected == gap.onset + n - 1 <= S + as_of
        assert not any(gap.onset <= d <= gap.detected for d in log_days)
        if gap.resolved is not None:
            assert gap.resolved > gap.detected


@given(logs=st.sets(st.integers(0, 120), min_size=1, max_size=60), as_of=st.integers(0, 130))
def test_one_open_program_from_the_first_log_changes_nothing(logs: set[int], as_of: int) -> None:
    """The CSV contract counts from the first log on, for good: a program that began that day
    and has not ended gives the same missed-log episodes."""
    dates = tuple(sorted(day(d) for d in logs))
    plain = PatientSeries("p", dates, (1,) * len(dates), (1,) * len(dates))
    asked = PatientSeries(
        "p", dates, (1,) * len(dates), (1,) * len(dates), logging_asked=((dates[0], None),)
    )

    def missed(series: PatientSeries) -> list[tuple[dt.date, dt.date, dt.date | None, str]]:
        return [
            (e.onset, e.detected_on, e.resolved_on, e.explanation)
            for e in detect_episodes(series, DEFAULT_CONFIG, as_of=day(as_of))
            if e.kind == "missed_logs"
        ]

    assert missed(asked) == missed(plain)


def test_a_patient_who_never_logged_is_alerted_with_the_program_start() -> None:
    series = PatientSeries("p", (), (), (), logging_asked=((D, None),))
    (episode,) = detect_episodes(series, DEFAULT_CONFIG, as_of=day(10))
    assert (episode.kind, episode.onset, episode.detected_on, episode.resolved_on) == (
        "missed_logs",
        D,
        day(DEFAULT_CONFIG.missed_log_days - 1),
        None,
    )
    assert episode.explanation == (
        f"No log for {DEFAULT_CONFIG.missed_log_days} days since the program started "
        f"{D.isoformat()} (no log yet)."
    )
    # Without programs (the CSV contract) there is nothing to count from.
    assert detect_episodes(PatientSeries("p", (), (), ()), DEFAULT_CONFIG, as_of=day(10)) == ()


@given(
    logs=st.sets(st.integers(0, 80), max_size=40),
    cuts=st.lists(st.integers(-10, 90), min_size=1, max_size=6, unique=True),
    open_ended=st.booleans(),
    as_of=st.integers(0, 95),
    batch_mates=st.integers(0, 2),
)
# One open program begun after the first log (the longer path), before it with a stretch before
# the first log (the shorter one), and no log at all.
@example(logs={0, 4, 10}, cuts=[3], open_ended=True, as_of=12, batch_mates=1)
@example(logs={5, 6}, cuts=[0], open_ended=True, as_of=20, batch_mates=1)
@example(logs=set(), cuts=[0], open_ended=True, as_of=20, batch_mates=1)
def test_the_detector_alerts_the_gaps_of_the_programs(
    logs: set[int], cuts: list[int], open_ended: bool, as_of: int, batch_mates: int
) -> None:
    """Whatever the programs (one open program from before the first log takes a shorter
    path in the detector), the missed-log episodes are `asked_gaps`' — in a batch with other
    patients too."""
    bounds = sorted(cuts)
    periods: list[Period] = [
        (day(a), day(b - 1)) for a, b in zip(bounds[0::2], bounds[1::2], strict=False)
    ]
    if open_ended and len(bounds) % 2:
        periods.append((day(bounds[-1]), None))  # the odd bound starts one with no end
    elif open_ended and periods:
        periods[-1] = (periods[-1][0], None)
    dates = tuple(day(d) for d in sorted(logs))
    ones = (1,) * len(dates)
    series = PatientSeries("p", dates, ones, ones, logging_asked=tuple(periods))
    others = [
        PatientSeries(f"o{i}", dates[i::2], ones[i::2], ones[i::2]) for i in range(batch_mates)
    ]
    found = [
        (e.onset, e.detected_on, e.resolved_on, e.program_ended)
        for e in detect_episodes_many([*others, series], DEFAULT_CONFIG, as_of=day(as_of))["p"]
        if e.kind == "missed_logs"
    ]
    log_days = [d.toordinal() for d in dates if d <= day(as_of)]
    n = DEFAULT_CONFIG.missed_log_days
    expected = [
        (
            dt.date.fromordinal(g.onset),
            dt.date.fromordinal(g.detected),
            None if g.resolved is None else dt.date.fromordinal(g.resolved),
            g.run_ended,
        )
        for g in asked_gaps(stretches_of(log_days), program_runs(periods), S + as_of, n)
    ]
    assert found == expected
