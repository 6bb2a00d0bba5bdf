"""Episode bookkeeping: causal replay of one patient into alert episodes of every kind.

Rules (design §2 dedup and auto-resolve):
- At most one open episode per (kind, metric). While one is open its baseline is frozen at the
  value it was opened against, and nothing new opens for that (kind, metric).
- pain_regression resolves once the median of the last 3 logs has stayed within
  `resolve_margin` of the frozen baseline for `resolve_logs` logs in a row; adherence_drop
  resolves once the recent mean is back within half the alert drop of the usual level for
  `adherence_resolve_logs` logs in a row; missed_logs resolves on the next log;
  function_decline resolves at the next measure that is less than half an MCID worse than its
  baseline. The days of a resolved pain or adherence episode are not a stable period: later
  automatic baselines skip them. A later rise opens a new episode.
- red_flag episodes are instant and never auto-resolved: every red-flag day opens its own urgent
  episode, detected that day, closed only by a clinician (its dedup key includes the day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from rehab.domain.alerts import AlertEpisode, RelatedEvent
from rehab.domain.baseline import pain_baselines
from rehab.domain.config import DetectionConfig
from rehab.domain.detectors import (
    days_since_last,
    first_sustained,
    median_of_last,
    pain_triggers,
)
from rehab.domain.explain import (
    adherence_explanation,
    format_number,
    function_explanation,
    history_sentence,
    missed_logs_explanation,
    pain_explanation,
    red_flag_explanation,
)
from rehab.domain.series import (
    PAIN_METRICS,
    PROVOKING_EVENT_TYPES,
    PatientEvent,
    PatientSeries,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_CURRENT_LOGS = 3


@dataclass(frozen=True, slots=True)
class _Patient:
    """One patient's series as calendar-indexed arrays (day 0 = first log, up to `as_of`)."""

    series: PatientSeries
    origin: date
    n_days: int
    log_days: IntArray
    events: tuple[PatientEvent, ...]
    event_days: IntArray

    def date_of(self, day: int) -> date:
        return self.origin + timedelta(days=int(day))

    def context(self, detected_day: int) -> tuple[tuple[PatientEvent, ...], str]:
        """Events of the preceding window (oldest first) and the history line, as known on
        `detected_day` (nothing logged later may appear)."""
        known = self.events[: int(np.searchsorted(self.event_days, detected_day, side="right"))]
        return known, history_sentence(self.series.history, known)


def _prepare(series: PatientSeries, as_of: date | None) -> _Patient | None:
    if not series.dates:
        return None
    ordinals = np.fromiter((d.toordinal() for d in series.dates), dtype=np.int64)
    if ordinals.shape[0] > 1 and not np.all(np.diff(ordinals) > 0):
        raise ValueError(f"{series.patient_id}: log dates must be strictly increasing")
    origin = series.dates[0]
    last = series.dates[-1] if as_of is None else as_of
    n_days = (last - origin).days + 1
    if n_days <= 0:
        return None
    log_days = ordinals - origin.toordinal()
    events = tuple(sorted(series.events, key=lambda e: e.date))
    event_days = np.fromiter(
        ((e.date - origin).days for e in events), dtype=np.int64, count=len(events)
    )
    return _Patient(series, origin, n_days, log_days, events, event_days)


def _related(patient: _Patient, detected_day: int, config: DetectionConfig) -> tuple[
    tuple[PatientEvent, ...], tuple[RelatedEvent, ...], str
]:
    known, history = patient.context(detected_day)
    window = tuple(
        e for e in known if (patient.date_of(detected_day) - e.date).days <= config.related_event_days
    )
    related = tuple(RelatedEvent(e.date, e.event_type, e.note) for e in window)
    return window, related, history


def _pain_episodes(
    patient: _Patient, metric: str, config: DetectionConfig
) -> list[AlertEpisode]:
    raw = np.array(getattr(patient.series, metric), dtype=np.float64)
    in_range = patient.log_days < patient.n_days
    has_value = ~np.isnan(raw) & in_range
    if int(has_value.sum()) < config.baseline_min_logs:
        return []
    days = patient.log_days[has_value]
    values = raw[has_value]
    if np.any((values < 0) | (values > 10) | (values != np.round(values))):
        raise ValueError(f"{patient.series.patient_id}: {metric} must be integers 0–10")
    sides_all = patient.series.leg_side
    sides = [sides_all[i] for i in np.flatnonzero(has_value)] if sides_all else None
    provoking = np.array(
        [d for e, d in zip(patient.events, patient.event_days, strict=True)
         if e.event_type in PROVOKING_EVENT_TYPES],
        dtype=np.int64,
    )
    pins = patient.series.pinned_for(metric)
    recent = median_of_last(values, _CURRENT_LOGS)
    excluded: BoolArray | None = None
    episodes: list[AlertEpisode] = []
    start = 0
    n = days.shape[0]
    while start < n:
        baselines = pain_baselines(
            days, values, patient.n_days, config, excluded, pins, patient.origin
        )
        triggers = pain_triggers(days, values, baselines, provoking, config)
        hits = np.flatnonzero(triggers.fired[start:])
        if hits.shape[0] == 0:
            break
        i = start + int(hits[0])
        level = float(baselines.level[i])
        important = float(triggers.important_rise[i])
        # Onset: back through the run of logs at least half a clinically important rise up.
        onset_i = i
        while (
            onset_i - 1 >= start
            and values[onset_i - 1] - level >= config.onset_margin * important
            and days[onset_i] - days[onset_i - 1] <= config.window_max_span_days
        ):
            onset_i -= 1
        after = recent[i + 1 :] <= level + config.resolve_margin
        settled = first_sustained(after, config.resolve_logs)
        resolve_i = None if settled is None else i + 1 + settled
        detected_day = int(days[i])
        onset_day = int(days[onset_i])
        window_lo = max(0, i - _CURRENT_LOGS + 1)
        current = float(recent[i])
        since = days_since_last(provoking, np.array([detected_day], dtype=np.int64))[0]
        linked: PatientEvent | None = None
        if since <= config.event_window_days:
            linked_day = detected_day - int(since)
            linked = next(
                e for e, d in zip(patient.events, patient.event_days, strict=True)
                if d == linked_day and e.event_type in PROVOKING_EVENT_TYPES
            )
        window_events, related, history = _related(patient, detected_day, config)
        side = next((s for s in reversed(sides[window_lo : i + 1]) if s), None) if sides else None
        explanation = pain_explanation(
            metric=metric,
            leg_side=side,
            current=current,
            window_dates=[patient.date_of(d) for d in days[window_lo : i + 1]],
            baseline=level,
            important_rise=important,
            onset=patient.date_of(onset_day),
            linked_event=linked,
            other_events=[e for e in window_events if e is not linked],
            history=history,
        )
        had_surgery = any(e.event_type == "surgery" for e in patient.context(detected_day)[0])
        urgent = (
            config.urgent_if_event_after_surgery
            and linked is not None
            and (had_surgery or bool(patient.series.history))
        )
        if baselines.pinned[i]:
            source = f"pinned: {format_number(level)}/10"
        else:
            source = (
                f"automatic: median of {int(baselines.logs_used[i])} logs from "
                f"{patient.date_of(int(baselines.window_start[i])).isoformat()} to "
                f"{patient.date_of(int(baselines.window_end[i])).isoformat()}"
                f" (spread {format_number(float(baselines.spread[i]))})"
            )
        episodes.append(
            AlertEpisode(
                patient_id=patient.series.patient_id,
                kind="pain_regression",
                metric=metric,
                onset=patient.date_of(onset_day),
                detected_on=patient.date_of(detected_day),
                resolved_on=None if resolve_i is None else patient.date_of(int(days[resolve_i])),
                severity="urgent" if urgent else "routine",
                baseline=level,
                current=current,
                change=current - level,
                related_events=related,
                explanation=explanation,
                baseline_source=source,
                linked_event=None
                if linked is None
                else RelatedEvent(linked.date, linked.event_type, linked.note),
            )
        )
        if resolve_i is None:
            break
        if excluded is None:
            excluded = np.zeros(patient.n_days, dtype=np.bool_)
        excluded[onset_day : int(days[resolve_i]) + 1] = True
        start = resolve_i + 1
    return episodes


def _adherence_episodes(patient: _Patient, config: DetectionConfig) -> list[AlertEpisode]:
    if not patient.series.adherence:
        return []
    raw = np.array(patient.series.adherence, dtype=np.float64)
    has_value = ~np.isnan(raw) & (patient.log_days < patient.n_days)
    width = config.adherence_window_logs
    if int(has_value.sum()) < config.adherence_min_baseline_logs + width:
        return []
    days = patient.log_days[has_value]
    values = np.clip(raw[has_value], 0.0, 1.0)
    n = days.shape[0]
    # Rolling window of the last `width` logs.
    idx = np.arange(n)
    first = np.clip(idx - width + 1, 0, None)
    csum = np.concatenate([[0.0], np.cumsum(values)])
    full = (idx >= width - 1) & (days - days[first] <= config.adherence_window_max_span_days)
    current = (csum[idx + 1] - csum[first]) / np.maximum(1, idx - first + 1)

    excluded = np.zeros(patient.n_days, dtype=np.bool_)
    episodes: list[AlertEpisode] = []
    start = 0
    while start < n:
        keep = ~excluded[days]
        cal_sum = np.zeros(patient.n_days + 1, dtype=np.float64)
        cal_cnt = np.zeros(patient.n_days + 1, dtype=np.int64)
        cal_sum[days[keep] + 1] = values[keep]
        cal_cnt[days[keep] + 1] = 1
        cal_sum = np.cumsum(cal_sum)
        cal_cnt = np.cumsum(cal_cnt)
        hi = np.clip(days - config.adherence_gap_days + 1, 0, patient.n_days)
        lo = np.clip(hi - config.adherence_baseline_days, 0, patient.n_days)
        count = cal_cnt[hi] - cal_cnt[lo]
        usual = (cal_sum[hi] - cal_sum[lo]) / np.maximum(1, count)
        threshold = np.maximum(config.adherence_min_drop, config.adherence_min_relative_drop * usual)
        low = values <= usual - config.adherence_min_drop
        low_count = np.convolve(low.astype(np.int64), np.ones(width, dtype=np.int64))[:n]
        fired = (
            full
            & (count >= config.adherence_min_baseline_logs)
            & (usual - current >= threshold)
            & (low_count >= config.adherence_low_logs_needed)
            & low
        )
        hits = np.flatnonzero(fired[start:])
        if hits.shape[0] == 0:
            break
        i = start + int(hits[0])
        base = float(usual[i])
        limit = float(threshold[i])
        onset_i = i
        while onset_i - 1 >= max(start, int(first[i])) and low[onset_i - 1]:
            onset_i -= 1
        back = current[i + 1 :] >= base - limit / 2.0
        settled = first_sustained(back, config.adherence_resolve_logs)
        resolve_i = None if settled is None else i + 1 + settled
        detected_day = int(days[i])
        window_events, related, history = _related(patient, detected_day, config)
        now = float(current[i])
        episodes.append(
            AlertEpisode(
                patient_id=patient.series.patient_id,
                kind="adherence_drop",
                metric="adherence",
                onset=patient.date_of(int(days[onset_i])),
                detected_on=patient.date_of(detected_day),
                resolved_on=None if resolve_i is None else patient.date_of(int(days[resolve_i])),
                severity="routine",
                baseline=round(base, 3),
                current=round(now, 3),
                change=round(now - base, 3),
                related_events=related,
                explanation=adherence_explanation(
                    current=now,
                    n_logs=int(i - first[i] + 1),
                    span_days=int(days[i] - days[first[i]] + 1),
                    baseline=base,
                    threshold=limit,
                    other_events=window_events,
                    history=history,
                ),
                baseline_source=(
                    f"automatic: mean of {int(count[i])} logs from "
                    f"{patient.date_of(int(lo[i])).isoformat()} to "
                    f"{patient.date_of(int(hi[i]) - 1).isoformat()}"
                ),
            )
        )
        if resolve_i is None:
            break
        excluded[int(days[onset_i]) : int(days[resolve_i]) + 1] = True
        start = resolve_i + 1
    return episodes


def _missed_log_episodes(patient: _Patient, config: DetectionConfig) -> list[AlertEpisode]:
    """An alert on the Nth consecutive day without a log; resolved by the next log."""
    n_missing = config.missed_log_days
    days = patient.log_days[patient.log_days < patient.n_days]
    following = np.concatenate([days[1:], [patient.n_days - 1 + n_missing + 1]])
    # Calendar end acts as a log just past `as_of`: only gaps reaching N days by `as_of` alert.
    gap_days = following - days - 1
    episodes: list[AlertEpisode] = []
    for k in np.flatnonzero(gap_days >= n_missing):
        last_log = int(days[k])
        detected_day = last_log + n_missing
        if detected_day > patient.n_days - 1:
            continue
        resolved = int(following[k]) if k + 1 < days.shape[0] else None
        window_events, related, history = _related(patient, detected_day, config)
        episodes.append(
            AlertEpisode(
                patient_id=patient.series.patient_id,
                kind="missed_logs",
                metric=None,
                onset=patient.date_of(last_log + 1),
                detected_on=patient.date_of(detected_day),
                resolved_on=None if resolved is None else patient.date_of(resolved),
                severity="routine",
                baseline=None,
                current=float(n_missing),
                change=None,
                related_events=related,
                explanation=missed_logs_explanation(
                    days_without=n_missing,
                    last_log=patient.date_of(last_log),
                    other_events=window_events,
                    history=history,
                ),
            )
        )
    return episodes


def _red_flag_episodes(patient: _Patient, config: DetectionConfig) -> list[AlertEpisode]:
    episodes: list[AlertEpisode] = []
    flags_by_log = patient.series.red_flags
    for k, flags in enumerate(flags_by_log):
        if not flags or patient.log_days[k] >= patient.n_days:
            continue
        day = int(patient.log_days[k])
        window_events, related, history = _related(patient, day, config)
        when = patient.date_of(day)
        episodes.append(
            AlertEpisode(
                patient_id=patient.series.patient_id,
                kind="red_flag",
                metric=None,
                onset=when,
                detected_on=when,
                resolved_on=None,
                severity="urgent",
                baseline=None,
                current=None,
                change=None,
                related_events=related,
                explanation=red_flag_explanation(
                    day=when, flags=flags, other_events=window_events, history=history
                ),
            )
        )
    return episodes


def _function_episodes(patient: _Patient, config: DetectionConfig) -> list[AlertEpisode]:
    """ODI/PSFS worse than the median of the previous measures (or a pin) by ≥ the MCID."""
    episodes: list[AlertEpisode] = []
    last_day = patient.date_of(patient.n_days - 1)
    for instrument, mcid, sign in (("odi", config.odi_mcid, 1.0), ("psfs", config.psfs_mcid, -1.0)):
        measures = sorted(
            (m for m in patient.series.outcomes if m.instrument == instrument and m.date <= last_day),
            key=lambda m: m.date,
        )
        pins = patient.series.pinned_for(instrument)
        stable: list[float] = []
        open_episode: dict[str, float | date] | None = None
        for m in measures:
            pin = next((p for p in reversed(pins) if p.effective_from <= m.date), None)
            if open_episode is not None:
                base = float(open_episode["baseline"])
                if sign * (m.score - base) < mcid / 2.0:
                    idx = int(open_episode["index"])
                    episodes[idx] = _with_resolution(episodes[idx], m.date)
                    open_episode = None
                    stable.append(m.score)
                continue
            recent = stable[-config.outcome_baseline_measures :]
            if pin is not None:
                base, n_used, source = pin.level, 0, f"pinned: {format_number(pin.level)}"
            elif recent:
                base = float(np.median(recent))
                n_used = len(recent)
                source = f"automatic: median of the previous {n_used} measures"
            else:
                stable.append(m.score)
                continue
            if sign * (m.score - base) >= mcid:
                detected_day = (m.date - patient.origin).days
                window_events, related, history = _related(patient, detected_day, config)
                episodes.append(
                    AlertEpisode(
                        patient_id=patient.series.patient_id,
                        kind="function_decline",
                        metric=instrument,
                        onset=m.date,
                        detected_on=m.date,
                        resolved_on=None,
                        severity="routine",
                        baseline=base,
                        current=m.score,
                        change=m.score - base,
                        related_events=related,
                        explanation=function_explanation(
                            instrument=instrument,
                            score=m.score,
                            measured_on=m.date,
                            baseline=base,
                            baseline_measures=max(1, n_used),
                            important_change=mcid,
                            other_events=window_events,
                            history=history,
                        ),
                        baseline_source=source,
                    )
                )
                open_episode = {"baseline": base, "index": float(len(episodes) - 1)}
            else:
                stable.append(m.score)
    return episodes


def _with_resolution(episode: AlertEpisode, resolved_on: date) -> AlertEpisode:
    from dataclasses import replace

    return replace(episode, resolved_on=resolved_on)


def replay_patient(
    series: PatientSeries, config: DetectionConfig, as_of: date | None = None
) -> list[AlertEpisode]:
    """All episodes of one patient, replayed causally from the first log up to `as_of`."""
    patient = _prepare(series, as_of)
    if patient is None:
        return []
    episodes: list[AlertEpisode] = []
    for metric in PAIN_METRICS:
        episodes.extend(_pain_episodes(patient, metric, config))
    episodes.extend(_red_flag_episodes(patient, config))
    episodes.extend(_adherence_episodes(patient, config))
    episodes.extend(_missed_log_episodes(patient, config))
    episodes.extend(_function_episodes(patient, config))
    episodes.sort(key=lambda e: (e.detected_on, e.kind, e.metric or ""))
    return episodes
