"""The synthetic cohort generator and the scorer behind `rehab eval`."""

from __future__ import annotations

from datetime import date, timedelta

from rehab.domain.alerts import AlertEpisode
from rehab.domain.detection import detect_episodes_many
from rehab.domain.scoring import score_cohort
from rehab.domain.simulation import COHORT_PRESETS, generate_cohort


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


def test_cohorts_are_realistic_enough_to_score() -> None:
    cohort = generate_cohort(3, 60, 365, COHORT_PRESETS["harsh"])
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
