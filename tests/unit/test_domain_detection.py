"""Examples of the detector's decisions: baselines, explanations, episodes, events, the other
alert kinds, and the batch and single-patient entry points agreeing."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rehab.domain.alerts import AlertEpisode
from rehab.domain.baseline import (
    LogCalendar,
    pain_baselines,
    pin_applies,
    pin_in_force,
    pin_periods,
)
from rehab.domain.clinical import clinically_important_pain_rise, pain_mcid
from rehab.domain.config import DEFAULT_CONFIG, DetectionConfig
from rehab.domain.detection import (
    detect_episodes,
    detect_episodes_many,
    open_episodes,
    trim_series,
)
from rehab.domain.explain import format_number, metric_label
from rehab.domain.series import (
    DailyLog,
    HistoryItem,
    OutcomeScore,
    PatientEvent,
    PatientSeries,
    PinnedBaseline,
)
from rehab.domain.simulation import generate_cohort
from tests.unit.test_domain_builders import day, pain_alerts, series, up_to

QUIET = [1, 0, 1, 1, 2, 1, 0, 1, 1, 1] * 6  # 60 days of a settled patient at ~1/10


def _only(alerts: list[object]) -> AlertEpisode:
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    assert isinstance(alert, AlertEpisode)
    return alert


# --- clinical thresholds (design §3) -------------------------------------------------------


def test_mcid_grows_with_the_starting_level() -> None:
    assert [pain_mcid(v) for v in (1, 4, 5, 7, 8, 9, 10)] == [1, 1, 2, 2, 3, 3.5, 3.5]


def test_an_alert_needs_at_least_the_minimal_detectable_change() -> None:
    assert clinically_important_pain_rise(1) == 2  # MCID 1, but a 1-point day is noise
    assert clinically_important_pain_rise(8) == 3


# --- baselines -----------------------------------------------------------------------------


def _baselines(values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    days = np.arange(len(values), dtype=np.int64) + 100
    result = pain_baselines(
        days,
        np.array(values, dtype=np.float64),
        LogCalendar(days, len(values) + 200),
        DEFAULT_CONFIG,
    )
    return result.level, result.noise


def test_no_baseline_before_a_week_of_logs() -> None:
    level, _ = _baselines([3] * 10)
    assert np.isnan(level[:7]).all()
    assert level[7] == 3


def test_a_flare_barely_moves_the_baseline() -> None:
    values = [2] * 40 + [10, 10] + [2] * 5
    level, noise = _baselines(values)
    assert level[-1] < 2.5
    assert noise[-1] < 2.0


def test_the_baseline_follows_a_recovering_patient_down() -> None:
    values = [7] * 30 + [2] * 12
    level, _ = _baselines(values)
    assert level[29] == 7
    assert level[-1] <= 2.5  # the recent ten days, not the six weeks


def test_a_pinned_baseline_is_used_and_said() -> None:
    leg = [4] * 40 + [5, 5, 5, 5]
    pinned = dataclasses.replace(
        series(leg), pinned_baselines=(PinnedBaseline("leg_pain", 1.0, day(30), pinned_by="x"),)
    )
    alert = _only(pain_alerts(detect_episodes(pinned)))
    assert alert.baseline == 1.0
    # From the pin on, 4/10 is 3 points above it: the first 3-log window after the pin.
    assert alert.detected_on == day(32)
    assert alert.baseline_source.startswith("pinned")
    assert pain_alerts(detect_episodes(series(leg))) == []  # +1 against her own baseline


def test_a_pin_ends_where_the_metric_returns_to_automatic() -> None:
    """A pin is in force until the metric's next row; a row with no level returns it to the
    automatic baseline (the pin's days keep the pin)."""
    leg = [4] * 40 + [5, 5, 5, 5]
    pin = PinnedBaseline("leg_pain", 1.0, day(30), pinned_by="x")

    def alerts(*pins: PinnedBaseline) -> list[AlertEpisode]:
        return pain_alerts(detect_episodes(dataclasses.replace(series(leg), pinned_baselines=pins)))

    # Ended after the alert was raised (day 32): it stands, judged against the pin.
    (kept,) = alerts(pin, PinnedBaseline("leg_pain", None, day(35)))
    assert (kept.detected_on, kept.baseline) == (day(32), 1.0)
    # Ended the day it began (the later row of one day wins): as if never pinned.
    assert alerts(pin, PinnedBaseline("leg_pain", None, day(30))) == []
    # Ended before the window could fill: nothing.
    assert alerts(pin, PinnedBaseline("leg_pain", None, day(31))) == []
    # A return to automatic before the pin's date ends nothing after it.
    assert [a.detected_on for a in alerts(PinnedBaseline("leg_pain", None, day(20)), pin)] == [
        day(32)
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=30),
            st.one_of(st.none(), st.floats(min_value=0, max_value=10)),
            st.one_of(st.none(), st.floats(min_value=0.8, max_value=5)),
        ),
        max_size=6,
    )
)
def test_pin_periods_give_the_latest_row_in_force_each_day(
    pins: list[tuple[int, float | None, float | None]],
) -> None:
    periods = pin_periods(pins)
    for d in range(-1, 33):
        started = [(start, k) for k, (start, _, _) in enumerate(pins) if start <= d]
        latest = pins[max(started)[1]] if started else None
        expected = latest if latest is not None and latest[1] is not None else None
        found = pin_in_force(periods, d)
        assert (None if found is None else (found.start, found.level, found.spread)) == expected
        in_force = [p for p in periods if pin_applies(p, np.array([d]))[0]]
        assert len(in_force) == (0 if expected is None else 1)


# --- explanation ---------------------------------------------------------------------------


def test_the_seed_case_reads_as_facts() -> None:
    fall = PatientEvent(
        date(2025, 9, 14),
        "fall",
        note="",
        side="left",
        mechanism="on stairs (10 steps, landed on buttocks)",
    )
    start = date(2025, 8, 1)
    days = [start + timedelta(days=k) for k in range(47)]
    leg = [1 if k % 3 else 0 for k in range(45)] + [7, 7]
    history = (HistoryItem("left L4-L5 decompression", "2024-06", kind="surgery"),)
    patient = PatientSeries(
        patient_id="seed",
        dates=tuple(days),
        back_pain=tuple([1] * 47),
        leg_pain=tuple(leg),
        leg_side=tuple(["left"] * 47),
        events=(fall,),
        history=history,
    )
    alert = _only(pain_alerts(detect_episodes(patient)))
    assert alert.onset == date(2025, 9, 15)
    assert alert.detected_on == date(2025, 9, 16)
    assert alert.explanation == (
        "Left leg pain 7/10 (mean of the last 2 logs, both since the fall on 2025-09-14) vs "
        "baseline 1/10 (+6; clinically important ≥ 2). Began 1 day after a fall on stairs (10 "
        "steps, landed on buttocks), left side, logged 2025-09-14. History: left L4-L5 "
        "decompression 2024-06."
    )
    assert alert.severity == "urgent"  # a fall after spine surgery
    assert alert.related_events[0].event == "fall"
    assert alert.linked_event is not None and alert.linked_event.date == date(2025, 9, 14)


def test_labels_and_numbers() -> None:
    assert metric_label("leg_pain", "both") == "Leg pain (both sides)"
    assert metric_label("back_pain") == "Back pain"
    assert format_number(7.0) == "7"
    assert format_number(6.5) == "6.5"


# --- episodes ------------------------------------------------------------------------------


def test_an_episode_resolves_when_back_near_baseline_and_a_later_rise_opens_a_new_one() -> None:
    leg = QUIET + [6] * 8 + QUIET[:20] + [7] * 6 + QUIET[:10]
    alerts = pain_alerts(detect_episodes(series(leg)))
    assert len(alerts) == 2
    first, second = alerts
    assert isinstance(first, AlertEpisode) and isinstance(second, AlertEpisode)
    assert first.onset == day(60)
    assert first.resolved_on is not None and day(68) < first.resolved_on < day(76)
    assert second.onset == day(88)
    assert second.detected_on > first.resolved_on
    assert second.resolved_on is not None


def test_at_most_one_open_episode_per_kind_and_metric() -> None:
    leg = QUIET + [7] * 40
    alerts = pain_alerts(detect_episodes(series(leg)))
    assert len(alerts) == 1
    assert open_episodes(alerts) == tuple(alerts)  # type: ignore[arg-type]


def test_leg_and_back_pain_are_judged_separately() -> None:
    leg = QUIET + [1] * 10
    back = QUIET + [7] * 10
    episodes = detect_episodes(series(leg, back))
    assert pain_alerts(episodes, "leg_pain") == []
    assert _only(pain_alerts(episodes, "back_pain")).metric == "back_pain"


# --- events lower the evidence needed ------------------------------------------------------


def test_a_fall_lowers_the_evidence_needed() -> None:
    leg = [*QUIET, 5, 5]
    fall = PatientEvent(day(59), "fall", "missed the last stair")
    assert pain_alerts(detect_episodes(series(leg))) == []
    with_fall = _only(pain_alerts(detect_episodes(series(leg, events=[fall]))))
    assert with_fall.detected_on == day(61)
    assert "Began 1 day after a fall (missed the last stair) logged" in with_fall.explanation


def test_a_fall_the_explanation_names_is_among_the_related_events_however_old() -> None:
    # A rise that begins 14 days after the fall and is detected a few days later: the fall
    # is older than the 14 days before detection, yet it is how the alert says it began.
    leg = [*QUIET, *QUIET[:14], 6, 6, 7, 6, 7, 6]
    fall = PatientEvent(day(60), "fall", "slipped on the ice")
    alert = _only(pain_alerts(detect_episodes(series(leg, events=[fall]))))
    assert alert.detected_on > day(74)
    assert "Began 14 days after a fall (slipped on the ice)" in alert.explanation
    assert [(e.date, e.event) for e in alert.related_events] == [(day(60), "fall")]


def test_an_event_is_sooner_but_a_single_day_still_never_alerts() -> None:
    leg = [*QUIET, 9, *QUIET[:10]]
    fall = PatientEvent(day(60), "fall", "")
    assert pain_alerts(detect_episodes(series(leg, events=[fall]))) == []


def test_travel_does_not_lower_the_evidence_but_is_shown() -> None:
    leg = [*QUIET, 5, 5]
    trip = PatientEvent(day(59), "travel", "long flight")
    assert pain_alerts(detect_episodes(series(leg, events=[trip]))) == []
    leg_longer = [*QUIET, 6, 6, 6]
    alert = _only(pain_alerts(detect_episodes(series(leg_longer, events=[trip]))))
    assert alert.related_events[0].note == "long flight"
    assert "Also logged: travel (long flight)" in alert.explanation


# --- the other kinds -----------------------------------------------------------------------


def test_missed_logs_alert_on_the_nth_day_without_a_log() -> None:
    leg: list[int | None] = [1] * 10 + [None] * 5 + [1] * 3
    episodes = detect_episodes(series(leg))
    missed = [e for e in episodes if e.kind == "missed_logs"]
    assert [(e.onset, e.detected_on, e.resolved_on) for e in missed] == [
        (day(10), day(12), day(15))
    ]
    tail = detect_episodes(series([1] * 10), as_of=day(14))
    assert [(e.detected_on, e.resolved_on) for e in tail if e.kind == "missed_logs"] == [
        (day(12), None)
    ]
    short = detect_episodes(series([1] * 10), as_of=day(11))
    assert [e for e in short if e.kind == "missed_logs"] == []


def test_missed_log_days_are_configurable() -> None:
    leg: list[int | None] = [1] * 10 + [None] * 4 + [1]
    config = DetectionConfig(missed_log_days=5)
    assert [e for e in detect_episodes(series(leg), config) if e.kind == "missed_logs"] == []


def test_a_sustained_adherence_drop_alerts_and_a_skipped_day_does_not() -> None:
    adherence: list[float | None] = [*([1.0, 0.9, 1.0, 0.8, 1.0] * 8), *([0.2] * 8)]
    leg = [1] * len(adherence)
    episodes = detect_episodes(series(leg, adherence=adherence))
    drops = [e for e in episodes if e.kind == "adherence_drop"]
    alert = _only(drops)  # type: ignore[arg-type]
    assert alert.metric == "adherence"
    assert alert.onset == day(40)
    assert alert.baseline is not None and alert.baseline > 0.85
    one_bad = [1.0] * 40 + [0.0] + [1.0] * 8
    steady = detect_episodes(series([1] * 49, adherence=one_bad))
    assert [e for e in steady if e.kind == "adherence_drop"] == []


def test_function_decline_by_the_mcid() -> None:
    outcomes = (
        OutcomeScore(day(0), "odi", 30.0),
        OutcomeScore(day(20), "odi", 28.0),
        OutcomeScore(day(40), "odi", 42.0),
        OutcomeScore(day(55), "odi", 31.0),
        OutcomeScore(day(0), "psfs", 6.0),
        OutcomeScore(day(40), "psfs", 5.0),
    )
    patient = dataclasses.replace(series([1] * 60), outcomes=outcomes)
    declines = [e for e in detect_episodes(patient) if e.kind == "function_decline"]
    alert = _only(declines)  # type: ignore[arg-type]
    assert (alert.metric, alert.detected_on, alert.baseline, alert.current) == (
        "odi",
        day(40),
        29.0,
        42.0,
    )
    assert alert.resolved_on == day(55)
    assert "ODI 42/100" in alert.explanation


def test_function_decline_without_a_single_daily_log() -> None:
    """A patient seen at the clinic who never logs on her phone: her ODI is still watched."""
    outcomes = (
        OutcomeScore(day(0), "odi", 30.0),
        OutcomeScore(day(30), "odi", 32.0),
        OutcomeScore(day(60), "odi", 46.0),
    )
    patient = dataclasses.replace(series([]), outcomes=outcomes)
    for as_of in (None, day(70)):
        alert = _only([e for e in detect_episodes(patient, as_of=as_of)])  # type: ignore[arg-type]
        assert (alert.kind, alert.metric, alert.detected_on, alert.baseline, alert.current) == (
            "function_decline",
            "odi",
            day(60),
            31.0,
            46.0,
        )
        assert alert.resolved_on is None
    # Replayed up to a day before the decline, there is nothing yet (causal).
    assert detect_episodes(patient, as_of=day(59)) == ()
    many = detect_episodes_many([patient, series([1] * 10, patient_id="B")], as_of=day(70))
    assert many[patient.patient_id] == detect_episodes(patient, as_of=day(70))


# --- entry points --------------------------------------------------------------------------


def test_batch_and_single_patient_agree() -> None:
    patients = [
        series(QUIET + [6] * 5, patient_id="A"),
        series(QUIET + [1] * 4, QUIET + [7] * 4, patient_id="B"),
        series([None, 1] * 30, patient_id="C"),
    ]
    many = detect_episodes_many(patients, as_of=day(70))
    assert many == {p.patient_id: detect_episodes(p, as_of=day(70)) for p in patients}
    assert pain_alerts(list(many["A"]))
    assert pain_alerts(list(many["B"]), "back_pain")


def test_trimming_old_logs_keeps_recent_decisions() -> None:
    leg = [1] * 500 + QUIET + [7] * 5
    full = detect_episodes(series(leg))
    trimmed = detect_episodes(trim_series(series(leg), day(len(leg) - 400)))
    assert pain_alerts(list(full))[-1] == pain_alerts(list(trimmed))[-1]


def test_from_logs_sorts_rows() -> None:
    rows = [DailyLog(day(2), leg_pain=3), DailyLog(day(0), leg_pain=1)]
    built = PatientSeries.from_logs("P", rows)
    assert built.dates == (day(0), day(2))
    assert built.leg_pain == (1, 3)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        detect_episodes(series([1, 1]).__class__("P", (day(1), day(0)), (1, 1), (1, 1)))
    with pytest.raises(ValueError, match="integers 0–10"):
        detect_episodes(series([11] * 10))
    with pytest.raises(ValueError, match="entries"):
        PatientSeries("P", (day(0),), (1, 2), (1,))
    with pytest.raises(ValueError):
        DetectionConfig(windows=((2, 1.0),))


# --- a further regression while one is open, and what little history costs ---------------


def test_a_further_rise_while_an_alert_is_open_replaces_it() -> None:
    leg = QUIET + [5] * 10 + [9] * 6
    first, second = pain_alerts(detect_episodes(series(leg)))
    assert isinstance(first, AlertEpisode) and isinstance(second, AlertEpisode)
    assert day(60) <= first.detected_on <= day(62)
    # One open alert per metric (design §2): the first closes the day the second opens.
    assert first.resolved_on == second.detected_on
    assert first.superseded and not second.superseded  # closed by the rise, not by settling
    assert day(70) <= second.detected_on <= day(72)
    assert second.onset >= day(70)
    assert (
        f"Rose further while the alert detected {first.detected_on.isoformat()} was open"
        in second.explanation
    )
    # Staying at the level alerted is not a further rise.
    assert len(pain_alerts(detect_episodes(series(QUIET + [5] * 30)))) == 1


def test_a_clear_three_point_step_alerts_even_with_two_weeks_of_history() -> None:
    leg = [1, 2] * 7 + [5, 5, 5]
    alert = _only(pain_alerts(detect_episodes(series(leg))))
    assert alert.detected_on == day(16)


def test_a_smaller_rise_needs_more_days_the_noisier_the_patient() -> None:
    """+2 points: alerted against a steady patient's baseline, not against a jittery one's,
    whose rise of 2 is within her usual day-to-day swings."""
    steady = [2] * 60 + [4] * 12
    jittery = [0, 4, 1, 3, 2] * 12 + [4] * 12
    assert pain_alerts(detect_episodes(series(steady)))
    assert pain_alerts(detect_episodes(series(jittery))) == []


def test_a_pin_judges_from_the_first_logs_and_later_logs_change_nothing() -> None:
    pin = (PinnedBaseline("leg_pain", 1.0, day(0), pinned_by="x"),)
    early = dataclasses.replace(series([5, 5, 5]), pinned_baselines=pin)
    later = dataclasses.replace(series([5, 5, 5] + [1] * 12), pinned_baselines=pin)
    first = _only(pain_alerts(detect_episodes(early)))
    assert first.detected_on == day(2)
    again = pain_alerts(detect_episodes(later))[0]
    assert isinstance(again, AlertEpisode)
    assert dataclasses.replace(again, resolved_on=None) == first  # later logs resolve it


# --- an alert states the statistic it was decided on, and rises are compared like with like


def _fall_day_log_then_seven(extra_days: int = 0) -> PatientSeries:
    """A settled patient at ~1/10 falls on day 44, logs 2 that day and 7 the next days."""
    leg = [1, 0, 1, 1, 2] * 9 + [7, 7, 6, 7, 7, 7] + [7] * extra_days
    fall = PatientEvent(
        day(44), "fall", note="slipped", mechanism="on stairs (10 steps, landed on buttocks)"
    )
    return series(leg, [1] * len(leg), events=[fall])


def test_an_after_a_fall_alert_states_the_mean_it_was_decided_on() -> None:
    """The fall-day log (2) and the next day's 7 fire the after-a-fall rule: the alert says
    so (not a 3-day median of 2 that is no clinically important rise), and the same fall's
    later 7s are that regression still being logged, not a further one."""
    alert = _only(pain_alerts(detect_episodes(_fall_day_log_then_seven(), as_of=day(50))))
    assert (alert.onset, alert.detected_on, alert.resolved_on) == (day(45), day(45), None)
    assert (alert.baseline, alert.current, alert.change) == (1.0, 4.5, 3.5)
    assert alert.explanation == (
        f"Leg pain 4.5/10 (mean of the 2 logs since the fall on {day(44).isoformat()}) vs "
        "baseline 1/10 (+3.5; clinically important ≥ 2). Began 1 day after a fall on stairs "
        f"(10 steps, landed on buttocks) (slipped) logged {day(44).isoformat()}."
    )
    # However long the plateau lasts, it is not a further rise.
    longer = pain_alerts(detect_episodes(_fall_day_log_then_seven(extra_days=40)))
    assert [a.detected_on for a in longer if isinstance(a, AlertEpisode)] == [day(45)]


def test_a_window_alert_states_its_trimmed_mean_and_size() -> None:
    ramp = _only(pain_alerts(detect_episodes(series([*QUIET, 4, 5, 6, 6]))))
    assert (ramp.detected_on, ramp.current, ramp.change) == (day(62), 4.0, 3.0)
    assert ramp.explanation == (
        "Leg pain 4/10 (lowest of the last 3 logs) vs baseline 1/10 (+3; clinically important ≥ 2)."
    )
    # Every other day: the window's span is said too.
    sparse = _only(pain_alerts(detect_episodes(series([2, None] * 30 + [4, None] * 12))))
    assert (sparse.current, sparse.change) == (4.0, 2.0)
    assert sparse.explanation.startswith(
        "Leg pain 4/10 (mean of the last 4 logs over 7 days, 2 highest left out) vs baseline "
        "2/10 (+2; clinically important ≥ 2)."
    )


def test_a_second_flare_on_top_of_a_fall_alert_replaces_it() -> None:
    """Fall-day log 2, then 7s (one alert), then 10s: the 10s are a further rise over the 7
    the alert already showed."""
    leg = [1, 0, 1, 1, 2] * 9 + [7, 7, 7, 7, 7, 7] + [10] * 6
    fall = PatientEvent(day(44), "fall", "slipped")
    first, second = pain_alerts(detect_episodes(series(leg, events=[fall])))
    assert isinstance(first, AlertEpisode) and isinstance(second, AlertEpisode)
    assert first.detected_on == day(45) and first.resolved_on == second.detected_on
    assert day(51) <= second.detected_on <= day(53)
    assert second.current is not None and second.current >= 9


def test_a_new_fall_on_top_of_an_open_alert_replaces_it() -> None:
    """An open alert at 4/10, then a new fall (after spine surgery) and two logs of 8: the new
    fall's logs are a further clinically important rise, and the new alert is urgent."""
    leg = [*QUIET, 4, 4, 4, 4, 4, 8, 8]
    fall = PatientEvent(day(65), "fall", "missed a step")
    patient = dataclasses.replace(
        series(leg, events=[fall]), history=(HistoryItem("L4-L5 fusion", "2023", "surgery"),)
    )
    first, second = pain_alerts(detect_episodes(patient))
    assert isinstance(first, AlertEpisode) and isinstance(second, AlertEpisode)
    assert first.detected_on < day(65) and first.resolved_on == second.detected_on == day(66)
    assert second.current == 8.0 and second.severity == "urgent"
    assert f"(mean of the 2 logs since the fall on {day(65).isoformat()})" in second.explanation
    # Without the new fall, two logs of 8 are not yet a further rise (a 2-log window is
    # only enough after a fall).
    assert len(pain_alerts(detect_episodes(series(leg)))) == 1


def test_a_window_of_the_history_opens_only_what_the_whole_history_opens() -> None:
    """The worker replays the last 400 days (`trim_series`, which sets `logs_from`): over a
    cohort of 700-day histories, evaluated as the window slides, every episode it returns is
    one the whole history has. (Without `logs_from`, pain episodes opened on the window's
    first weeks, judged against baselines of a few logs: 300 of them in this cohort.) A
    history that fits in the window loses nothing."""
    cohort = generate_cohort(7, 40, 700)
    whole = {
        p.series.patient_id: {
            (e.kind, e.metric, e.detected_on)
            for e in detect_episodes(p.series, as_of=cohort.last_day)
        }
        for p in cohort.patients
    }
    compared = 0
    for back in range(0, 120, 6):
        today = cohort.last_day - timedelta(days=back)
        since = today - timedelta(days=400)
        window = detect_episodes_many(
            [trim_series(up_to(p.series, today), since) for p in cohort.patients], as_of=today
        )
        for patient_id, episodes in window.items():
            for e in episodes:
                compared += 1
                assert (e.kind, e.metric, e.detected_on) in whole[patient_id], (today, e)
    assert compared > 5000
    # Less than 400 days of history: nothing is cut, nothing is left out.
    short = [up_to(p.series, cohort.start + timedelta(days=300)) for p in cohort.patients]
    since = cohort.start + timedelta(days=300 - 400)
    assert all(trim_series(s, since) is s for s in short)
    # (What `logs_from` would do to them, said wrongly: their first 87 days' episodes go.)
    cut = [dataclasses.replace(s, logs_from=cohort.start) for s in short]
    assert detect_episodes_many(short) != detect_episodes_many(cut)
