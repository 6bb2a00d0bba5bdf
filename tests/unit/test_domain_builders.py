"""Small builders of patient series for the domain tests (and a check that they build what
the tests assume)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, timedelta

from rehab.domain.series import PatientEvent, PatientSeries

START = date(2025, 1, 1)


def day(n: int) -> date:
    return START + timedelta(days=n)


def series(
    leg: Sequence[int | None],
    back: Sequence[int | None] | None = None,
    *,
    events: Sequence[PatientEvent] = (),
    red_flag_days: Sequence[int] = (),
    adherence: Sequence[float | None] | None = None,
    patient_id: str = "P1",
    leg_side: str | None = None,
) -> PatientSeries:
    """A series with one log per day from START (a None in both pain lists: no log that day)."""
    back_values = list(back) if back is not None else [None if v is None else 1 for v in leg]
    logged = [k for k in range(len(leg)) if leg[k] is not None or back_values[k] is not None]
    adherence_values = list(adherence) if adherence is not None else [1.0] * len(leg)
    return PatientSeries(
        patient_id=patient_id,
        dates=tuple(day(k) for k in logged),
        back_pain=tuple(back_values[k] for k in logged),
        leg_pain=tuple(leg[k] for k in logged),
        adherence=tuple(adherence_values[k] for k in logged),
        red_flags=tuple(("new_numbness",) if k in red_flag_days else () for k in logged),
        leg_side=tuple(leg_side for _ in logged),
        events=tuple(events),
    )


def up_to(s: PatientSeries, last: date) -> PatientSeries:
    """The series as it stood on `last`: its logs dated by then (events, outcomes and the rest
    kept as they are)."""
    kept = sum(1 for d in s.dates if d <= last)
    return dataclasses.replace(
        s,
        dates=s.dates[:kept],
        back_pain=s.back_pain[:kept],
        leg_pain=s.leg_pain[:kept],
        adherence=s.adherence[:kept],
        red_flags=s.red_flags[:kept],
        leg_side=s.leg_side[:kept],
    )


def pain_alerts(episodes: Sequence[object], metric: str = "leg_pain") -> list[object]:
    return [
        e
        for e in episodes
        if getattr(e, "kind", None) == "pain_regression" and getattr(e, "metric", None) == metric
    ]


def test_series_builder_skips_days_without_any_log() -> None:
    built = series([1, None, 3], [2, None, None])
    assert built.dates == (day(0), day(2))
    assert built.leg_pain == (1, 3)
    assert built.back_pain == (2, None)
