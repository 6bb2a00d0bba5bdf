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
  `OutcomeScore(date, instrument "odi"|"psfs", score, ratings)` (a PSFS's activities),
  `PinnedBaseline(metric, level, effective_from, spread=None, pinned_by="")`,
  `HistoryItem(description, when="", kind="")` (kind "surgery" makes fall-linked alerts urgent).

Call `detect_episodes(series, config=DEFAULT_CONFIG, as_of=None)`; it replays the patient day
by day from the first log to `as_of` (default: the last log), causally (a decision dated D uses
only logs, events and measures dated ≤ D), and returns every `AlertEpisode` (from
`rehab.domain.alerts`): kind, metric, onset, detected_on, resolved_on (None while open),
severity, baseline, current, change, related_events, explanation, baseline_source,
linked_event; `dedup_key` and `to_json_dict()` (the §4 object) are on it.

`detect_episodes_many(patients, config, as_of)` is the same replay for a batch (the periodic
scan and `rehab detect` use it): it runs the array work once for up to 512 patients, about
0.35 ms of CPU per patient-year in batches of 250 (one call per patient costs ~1.6 ms for
400 days of logs: fixed costs of a few hundred array operations). Its result is exactly, to
the last bit, what one call per patient gives: every sum is taken over each series on its
own, whatever else is in the batch.

Costs (bench/RESULTS.md, `rehab bench detect`; shared 2-core box): the work is per log
(baselines and window statistics: a few hundred vectorised operations over all the batch's
logs) and per episode emitted (its dates, explanation and event context, built only for the
episodes returned: about a dozen per patient-year, most of them missed-log gaps). Dates are
read once into integer day numbers; a fall's or a patient's event context is made once per
patient; alerts' explanations are made only for the episodes emitted.

For the worker after one new log: `detect_episodes(trim_series(series, as_of - 400 days),
as_of=as_of)` costs a millisecond or two; reconcile the result with the stored alerts by
`dedup_key`: create alerts for episodes not stored yet (each red-flag day is one), auto-resolve
stored open alerts whose episode has `resolved_on`. A decision looks back at most 87 days
(`decision_lookback_days`: the 56-day noise window before a window of up to 15 logs spanning
up to 31 days), so from the window's start + 87 days on it decides as the full replay does;
before that its first logs would be judged against baselines made of a few logs. A series
that leaves earlier logs out says so (`logs_from`, which `trim_series` sets), and no pain or
adherence episode detected there is returned (they are older than 10 months: the evaluations
of their own time stored them). What is left is an episode already open when that point is
reached, which the window does not know.

Decisions
---------
- pain_regression, per metric (leg and back separately), judged at each log against the
  patient's own baseline read from the logs *before* the window being judged (a clinician's
  pin replaces it): level = robust mean of the previous 42 days (following an improving
  patient down to the last 10 days when those are ≥ 1 point lower); noise σ = spike-robust SD
  of the previous 56 days around their least-squares line (floor 0.8), and its day-to-day
  autocorrelation ρ from the squared differences of logs on consecutive days of those 56
  days, shrunk towards 0.5 when there are few such pairs. The baseline shown is the median of
  that period (or the pin).
- The rule is a changepoint statistic at 9 time scales (`rehab.domain.noise`). A window of the
  last k = 3, 4, 5, 6, 7, 8, 10, 12 or 15 logs alerts when its trimmed mean (2 highest logs
  dropped, each log capped at 4σ above the baseline) is up by the clinically important rise
  (max(MCID for the level, MDC 2), design §3) and by σ·(m + z·s), where m and s are the mean
  and SD of that trimmed mean under AR(1) noise with the patient's ρ (per log: ρ^(days between
  logs), so sparse logs count as less correlated), s widened by the baseline level's own
  error (σ²·Var of the mean of its n autocorrelated logs: the variance of a k-day mean is
  σ²/k·(1+ρ)/(1−ρ), not σ²/k). z = 3.35 for every window (3.85 for the 3-log window, which a
  3-day benign flare fills on its own), made a Student-t quantile for the number of logs σ
  was estimated from (a patient with 2 weeks of history needs more), and lowered by ln(f)/z
  for a patient who logs a fraction f of days (fewer logs, fewer chances of a false alert per
  month). At least 3 of the window's logs must be up by ≥ 1. So one or two bad days never
  alert (they are trimmed away); a constant or falling series never alerts; a rise to within
  a patient's usual swings needs many days, a rise well past them few.
- A clear rise always alerts: kept logs up by 3 points (3σ for a patient noisier than 1),
  whatever the uncertainty of σ and ρ; so a sustained step of ≥ 3 alerts within 3 logs.
- Why this rule (bench/RESULTS.md has the figures): at the same false-alert rate as the
  earlier rule (fixed multiples of σ on 4 windows, no autocorrelation) it finds about 2 points
  more of the regressions of ≥ 3 points lasting ≥ 5 days on the default cohort and about 3
  more on the sparse one and on a `shifted` cohort it was never tuned on; at the same
  sensitivity it raises about a quarter fewer false alerts. One z was tuned, on the default
  cohort (seeds 1–3): the lowest false-alert rate (≈ 0.06 per patient-month) at which ≥ 90 %
  of those regressions are found. Trimming more logs, winsorising instead of trimming, finer
  or coarser window grids, longer noise windows, bias-corrected or spike-robust ρ, a stricter
  after-a-fall rule, stricter resolution, and lowering the evidence for one metric when the
  other rises did not do better in simulation. With the simulated patients' true σ and ρ the
  same rule would find 2–3 points more and the harsh cohort's false alerts would fall to the
  default's: the error of σ and ρ estimated from 8 weeks of spiky logs is what is left (it
  makes noisy, strongly autocorrelated patients look calmer than they are).
- Events: within 14 days after a logged fall or injury, the two logs since the event, both up
  by ≥ 1 and with a mean up by the clinically important rise and by 1.45 SDs of a 2-log mean
  (σ·√((1+ρ)/2), same Student-t widening), are enough: the event lowers the evidence needed
  (2 logs instead of 3, 1.45 SDs instead of 3.35). The alert names the fall ("Began 1 day
  after a fall … logged …") and the history.
- What a pain alert reports is the statistic its decision was taken on, as logged: `current`
  is the window's trimmed mean ("Leg pain 5/10 (mean of the last 6 logs over 8 days, 2
  highest left out)", "(lowest of the last 3 logs)") or the after-a-fall rule's mean ("(mean
  of the 2 logs since the fall on 2025-09-14)"), `change` = current − the baseline shown.
  (It used to be the median of the last 3 logs, which an after-a-fall alert on the fall-day
  log and the next could show below the clinically important rise it cited.) As logged, the
  statistic is never below the capped one the decision used, so it is up by the important
  rise over the level; a window must also be up by it over the baseline *shown* (the median
  of the baseline period, which can sit above the robust level): an alert never reports less
  of a rise than it cites. That condition delays or drops about 3 % of the alerts the level
  alone would open; with the new escalation below, sensitivity (≥ 3 points, ≥ 5 days) on the
  `rehab eval` cohorts moved by −0.3 to +0.3 points and false pain alerts per patient-month
  fell by 0.5–6 % (500 patients, seeds 1–2; `default`: 0.901 / 0.919 and 0.064 / 0.059 per
  patient-month, was 0.904 / 0.921 and 0.065 / 0.062; bench/RESULTS.md predates this).
- red_flag: every day with a red flag is its own urgent episode, detected that day, never
  auto-resolved; its `dedup_key` includes the day, so "every time" and "one open per key" agree.
- adherence_drop: the mean of the last 5 logs (within 12 days) is ≥ 0.25 and ≥ 35 % below the
  usual level (mean of the 28 days ending a week earlier), with at least 3 of those logs (the
  latest among them) that low.
- missed_logs: detected on the Nth consecutive calendar day without a log (N =
  `missed_log_days`, default 3), onset the first day without one; resolved by the next log. It
  is the only kind decided on a day without a log: `as_of` bounds it (the worker passes today;
  `rehab detect` passes the last date in the file).
- function_decline: an ODI/PSFS measure worse than the median of the previous (up to 3) stable
  measures, or a pin, by at least the MCID (ODI 10, PSFS 2). PSFS measures are compared on
  the activities rated in each, at least 2 (`questionnaires.comparable_psfs`): a measure
  sharing fewer with the earlier ones starts the comparison again; an open decline is judged
  on the activities it was raised on, and closes (`activities_replaced`) at a measure that
  no longer rates enough of them. A pin is compared with the score as recorded.
- Episodes: at most one open per (kind, metric), its baseline frozen; pain resolves when the
  median of the last 3 logs has been within max(1, half the clinically important rise) of
  that baseline for 3 logs in a row (see `rehab.domain.episodes` for the other kinds); a later
  rise opens a new episode. A further clinically important rise over an open pain episode's
  own `current` (a new fall, a second flare on top of the first) supersedes it: the open one
  is resolved that day and a new one opens ("Rose further while the alert detected … was
  open"), so a second regression is not hidden behind a first that never settled. The rise
  is judged like with like: a later window's trimmed mean against the alert's current and
  the trimmed mean of as many logs at its detection; the mean of the 2 logs since a fall or
  injury dated after the detection (a new one) against the alert's current and its last 2
  logs. An after-a-fall alert's first 2 logs may straddle the rise (the fall-day log and the
  first raised one): the same fall's later pairs are that regression still being logged,
  never a further one, and a later window must rise above the higher of those 2 logs. (So a
  fall-day log of 2, then 7s, is one alert at 4.5 — not a second "rose further" one at 7.)
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
    AnySeries,
    ArraySeries,
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
    "ArraySeries",
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
    patients: Iterable[AnySeries],
    config: DetectionConfig = DEFAULT_CONFIG,
    as_of: date | None = None,
) -> dict[str, tuple[AlertEpisode, ...]]:
    """`detect_episodes` for many patients at once (the periodic scan, `rehab detect`), keyed
    by patient id: the same code, vectorised over the batch, many times cheaper per patient.
    A patient may come as an `ArraySeries` (log columns as arrays), with the same result."""
    batch = list(patients)
    results = replay_batch(batch, config, as_of)
    return {s.patient_id: tuple(episodes) for s, episodes in zip(batch, results, strict=True)}


def open_episodes(episodes: Iterable[AlertEpisode]) -> tuple[AlertEpisode, ...]:
    """The episodes still open at the end of the replay."""
    return tuple(e for e in episodes if e.resolved_on is None)


def trim_series(series: PatientSeries, since: date) -> PatientSeries:
    """The series without logs dated before `since` (events, outcomes, pins and history kept),
    for a cheap re-evaluation after one new log; `logs_from` says so when any were left out."""
    first = bisect_left(series.dates, since)
    if first == 0:
        return series
    return replace(
        series,
        logs_from=since,
        dates=series.dates[first:],
        back_pain=series.back_pain[first:],
        leg_pain=series.leg_pain[first:],
        adherence=series.adherence[first:] if series.adherence else (),
        red_flags=series.red_flags[first:] if series.red_flags else (),
        leg_side=series.leg_side[first:] if series.leg_side else (),
    )
