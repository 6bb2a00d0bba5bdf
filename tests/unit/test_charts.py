"""The figure builders, asserted on `fig.to_dict()`: the baseline band (the detector's own),
event and findings markers at their dates, alert spans, axis ranges, the change view, the
outcome and progress charts; empty and one-day series; every figure valid against the plotly
schema; payloads of two years within budget; JSON safe to embed."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from rehab.charts import baseline, grid, outcomes, progress, serialize, sparkline, trajectory
from rehab.charts.model import (
    AlertSpan,
    BaselineBand,
    DailyLogs,
    Marker,
    OutcomePoint,
    ProgressData,
    Trajectory,
)
from rehab.domain.config import DEFAULT_CONFIG
from rehab.domain.episodes import _pack, _pain_baselines_with_pins, _prepare
from rehab.domain.series import PatientSeries, PinnedBaseline
from rehab.services import caseload

D = dt.date
END = D(2025, 9, 18)
FALL = D(2025, 9, 14)


def days_back(n: int, end: dt.date = END) -> list[dt.date]:
    return [end - dt.timedelta(days=n - 1 - i) for i in range(n)]


def quiet_then_fall(n: int = 120) -> DailyLogs:
    """A settled patient (leg ~1, back ~1) who falls 4 days before the end: leg 6–7."""
    dates = days_back(n)
    rng = random.Random(4)
    leg = [rng.choice([0, 1, 1, 2]) if d < FALL else 6 + (d > FALL) for d in dates]
    back = [rng.choice([0, 1, 1, 2]) for _ in dates]
    adherence = [round(rng.uniform(0.6, 1.0), 2) for _ in dates]
    return DailyLogs(tuple(dates), tuple(leg), tuple(back), tuple(adherence))


def build(logs: DailyLogs, **extra: Any) -> Trajectory:
    start = extra.pop("start", logs.dates[0] if logs.dates else END - dt.timedelta(days=29))
    end = extra.pop("end", END)
    bands = {
        m: baseline.daily_band(start, end, logs.dates, logs.column(m), frozen=extra.pop(m, ()))
        for m in ("leg_pain", "back_pain")
    }
    return Trajectory(start, end, logs, bands, **extra)


FALL_ALERT = AlertSpan(
    "pain_regression", "leg_pain", "urgent", "open", FALL, None, "Leg pain up · urgent · open"
)
OLD_ALERT = AlertSpan(
    "adherence_drop",
    "adherence",
    "routine",
    "resolved",
    D(2025, 7, 1),
    D(2025, 7, 9),
    "Adherence down · routine · resolved",
)
MARKERS = (
    Marker(FALL, "fall", "Fall", "A fall on stairs (10 steps, landed on buttocks)"),
    Marker(D(2025, 9, 10), "travel", "Travel", "Travel (holiday abroad)"),
    Marker(D(2025, 9, 16), "findings", "Findings", "9 neurodynamic tests: 9 negative."),
    Marker(D(2023, 1, 1), "surgery", "Surgery", "Long ago: outside the chart"),
)


def trace(fig: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [t for t in fig["data"] if t.get("name") == name]
    return found


def valid(fig: go.Figure) -> dict[str, Any]:
    """The figure's dict, after checking it against plotly's schema (the builders skip that
    check at run time: it costs more than the rest of the page)."""
    go.Figure(fig.to_dict())
    return fig.to_dict()


# --- the baseline band ------------------------------------------------------------------------


def test_band_is_baseline_plus_minus_the_clinically_important_change() -> None:
    logs = DailyLogs(tuple(days_back(60)), (1,) * 60, (5,) * 60, (1.0,) * 60)
    t = build(logs)
    fig = valid(trajectory.trajectory_figure(t))
    name = "Leg pain: baseline ± clinically important change"
    lower, upper = trace(fig, name + " (lower edge)"), trace(fig, name)
    assert upper["fill"] == "tonexty" and upper["yaxis"] == "y"
    # No baseline before a week of logs; then level 1 ± 2 (MDC), clipped at 0.
    assert lower["y"][:7] == [None] * 7 and upper["y"][:7] == [None] * 7
    assert set(upper["y"][7:]) == {3} and set(lower["y"][7:]) == {0}
    assert upper["x0"] == "2025-07-21" and upper["dx"] == grid.DAY_MS
    assert len(upper["y"]) == t.days == 60
    back = trace(fig, "Back pain: baseline ± clinically important change")
    assert back["yaxis"] == "y2" and set(back["y"][7:]) == {7}  # 5 + 2


def test_band_level_is_the_detectors_own_baseline() -> None:
    """The adapter's per-log level equals the level the detector's replay judges each log
    against (same building blocks, same packing, same pins)."""
    logs = quiet_then_fall(150)
    pin = PinnedBaseline("leg_pain", 2.0, D(2025, 8, 1))
    series = PatientSeries("p", logs.dates, logs.back_pain, logs.leg_pain, pinned_baselines=(pin,))
    patient = _prepare(series, None)
    packed = _pack([patient], ["leg_pain"], DEFAULT_CONFIG.baseline_min_logs, DEFAULT_CONFIG)
    assert packed is not None
    detector = _pain_baselines_with_pins(packed, [patient], DEFAULT_CONFIG).level
    [mine] = baseline.levels_before(
        [
            baseline.SeriesQuery(
                logs.dates,
                [float(v) for v in logs.leg_pain],  # type: ignore[arg-type]
                END + dt.timedelta(days=1),
                [baseline.Pin(2.0, D(2025, 8, 1))],
            )
        ]
    )
    np.testing.assert_allclose(
        np.array([np.nan if v is None else v for v in mine[:-1]]), detector, equal_nan=True
    )
    # The pin holds from its date on.
    band = baseline.daily_band(
        logs.dates[0], END, logs.dates, logs.leg_pain, pins=[baseline.Pin(2.0, D(2025, 8, 1))]
    )
    first_pinned = (D(2025, 8, 1) - logs.dates[0]).days
    assert set(band.level[first_pinned:]) == {2.0}
    assert band.level[first_pinned - 1] != 2.0
    assert "Pinned by a clinician at 2 from 2025-08-01" in band.source


def test_band_holds_an_open_alerts_baseline_over_the_episode() -> None:
    logs = quiet_then_fall(90)
    held = baseline.daily_band(
        logs.dates[0],
        END,
        logs.dates,
        logs.leg_pain,
        frozen=[baseline.Frozen(FALL, None, 0.0)],
    )
    free = baseline.daily_band(logs.dates[0], END, logs.dates, logs.leg_pain)
    i = (FALL - logs.dates[0]).days
    assert held.level[i:] == (0.0,) * (len(held.level) - i)
    assert held.level[:i] == free.level[:i]
    # Without the hold, the rise starts to leak into the level the next days are judged by.
    assert free.level[-1] is not None and free.level[-1] > 0.5
    assert held.margin[-1] == 2.0


def test_gaps_in_logging_carry_the_next_logs_baseline() -> None:
    dates = days_back(30)
    kept = [d for i, d in enumerate(dates) if i % 3 != 1]
    band = baseline.daily_band(dates[0], END, kept, [2] * len(kept))
    assert len(band.level) == 30
    known = [v for v in band.level if v is not None]
    assert known and set(known) == {2.0}


# --- markers, spans, axes ---------------------------------------------------------------------


def test_event_and_findings_markers_at_their_dates() -> None:
    t = build(quiet_then_fall(), markers=MARKERS)
    fig = valid(trajectory.trajectory_figure(t))
    lines = {(s["name"], s["x0"]) for s in fig["layout"]["shapes"] if s["type"] == "line"}
    assert lines == {
        ("marker:fall", "2025-09-14"),
        ("marker:travel", "2025-09-10"),
        ("marker:findings", "2025-09-16"),
    }
    fall_line = next(s for s in fig["layout"]["shapes"] if s["name"] == "marker:fall")
    assert fall_line["x1"] == "2025-09-14" and fall_line["line"]["dash"] == "dot"
    strip = trace(fig, "Events and findings")
    assert strip["x"] == ["2025-09-10", "2025-09-14", "2025-09-16"]
    assert strip["text"] == ["Travel", "Fall", "Findings"]
    assert strip["marker"]["symbol"] == ["hexagon", "triangle-down", "diamond-open"]
    assert "Sun 14 Sep 2025: A fall on stairs" in strip["hovertext"][1]
    # Labels of days close together sit on different rows.
    assert len(set(strip["y"])) == 3
    assert fig["layout"]["meta"]["labelTrace"] == fig["data"].index(strip)


def test_same_day_markers_merge() -> None:
    merged = trajectory.merged_markers(
        [
            Marker(FALL, "imaging", "Imaging", "Lumbar MRI: clear"),
            Marker(FALL, "imaging", "Imaging", "Pelvic MRI: lesion"),
        ]
    )
    assert [(m.label, m.detail) for m in merged] == [
        ("Imaging ×2", "Lumbar MRI: clear / Pelvic MRI: lesion")
    ]


def test_alert_spans_shade_their_panel_with_a_label() -> None:
    red_flag = AlertSpan("red_flag", "", "urgent", "resolved", FALL, FALL, "Red flag · urgent")
    decline = AlertSpan("function_decline", "odi", "routine", "open", FALL, None, "ODI worse")
    t = build(quiet_then_fall(), alerts=(FALL_ALERT, OLD_ALERT, red_flag, decline))
    fig = valid(trajectory.trajectory_figure(t))
    rects = {s["name"]: s for s in fig["layout"]["shapes"] if s["type"] == "rect"}
    assert set(rects) == {
        "alert:pain_regression:leg_pain",
        "alert:adherence_drop:adherence",
        "alert:red_flag:",
    }  # function decline is drawn on the outcomes chart
    fall = rects["alert:pain_regression:leg_pain"]
    assert (fall["x0"], fall["x1"], fall["yref"]) == ("2025-09-14", "2025-09-18 12:00", "y domain")
    assert fall["label"]["text"] == "Leg pain up · urgent · open"
    assert fall["label"]["textposition"] == "top right"  # reads inwards from the edge
    assert fall["line"]["dash"] == "solid"
    old = rects["alert:adherence_drop:adherence"]
    assert (old["x0"], old["x1"], old["yref"]) == ("2025-07-01", "2025-07-10", "y3 domain")
    assert old["line"]["dash"] == "dot" and old["label"]["textposition"] == "top left"
    flag = rects["alert:red_flag:"]
    assert flag["yref"] == "paper" and flag["x1"] == "2025-09-15"


def test_axis_ranges_show_the_last_90_days_with_fixed_pain_scales() -> None:
    t = build(quiet_then_fall(400))
    fig = valid(trajectory.trajectory_figure(t))
    layout = fig["layout"]
    assert layout["xaxis"]["type"] == "date"
    assert layout["xaxis"]["range"] == ["2025-06-20 12:00", "2025-09-18 12:00"]
    assert layout["yaxis"]["range"] == layout["yaxis2"]["range"] == [-0.5, 10.5]
    assert layout["yaxis3"]["range"] == [0, 100]
    assert layout["yaxis"]["domain"][0] > layout["yaxis2"]["domain"][1]
    presets = {p.key: p for p in trajectory.range_presets(t)}
    assert presets["30d"].range == ["2025-08-19 12:00", "2025-09-18 12:00"]
    assert presets["1y"].range == ["2024-09-18 12:00", "2025-09-18 12:00"]
    assert presets["all"].range == [grid.noon(t.start - dt.timedelta(days=1)), "2025-09-18 12:00"]
    assert [p.key for p in presets.values() if p.selected] == ["90d"]
    everything = valid(trajectory.trajectory_figure(t, days=None))
    assert everything["layout"]["xaxis"]["range"] == presets["all"].range


def test_short_or_stale_series_show_everything() -> None:
    short = build(quiet_then_fall(40), start=END - dt.timedelta(days=39))
    assert trajectory.initial_days(short) is None
    stale_logs = DailyLogs((D(2024, 1, 1),), (3,), (2,), (None,))
    stale = build(stale_logs)
    assert trajectory.initial_days(stale) is None


def test_points_smoothing_adherence_and_hover_sentences() -> None:
    t = build(quiet_then_fall(60))
    fig = valid(trajectory.trajectory_figure(t))
    points = trace(fig, "Leg pain (daily)")
    assert points["mode"] == "markers" and points["marker"]["symbol"] == "circle"
    assert points["y"][-1] == 7 and points["x0"] == grid.iso(t.start)
    assert points["hovertemplate"].startswith("%{x|%a %-d %b %Y}: leg pain %{y} out of 10")
    assert points["customdata"][0] == "not set yet"
    assert float(points["customdata"][-1]) == t.baselines["leg_pain"].level[-1]
    back = trace(fig, "Back pain (daily)")
    assert back["marker"]["symbol"] == "diamond"  # not colour alone
    smooth = trace(fig, "Leg pain (7-day average)")
    assert smooth["line"]["dash"] == "solid"
    assert trace(fig, "Back pain (7-day average)")["line"]["dash"] == "dash"
    bars = trace(fig, "Exercises done (% of prescribed)")
    assert bars["type"] == "bar" and bars["yaxis"] == "y3"
    assert all(v is None or (isinstance(v, int) and 0 <= v <= 100) for v in bars["y"])
    assert "% of the prescribed exercises done" in bars["hovertemplate"]


def test_empty_and_one_day_series_render() -> None:
    empty = Trajectory(END - dt.timedelta(days=29), END, DailyLogs())
    for fig in (trajectory.trajectory_figure(empty), trajectory.change_figure(empty)):
        d = valid(fig)
        assert d["layout"]["annotations"][0]["text"] == "No daily logs yet"
        json.loads(serialize.figure_json(fig))
    one = build(DailyLogs((END,), (4,), (2,), (0.5,)), start=END - dt.timedelta(days=29))
    d = valid(trajectory.trajectory_figure(one))
    assert trace(d, "Leg pain (daily)")["y"][-1] == 4
    assert set(trace(d, "Leg pain (7-day average)")["y"]) == {None}
    valid(trajectory.change_figure(one))
    single_day = build(DailyLogs((END,), (4,), (2,), (None,)), start=END)
    valid(trajectory.trajectory_figure(single_day))
    assert trajectory.summary_sentences(empty)[0] == "Leg pain: nothing logged in the last 7 days."


# --- change vs baseline -----------------------------------------------------------------------


def test_change_view_is_value_minus_baseline_with_the_band_around_zero() -> None:
    logs = DailyLogs(tuple(days_back(60)), (1,) * 56 + (7,) * 4, (2,) * 60, (1.0,) * 60)
    t = build(
        logs,
        alerts=(FALL_ALERT,),
        markers=MARKERS[:1],
        leg_pain=[baseline.Frozen(D(2025, 9, 15), None, 1.0)],
    )
    fig = valid(trajectory.change_figure(t))
    change = trace(fig, "Leg pain: change from baseline")
    assert change["y"][-1] == 6 and change["y"][20] == 0
    assert change["customdata"][-1] == 7  # the rating itself, for the hover sentence
    band = trace(fig, "Leg pain: baseline ± clinically important change")
    assert set(band["y"][7:]) == {2}
    assert set(
        trace(fig, "Leg pain: baseline ± clinically important change (lower edge)")["y"][7:]
    ) == {-2}
    layout = fig["layout"]
    assert layout["yaxis"]["range"] == [-7.5, 7.5] and layout["yaxis"]["zeroline"] is True
    assert {s["name"] for s in layout["shapes"]} == {
        "alert:pain_regression:leg_pain",
        "marker:fall",
    }


# --- outcomes, progress, sparkline --------------------------------------------------------------


def test_outcomes_chart() -> None:
    points = [
        OutcomePoint(D(2024, 7, 29), "odi", 52),
        OutcomePoint(D(2024, 10, 28), "odi", 30),
        OutcomePoint(D(2024, 7, 29), "psfs", 1.8),
    ]
    decline = AlertSpan(
        "function_decline", "odi", "routine", "resolved", D(2024, 7, 29), D(2024, 10, 28), "ODI"
    )
    fig = valid(outcomes.outcomes_figure(points, [decline, FALL_ALERT], today=D(2024, 11, 1)))
    odi = trace(fig, "ODI")
    assert odi["x"] == ["2024-07-29", "2024-10-28"] and odi["y"] == [52, 30]
    assert odi["text"] == ["52", "30"] and odi["marker"]["symbol"] == "square"
    assert trace(fig, "PSFS")["yaxis"] == "y2"
    assert fig["layout"]["yaxis"]["range"] == [-5, 105]
    [span] = fig["layout"]["shapes"]
    assert (span["x0"], span["yref"]) == ("2024-07-29", "y domain")
    empty = valid(outcomes.outcomes_figure([]))
    assert empty["layout"]["annotations"][0]["text"] == "No questionnaires yet"


def test_progress_chart_is_simple_and_readable() -> None:
    p = ProgressData(
        (D(2025, 9, 4), D(2025, 9, 11), D(2025, 9, 18)), (6.2, None, 1.4), (3, 2, 1.5), 6.2, 3.0
    )
    fig = valid(progress.progress_figure(p))
    leg = trace(fig, "Leg pain")
    assert leg["x"] == ["2025-09-04", "2025-09-11", "2025-09-18"] and leg["y"] == [6.2, None, 1.4]
    assert fig["layout"]["dragmode"] is False and fig["layout"]["showlegend"] is True
    starts = {s["name"]: s for s in fig["layout"]["shapes"]}
    assert starts["start:leg_pain"]["y0"] == 6.2
    assert starts["start:leg_pain"]["label"]["text"] == "Leg pain when you started: 6.2"
    assert progress.CONFIG["displayModeBar"] is False
    empty = valid(progress.progress_figure(ProgressData((), (), (), None, None)))
    assert "first log" in empty["layout"]["annotations"][0]["text"]


def test_sparkline_paths_break_at_missing_days() -> None:
    line = sparkline.sparkline([0, 10, None, 5, None, None, 2, 2], [None] * 8, 8)
    assert line.leg_path == "M3 29L19 3M52 16h0M101 24L117 24"
    assert line.back_path == ""
    assert line.description == "Last 8 days: leg pain from 0 to 2 (range 0–10); back pain: no logs."
    assert sparkline.path([]) == ""


# --- payload ------------------------------------------------------------------------------


def test_two_years_of_logs_stay_well_under_the_payload_budget() -> None:
    logs = quiet_then_fall(730)
    t = build(logs, alerts=(FALL_ALERT, OLD_ALERT), markers=MARKERS)
    main = serialize.figure_json(trajectory.trajectory_figure(t), trajectory.CONFIG)
    change = serialize.figure_json(trajectory.change_figure(t), trajectory.CONFIG)
    assert len(main.encode()) + len(change.encode()) < 120_000
    spec = json.loads(main)
    assert "template" not in spec["layout"] or spec["layout"]["template"] == {}
    assert spec["config"]["displayModeBar"] is False
    # One value per day, no dates repeated per point.
    assert all("x" not in tr for tr in spec["data"] if tr["name"] != "Events and findings")


def test_embedded_json_cannot_close_its_script_element() -> None:
    evil = Marker(END, "other", "Event", "</script><script>alert(1)</script> & more")
    t = build(
        DailyLogs((END,), (1,), (1,), (1.0,)), start=END - dt.timedelta(days=29), markers=(evil,)
    )
    text = serialize.figure_json(trajectory.trajectory_figure(t))
    assert "</script" not in text and "<" not in text and "&" not in text
    assert (
        "</script><script>alert(1)</script> & more" in json.loads(text)["data"][-1]["hovertext"][0]
    )


@pytest.mark.parametrize("values", [[None, None], [3.0], [1.0, None, 2.0, 3.0, None]])
def test_smoothing_needs_three_logs_in_the_window(values: list[float | None]) -> None:
    smooth = grid.smoothed(values)
    assert len(smooth) == len(values)
    if sum(v is not None for v in values) < 3:
        assert set(smooth) == {None}


def test_band_type_is_plain_data() -> None:
    band = BaselineBand((1.0, None), (2.0, None))
    assert band.current() is None


def test_probe_levels_for_many_series_match_one_at_a_time() -> None:
    """The caseload's packed computation gives each series the level `levels_before` gives
    it alone (pins included)."""
    rng = np.random.default_rng(7)
    since = D(2025, 7, 1)
    series, days, values, probes, queries = [], [], [], [], []
    pins = {2: [(30, 3.0, None)]}
    for s in range(5):
        logged = sorted(rng.choice(63, size=int(rng.integers(0, 60)), replace=False).tolist())
        probe = int(rng.integers(56, 63))
        value = rng.integers(0, 8, size=len(logged)).astype(float)
        series += [s] * len(logged)
        days += logged
        values += value.tolist()
        probes.append(probe)
        before = [(d, v) for d, v in zip(logged, value.tolist(), strict=True) if d < probe]
        queries.append(
            baseline.SeriesQuery(
                [since + dt.timedelta(days=d) for d, _ in before],
                [v for _, v in before],
                since + dt.timedelta(days=probe),
                [
                    baseline.Pin(lvl, since + dt.timedelta(days=first))
                    for first, lvl, _ in pins.get(s, [])
                ],
            )
        )
    packed = baseline.probe_levels(
        np.array(series, dtype=np.int64),
        np.array(days, dtype=np.int64),
        np.array(values),
        np.array(probes, dtype=np.int64),
        pins,
    )
    one_by_one = [levels[-1] for levels in baseline.levels_before(queries)]
    np.testing.assert_allclose(
        packed, np.array([np.nan if v is None else v for v in one_by_one]), equal_nan=True
    )
    assert packed[2] == 3.0


def test_page_json_is_the_figures_json() -> None:
    """Pages embed the spec without the Figure wrapper: the same document."""
    t = build(quiet_then_fall(), alerts=(FALL_ALERT,), markers=MARKERS)
    for spec, fig in (
        (trajectory.trajectory_spec(t), trajectory.trajectory_figure(t)),
        (trajectory.change_spec(t), trajectory.change_figure(t)),
    ):
        assert json.loads(serialize.figure_json(spec)) == json.loads(serialize.figure_json(fig))


def test_the_caseloads_63_days_give_the_full_historys_level() -> None:
    """The caseload reads the detector's baseline from the last 63 days of logs only; with
    noisy, autocorrelated pain and flares the level stays within 0.1 point of the one read
    from two years of history."""
    rng = np.random.default_rng(3)
    series, days, values = [], [], []
    n_series, n_days = 200, 730
    for s in range(n_series):
        noise = np.zeros(n_days)
        for i in range(1, n_days):
            noise[i] = 0.6 * noise[i - 1] + rng.normal(0, 1.1)
        level = rng.uniform(0.5, 6) + noise
        flares = rng.random(n_days) < 0.04
        level[flares] += rng.uniform(3, 6, flares.sum())
        logged = rng.random(n_days) < 0.85
        value = np.clip(np.rint(level), 0, 10)[logged]
        series += [s] * int(logged.sum())
        days += np.flatnonzero(logged).tolist()
        values += value.tolist()
    series_a, days_a, values_a = np.array(series), np.array(days), np.array(values)
    probe = np.full(n_series, n_days - 7)
    full = baseline.probe_levels(series_a, days_a, values_a, probe)
    recent = days_a >= n_days - caseload.LOOKBACK_DAYS
    part = baseline.probe_levels(series_a[recent], days_a[recent], values_a[recent], probe)
    assert np.nanmax(np.abs(full - part)) < 0.1
