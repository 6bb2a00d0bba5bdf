"""Regression detection: the one function the worker and `rehab detect` both call.

(The package's `__init__.py` stays empty by convention; this module is the detection API's
front door and its documentation.)

Interface
---------
Inputs are plain frozen dataclasses from `rehab.domain.series`:

- `PatientSeries(patient_id, dates, back_pain, leg_pain, adherence=(), red_flags=(),
  leg_side=(), events=(), outcomes=(), pinned_baselines=(), history=())` — one entry per
  logged day in each log column (dates strictly increasing; None = not logged that day).
  `PatientSeries.from_logs(patient_id, [DailyLog(...)], events=..., ...)` builds one from rows.
- `PatientEvent(date, event_type, note="", side=None, body_region=None, mechanism=None)`,
  `OutcomeScore(date, instrument "odi"|"psfs", score)`,
  `PinnedBaseline(metric, level, effective_from, spread=None, pinned_by="")`,
  `HistoryItem(description, when="")`.

Call `detect_episodes(series, config=DEFAULT_CONFIG, as_of=None)`; it replays the patient day
by day from the first log to `as_of` (default: the last log), causally (a decision dated D uses
only logs, events and measures dated ≤ D), and returns every `AlertEpisode` (from
`rehab.domain.alerts`): kind, metric, onset, detected_on, resolved_on (None while open),
severity, baseline, current, change, related_events, explanation, baseline_source,
linked_event; `dedup_key` and `to_json_dict()` (the §4 object) are on it.

For the worker after one new log: `detect_episodes(trim_series(series, as_of - 400 days),
as_of=as_of)` costs well under a millisecond; reconcile `open_episodes(...)` and the episodes
detected or resolved since the last run with the stored alerts by `dedup_key`. A decision looks
back at most ~6 weeks, so a 400-day window reproduces the full replay except for an episode
that was already open when the window starts.

Decisions
---------
- pain_regression, per metric (leg and back separately): see `DetectionConfig` for the rule and
  its numbers. In short: against the patient's own baseline (robust median of the 28 days
  ending 4 days earlier, following an improving patient down; or a clinician's pin), at least
  3 of the last 4 logs (within 7 days) must each be up by max(clinically important rise, 1.5 ×
  spread), the latest among them, with the capped mean rise as large. One or two bad days can
  never alert. Within 14 days after a logged fall or injury two consecutive logs, each up by
  max(clinically important rise, 1 × spread), are enough: the event lowers the evidence needed.
- red_flag: every day with a red flag is its own urgent episode, detected that day, never
  auto-resolved; its dedup key includes the day so "every time" and "one open per key" agree.
- adherence_drop: a sustained fall of the mean of the last 5 logs by ≥ 0.25 and ≥ 35 % below the
  usual level (28 days ending a week before), with at least 3 of those logs that low.
- missed_logs: detected on the Nth consecutive calendar day without a log (N =
  `missed_log_days`, default 3), onset the first day without one; resolved by the next log. It
  is the only kind decided on a day without a log: `as_of` bounds it (the worker passes today;
  `rehab detect` passes the last date in the file).
- function_decline: an ODI/PSFS measure worse than the median of the previous (up to 3) stable
  measures, or a pin, by at least the MCID (ODI 10, PSFS 2).
- Episodes: at most one open per (kind, metric); it resolves when the metric is back near its
  frozen baseline for a sustained period (see `rehab.domain.episodes`); a later rise opens a new
  one.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import replace
from datetime import date

from rehab.domain.alerts import AlertEpisode, AlertKind, RelatedEvent, Severity
from rehab.domain.config import DEFAULT_CONFIG, DetectionConfig
from rehab.domain.episodes import replay_patient
from rehab.domain.series import (
    DailyLog,
    HistoryItem,
    OutcomeScore,
    PatientEvent,
    PatientSeries,
    PinnedBaseline,
)

__all__ = [
    "DEFAULT_CONFIG",
    "AlertEpisode",
    "AlertKind",
    "DailyLog",
    "DetectionConfig",
    "HistoryItem",
    "OutcomeScore",
    "PatientEvent",
    "PatientSeries",
    "PinnedBaseline",
    "RelatedEvent",
    "Severity",
    "detect_episodes",
    "detect_episodes_many",
    "open_episodes",
    "trim_series",
]


def detect_episodes(
    series: PatientSeries,
    config: DetectionConfig = DEFAULT_CONFIG,
    as_of: date | None = None,
) -> tuple[AlertEpisode, ...]:
    """Every alert episode of one patient, replayed causally up to `as_of`, ordered by
    detected_on (then kind and metric)."""
    return tuple(replay_patient(series, config, as_of))


def detect_episodes_many(
    patients: Iterable[PatientSeries],
    config: DetectionConfig = DEFAULT_CONFIG,
    as_of: date | None = None,
) -> dict[str, tuple[AlertEpisode, ...]]:
    """`detect_episodes` for many patients (the periodic scan), keyed by patient id."""
    return {s.patient_id: detect_episodes(s, config, as_of) for s in patients}


def open_episodes(episodes: Iterable[AlertEpisode]) -> tuple[AlertEpisode, ...]:
    """The episodes still open at the end of the replay."""
    return tuple(e for e in episodes if e.resolved_on is None)


def trim_series(series: PatientSeries, since: date) -> PatientSeries:
    """The series without logs dated before `since` (events, outcomes, pins and history kept),
    for a cheap re-evaluation after one new log."""
    first = bisect_left(series.dates, since)
    if first == 0:
        return series
    return replace(
        series,
        dates=series.dates[first:],
        back_pain=series.back_pain[first:],
        leg_pain=series.leg_pain[first:],
        adherence=series.adherence[first:] if series.adherence else (),
        red_flags=series.red_flags[first:] if series.red_flags else (),
        leg_side=series.leg_side[first:] if series.leg_side else (),
    )
