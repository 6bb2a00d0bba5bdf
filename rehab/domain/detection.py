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
  `HistoryItem(description, when="", kind="")` (kind "surgery" makes fall-linked alerts urgent).

Call `detect_episodes(series, config=DEFAULT_CONFIG, as_of=None)`; it replays the patient day
by day from the first log to `as_of` (default: the last log), causally (a decision dated D uses
only logs, events and measures dated ≤ D), and returns every `AlertEpisode` (from
`rehab.domain.alerts`): kind, metric, onset, detected_on, resolved_on (None while open),
severity, baseline, current, change, related_events, explanation, baseline_source,
linked_event; `dedup_key` and `to_json_dict()` (the §4 object) are on it.

`detect_episodes_many(patients, config, as_of)` is the same replay for a batch (the periodic
scan and `rehab detect` use it): it runs the array work once for up to 512 patients, which is
several times cheaper per patient than one call each.

For the worker after one new log: `detect_episodes(trim_series(series, as_of - 400 days),
as_of=as_of)` costs about a millisecond; reconcile the result with the stored alerts by
`dedup_key`: create alerts for episodes not stored yet (each red-flag day is one), auto-resolve
stored open alerts whose episode has `resolved_on`. A decision looks back at most ~10 weeks
(56-day noise window before a window of up to 15 logs), so a 400-day window reproduces the
full replay except for an episode already open when the window starts.

Decisions
---------
- pain_regression, per metric (leg and back separately), judged at each log against the
  patient's own baseline read from the logs *before* the window being judged: level = robust
  mean of the previous 42 days (following an improving patient down to the last 10 days when
  those are ≥ 1 point lower), noise = spike-robust SD of the previous 56 days (floor 0.8); or a
  clinician's pin. The baseline shown is the median of that period (or the pin).
  A window of the last 3, 5, 9 or 15 logs alerts when its trimmed mean (2 highest logs
  dropped, each log capped at 4 × noise) is up by max(clinically important rise, k × noise)
  with k = 2.4, 1.8, 1.5, 1.35, and at least 3 of its logs are up by ≥ 1. The clinically
  important rise is max(MCID for the level, MDC 2) (design §3). One or two bad days can never
  alert (they are trimmed away); short windows catch jumps within 3 days, long ones smaller
  sustained rises and ramps.
- Events: within 14 days after a logged fall or injury, the two logs since the event, both up
  by ≥ 1 and with a mean up by max(clinically important rise, 1.25 × noise), are enough: the
  event lowers the evidence needed (2 logs and 1.25 × noise instead of 3 logs and 2.4 ×).
  The alert names the fall ("Began 1 day after a fall … logged …") and the history.
- red_flag: every day with a red flag is its own urgent episode, detected that day, never
  auto-resolved; its `dedup_key` includes the day, so "every time" and "one open per key" agree.
- adherence_drop: the mean of the last 5 logs is ≥ 0.25 and ≥ 35 % below the usual level (mean
  of the 28 days ending a week earlier), with at least 3 of those logs (the latest among them)
  that low.
- missed_logs: detected on the Nth consecutive calendar day without a log (N =
  `missed_log_days`, default 3), onset the first day without one; resolved by the next log. It
  is the only kind decided on a day without a log: `as_of` bounds it (the worker passes today;
  `rehab detect` passes the last date in the file).
- function_decline: an ODI/PSFS measure worse than the median of the previous (up to 3) stable
  measures, or a pin, by at least the MCID (ODI 10, PSFS 2).
- Episodes: at most one open per (kind, metric), its baseline frozen; pain resolves when the
  median of the last 3 logs has been within max(1, half the clinically important rise) of
  that baseline for 3 logs in a row (see `rehab.domain.episodes` for the other kinds); a later
  rise opens a new episode.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import replace
from datetime import date

from rehab.domain.alerts import AlertEpisode, AlertKind, RelatedEvent, Severity
from rehab.domain.config import DEFAULT_CONFIG, DetectionConfig
from rehab.domain.episodes import replay_batch
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
    return tuple(replay_batch([series], config, as_of)[0])


def detect_episodes_many(
    patients: Iterable[PatientSeries],
    config: DetectionConfig = DEFAULT_CONFIG,
    as_of: date | None = None,
) -> dict[str, tuple[AlertEpisode, ...]]:
    """`detect_episodes` for many patients at once (the periodic scan, `rehab detect`), keyed
    by patient id: the same code, vectorised over the batch, many times cheaper per patient."""
    batch = list(patients)
    results = replay_batch(batch, config, as_of)
    return {s.patient_id: tuple(episodes) for s, episodes in zip(batch, results, strict=True)}


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
