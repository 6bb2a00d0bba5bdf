"""Score detected alerts against a labeled cohort (the §4 `rehab eval` figures).

The rules are those of the independent held-out check:
- a labeled pain regression is found when an alert of its metric has `detected_on` between the
  regression's onset and 3 days after its end; its delay is that first alert's `detected_on`
  minus the onset;
- a pain alert farther than 2 days before / 21 days after every labeled window of the patient
  is a false alert (reported per patient-month; also reported counting only windows of the
  alert's own metric, which is stricter);
- a red-flag day is caught when a red_flag alert is detected that same day;
- an adherence drop is found when an adherence_drop alert is detected between its onset and 3
  days after its end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from rehab.domain.alerts import AlertEpisode
from rehab.domain.simulation import Cohort, RegressionLabel

FOUND_AFTER_END_DAYS = 3
FALSE_BEFORE_DAYS = 2
FALSE_AFTER_DAYS = 21
DAYS_PER_MONTH = 30.4375
HEADLINE_MIN_SIZE = 3
HEADLINE_MIN_DAYS = 5


@dataclass(frozen=True, slots=True)
class Rate:
    found: int
    total: int

    @property
    def fraction(self) -> float:
        return self.found / self.total if self.total else float("nan")

    def __str__(self) -> str:
        return f"{self.fraction:.3f} ({self.found}/{self.total})" if self.total else "n/a"


@dataclass(frozen=True, slots=True)
class EvalScore:
    patients: int
    patient_months: float
    headline_sensitivity: Rate
    sensitivity_by_size: tuple[tuple[str, Rate], ...]
    sensitivity_by_shape: tuple[tuple[str, Rate], ...]
    false_pain_alerts: int
    false_pain_alerts_same_metric: int
    median_delay_days: float
    p90_delay_days: float
    red_flags_same_day: Rate
    adherence_drops_found: Rate
    alerts_by_kind: tuple[tuple[str, int], ...]

    @property
    def false_alerts_per_patient_month(self) -> float:
        return self.false_pain_alerts / self.patient_months if self.patient_months else 0.0

    @property
    def false_alerts_same_metric_per_patient_month(self) -> float:
        if not self.patient_months:
            return 0.0
        return self.false_pain_alerts_same_metric / self.patient_months


def _found_on(label: RegressionLabel, alerts: Sequence[AlertEpisode]) -> date | None:
    latest = label.end + timedelta(days=FOUND_AFTER_END_DAYS)
    hits = [
        a.detected_on
        for a in alerts
        if a.kind == "pain_regression"
        and a.metric == label.metric
        and label.onset <= a.detected_on <= latest
    ]
    return min(hits) if hits else None


def _near_a_window(alert: AlertEpisode, labels: Sequence[RegressionLabel]) -> bool:
    return any(
        label.onset - timedelta(days=FALSE_BEFORE_DAYS)
        <= alert.detected_on
        <= label.end + timedelta(days=FALSE_AFTER_DAYS)
        for label in labels
    )


def _size_bucket(size: int) -> str:
    return f"{size}" if size < 6 else "6+"


def score_cohort(cohort: Cohort, alerts: Mapping[str, Sequence[AlertEpisode]]) -> EvalScore:
    """Score `alerts` (by patient id) against the cohort's labels."""
    by_size: dict[str, list[int]] = {}
    by_shape: dict[str, list[int]] = {}
    headline = [0, 0]
    delays: list[int] = []
    false_any = 0
    false_same = 0
    red = [0, 0]
    drops = [0, 0]
    kinds: dict[str, int] = {}
    months = 0.0
    for patient in cohort.patients:
        pid = patient.series.patient_id
        patient_alerts = alerts.get(pid, ())
        if patient.series.dates:
            months += ((cohort.last_day - patient.series.dates[0]).days + 1) / DAYS_PER_MONTH
        for alert in patient_alerts:
            kinds[alert.kind] = kinds.get(alert.kind, 0) + 1
        for label in patient.regressions:
            found_on = _found_on(label, patient_alerts)
            found = found_on is not None
            size_tally = by_size.setdefault(_size_bucket(label.size), [0, 0])
            size_tally[0] += found
            size_tally[1] += 1
            if label.size >= HEADLINE_MIN_SIZE and label.duration_days >= HEADLINE_MIN_DAYS:
                shape_tally = by_shape.setdefault(label.shape, [0, 0])
                shape_tally[0] += found
                shape_tally[1] += 1
                headline[0] += found
                headline[1] += 1
                if found_on is not None:
                    delays.append((found_on - label.onset).days)
        for alert in patient_alerts:
            if alert.kind != "pain_regression":
                continue
            if not _near_a_window(alert, patient.regressions):
                false_any += 1
            same = [label for label in patient.regressions if label.metric == alert.metric]
            if not _near_a_window(alert, same):
                false_same += 1
        red_days = {a.detected_on for a in patient_alerts if a.kind == "red_flag"}
        red[0] += sum(day in red_days for day in patient.red_flag_days)
        red[1] += len(patient.red_flag_days)
        for drop in patient.adherence_drops:
            latest = drop.end + timedelta(days=FOUND_AFTER_END_DAYS)
            drops[0] += any(
                a.kind == "adherence_drop" and drop.onset <= a.detected_on <= latest
                for a in patient_alerts
            )
            drops[1] += 1
    delay_array = np.array(delays, dtype=np.float64)
    return EvalScore(
        patients=len(cohort.patients),
        patient_months=months,
        headline_sensitivity=Rate(*headline),
        sensitivity_by_size=tuple((k, Rate(*v)) for k, v in sorted(by_size.items())),
        sensitivity_by_shape=tuple((k, Rate(*v)) for k, v in sorted(by_shape.items())),
        false_pain_alerts=false_any,
        false_pain_alerts_same_metric=false_same,
        median_delay_days=float(np.median(delay_array)) if delays else float("nan"),
        p90_delay_days=float(np.percentile(delay_array, 90)) if delays else float("nan"),
        red_flags_same_day=Rate(*red),
        adherence_drops_found=Rate(*drops),
        alerts_by_kind=tuple(sorted(kinds.items())),
    )


def format_score(score: EvalScore, title: str) -> str:
    """A readable multi-line report of one scored cohort."""
    lines = [
        f"## {title}",
        f"patients: {score.patients}, patient-months: {score.patient_months:.0f}",
        f"sensitivity, regressions >= {HEADLINE_MIN_SIZE} points lasting >= "
        f"{HEADLINE_MIN_DAYS} days: {score.headline_sensitivity}",
        "  by size (all durations): "
        + ", ".join(f"{size}: {rate}" for size, rate in score.sensitivity_by_size),
        "  by shape (>= 3 points, >= 5 days): "
        + ", ".join(f"{shape}: {rate}" for shape, rate in score.sensitivity_by_shape),
        f"false pain alerts per patient-month: {score.false_alerts_per_patient_month:.4f} "
        f"({score.false_pain_alerts}); counting only same-metric windows: "
        f"{score.false_alerts_same_metric_per_patient_month:.4f}",
        f"delay (days, found headline regressions): median {score.median_delay_days:.1f}, "
        f"p90 {score.p90_delay_days:.1f}",
        f"red flags alerted the same day: {score.red_flags_same_day}",
        f"adherence drops found: {score.adherence_drops_found}",
        "alerts by kind: " + ", ".join(f"{k} {n}" for k, n in score.alerts_by_kind),
    ]
    return "\n".join(lines)
