"""The batch replay's building blocks against their plain definitions: reading log columns,
running sums per series, the baselines alerts show, the window statistic's moments."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rehab.domain.baseline import LogCalendar, RunningSums, ShownBaselines, pain_baselines
from rehab.domain.clinical import (
    clinically_important_pain_rise,
    clinically_important_pain_rise_array,
)
from rehab.domain.config import DEFAULT_CONFIG
from rehab.domain.noise import RHO_GRID, trimmed_mean_moments, trimmed_mean_moments_of
from rehab.domain.packing import Batch
from rehab.domain.series import PatientSeries

START = date(2025, 1, 1)


def _patient(
    pid: str, leg: list[int | None], adherence: tuple[float | None, ...] = ()
) -> PatientSeries:
    dates = tuple(START + timedelta(days=2 * k) for k in range(len(leg)))
    return PatientSeries(pid, dates, tuple(1 for _ in leg), tuple(leg), adherence=adherence)


def test_log_columns_read_as_the_values_logged() -> None:
    batch = Batch(
        [
            _patient("A", [1, None, 3], (0.5, None, 1.0)),
            PatientSeries("E", (), (), ()),
            _patient("B", [10, 0], ()),  # no adherence column at all
        ],
        None,
    )
    assert batch.patients[1] is None
    np.testing.assert_array_equal(batch.column("leg_pain"), [1, np.nan, 3, 10, 0])
    np.testing.assert_array_equal(batch.column("adherence"), [0.5, np.nan, 1.0, np.nan, np.nan])
    np.testing.assert_array_equal(batch.day, [0, 2, 4, 0, 2])


def test_as_of_keeps_the_logs_dated_up_to_it() -> None:
    batch = Batch([_patient("A", [1, 2, 3, 4]), _patient("B", [5])], START + timedelta(days=3))
    np.testing.assert_array_equal(batch.n_logs, [2, 1])
    np.testing.assert_array_equal(batch.column("leg_pain"), [1, 2, 5])
    early = Batch([_patient("A", [1, 2])], START - timedelta(days=1))
    assert early.patients == [None]


@settings(max_examples=100, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=6), data=st.data()
)
def test_running_sums_are_each_series_own(lengths: list[int], data: st.DataObject) -> None:
    """Every series summed as if it were alone, to the last bit, whatever precedes it."""
    values = np.array(
        data.draw(st.lists(st.floats(-1e3, 1e3), min_size=sum(lengths), max_size=sum(lengths)))
    )
    starts = np.cumsum([0, *lengths[:-1]])
    series_first = np.repeat(starts, lengths)
    index = np.arange(values.shape[0])
    first = np.array(
        [data.draw(st.integers(int(f), int(i))) for f, i in zip(series_first, index, strict=True)]
    )
    sums = RunningSums(values.shape[0], series_first)
    got = sums.before(sums.totals(values), first)
    for i in range(values.shape[0]):
        alone = values[series_first[i] : i]
        total = np.concatenate([[0.0], np.cumsum(alone)])
        assert got[i] == total[i - series_first[i]] - total[first[i] - series_first[i]]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(min_value=0, max_value=10), min_size=10, max_size=150),
    pinned=st.booleans(),
)
def test_the_baselines_shown_are_the_medians_of_their_periods(
    values: list[int], pinned: bool
) -> None:
    days = np.arange(len(values), dtype=np.int64) * 2 + 100
    value = np.array(values, dtype=np.float64)
    calendar = LogCalendar(days, int(days[-1]) + 100)
    baselines = pain_baselines(days, value, calendar, DEFAULT_CONFIG)
    if pinned:
        baselines.pinned[5:] = True
    anchors = np.arange(7, len(values))
    for ratings in (True, False):
        shown = ShownBaselines(days, value, calendar, baselines, ratings=ratings)(anchors)
        for anchor, got in zip(anchors.tolist(), shown.tolist(), strict=True):
            expected = baselines.shown_level(days, value, calendar, anchor)
            assert got == expected or (np.isnan(got) and np.isnan(expected))


def test_the_moments_of_many_window_lengths_at_once_are_np_interp() -> None:
    rng = np.random.default_rng(5)
    rho = np.concatenate([rng.uniform(-0.2, 1.2, 4000), np.array(RHO_GRID), [np.nan, 0.9, 0.0]])
    widths = rng.integers(3, 21, rho.shape[0])
    mean, sd = trimmed_mean_moments_of(widths, rho)
    for width in range(3, 21):
        which = widths == width
        table_mean, table_sd = trimmed_mean_moments(width, rho[which])
        np.testing.assert_array_equal(mean[which], table_mean)
        np.testing.assert_array_equal(sd[which], table_sd)
    with pytest.raises(ValueError):
        trimmed_mean_moments_of(np.array([2]), np.array([0.5]))


def test_the_clinically_important_rise_elementwise() -> None:
    levels = np.array([0.0, 4.4, 7.49, 7.5, 8.49, 8.5, 10.0])
    assert clinically_important_pain_rise_array(levels).tolist() == [
        clinically_important_pain_rise(v) for v in levels.tolist()
    ]
