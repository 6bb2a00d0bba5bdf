"""The synthetic cohort generator and the scorer behind `rehab eval`."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest

from rehab.domain.alerts import AlertEpisode
from rehab.domain.detection import detect_episodes_many
from rehab.domain.scoring import score_cohort
from rehab.domain.simulation import (
    COHORT_PRESETS,
    CohortParams,
    expected_logged,
    generate_cohort,
    simulate_patient,
)
from rehab.domain.simulation import _planted_rise as planted_rise


def _alert(patient_id: str, metric: str, when: date) -> AlertEpisode:
    return AlertEpisode(
        patient_id, "pain_regression", metric, when, when, None, "routine", 1.0, 5.0, 4.0, (), ""
    )


def test_a_cohort_is_reproducible_and_a_patient_does_not_depend_on_cohort_size() -> None:
    small = generate_cohort(7, 5, 120)
    again = generate_cohort(7, 5, 120)
    larger = generate_cohort(7, 8, 120)
    assert small == again
    assert small.patients == larger.patients[:5]
    assert generate_cohort(8, 5, 120) != small


@pytest.mark.parametrize("preset", ["harsh", "shifted"])
def test_cohorts_are_realistic_enough_to_score(preset: str) -> None:
    cohort = generate_cohort(3, 60, 365, COHORT_PRESETS[preset])
    for patient in cohort.patients:
        series = patient.series
        assert all(v is None or 0 <= v <= 10 for v in series.leg_pain + series.back_pain)
        assert all(v is None or 0.0 <= v <= 1.0 for v in series.adherence)
        assert len(series.dates) < cohort.days  # days are missing
        for label in patient.regressions:
            assert label.onset <= label.end <= cohort.last_day
            assert 2 <= label.size <= 6
    classes = {p.trajectory_class for p in cohort.patients}
    assert {"recovering", "fluctuating", "persistent_mild"} <= classes
    shapes = {r.shape for p in cohort.patients for r in p.regressions}
    assert {"step", "ramp", "fall_flare"} <= shapes
    falls = [e for p in cohort.patients for e in p.series.events if e.event_type == "fall"]
    assert falls


def test_scoring_counts_found_regressions_and_false_alerts() -> None:
    cohort = generate_cohort(11, 30, 200)
    labeled = [p for p in cohort.patients if p.regressions]
    assert labeled
    alerts: dict[str, list[AlertEpisode]] = {}
    for patient in labeled:
        alerts[patient.series.patient_id] = [
            _alert(r.patient_id, r.metric, r.onset + timedelta(days=1)) for r in patient.regressions
        ]
    perfect = score_cohort(cohort, alerts)
    assert perfect.false_pain_alerts == 0
    assert all(rate.fraction == 1.0 for _, rate in perfect.sensitivity_by_size)
    assert perfect.median_delay_days == 1.0
    quiet = next(p for p in cohort.patients if not p.regressions)
    alerts[quiet.series.patient_id] = [_alert(quiet.series.patient_id, "leg_pain", cohort.start)]
    assert score_cohort(cohort, alerts).false_pain_alerts == 1


def test_the_detector_meets_the_bar_on_a_small_default_cohort() -> None:
    """A smoke check of the tuned detector (the full figures are in bench/RESULTS.md)."""
    cohort = generate_cohort(5, 150, 365)
    episodes = detect_episodes_many([p.series for p in cohort.patients], as_of=cohort.last_day)
    score = score_cohort(cohort, episodes)
    assert score.headline_sensitivity.fraction >= 0.8
    assert score.false_alerts_per_patient_month <= 0.12
    assert score.red_flags_same_day.fraction == 1.0
    assert score.adherence_drops_found.fraction >= 0.8
    assert score.median_delay_days <= 4


# --- what a label means ---------------------------------------------------------------------


def test_a_labeled_size_is_a_rise_of_the_expected_log_even_at_the_floor() -> None:
    """Clipping at 0 props up the logged level of a patient at 0–1, so a labeled 3-point rise
    needs a little more than 3 underlying points; in the middle of the scale it is 3."""
    for level, sd, damped in ((0.2, 2.0, False), (0.5, 1.3, True), (3.0, 1.3, True)):
        rise, size = planted_rise(level, 3, sd, damped)
        assert size == 3
        scale = float(np.clip(0.5 + level / 4, 0.5, 1.0)) if damped else 1.0
        scale_up = float(np.clip(0.5 + (level + rise) / 4, 0.5, 1.0)) if damped else 1.0
        gained = expected_logged(level + rise, sd * scale_up) - expected_logged(level, sd * scale)
        assert gained == pytest.approx(3.0, abs=1e-6)
    assert planted_rise(0.2, 3, 2.0, False)[0] > 3.3
    assert planted_rise(3.0, 3, 1.3, True)[0] == pytest.approx(3.0, abs=0.1)


def test_near_the_ceiling_a_label_says_the_rise_that_fits() -> None:
    """From 7 a rise of 3 does not fit under 10 (8 → 10 is not +3): the label says 2."""
    assert planted_rise(7.0, 3, 1.3, True)[1] == 2
    assert planted_rise(8.5, 4, 1.3, True)[1] < 2  # no regression at all: under 2 points


def _noiseless(trajectory_class: str, shape: str) -> CohortParams:
    return replace(
        COHORT_PRESETS["default"],
        noise_sd=(0.01, 0.01),
        spikes_per_month=(0.0, 0.0),
        drift_sd=0.0,
        fluctuation_sd=(0.0, 0.0),
        log_rate=(1.0, 1.0),
        long_gap_probability=0.0,
        regressions_per_year=6.0,
        class_weights=((trajectory_class, 1.0),),
        shape_weights=((shape, 1.0),),
    )


def test_a_step_holds_its_size_above_where_a_recovering_patient_was() -> None:
    """A regression planted while pain is still falling rises `size` above the level of the
    week before its onset and stays there: it does not shrink as she keeps recovering."""
    params = _noiseless("recovering", "step")
    checked = 0
    for index in range(40):
        patient = simulate_patient(1, index, params, date(2025, 1, 1), 365)
        for label in patient.regressions:
            values = dict(
                zip(patient.series.dates, getattr(patient.series, label.metric), strict=True)
            )
            before = [
                values[label.onset - timedelta(days=k)]
                for k in range(1, 8)
                if values.get(label.onset - timedelta(days=k)) is not None
            ]
            held = [
                values[label.onset + timedelta(days=k)]
                for k in range(label.duration_days)
                if values.get(label.onset + timedelta(days=k)) is not None
            ]
            if not before or not held:
                continue
            assert min(held) >= float(np.mean(before)) + label.size - 1.0  # integer rounding
            checked += 1
    assert checked > 20


def test_the_relapsing_class_relapses_after_improving() -> None:
    params = _noiseless("relapsing", "step")
    relapsed = 0
    for index in range(30):
        patient = simulate_patient(2, index, params, date(2025, 1, 1), 365)
        relapses = [r for r in patient.regressions if r.shape == "relapse"]
        for relapse in relapses:
            logged = dict(zip(patient.series.dates, patient.series.back_pain, strict=True))
            first_weeks = [v for d, v in logged.items() if d < date(2025, 1, 15) and v is not None]
            before = [
                v
                for d, v in logged.items()
                if relapse.onset - timedelta(days=14) <= d < relapse.onset and v is not None
            ]
            assert np.mean(before) <= np.mean(first_weeks) - 1.0
            relapsed += 1
    assert relapsed > 15
