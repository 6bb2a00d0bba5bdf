"""Causal replay of patients into alert episodes of every kind.

Rules (design §2 dedup and auto-resolve):
- At most one open episode per (kind, metric). While one is open its baseline is frozen at the
  value it was opened against, and nothing new opens for that (kind, metric).
- pain_regression resolves once the median of the last 3 logs has stayed within
  max(`resolve_margin`, half the clinically important rise) of the frozen baseline for
  `resolve_logs` logs in a row; adherence_drop once the mean of the last 5 logs has been back
  within half the alert drop of the usual level for `adherence_resolve_logs` logs in a row;
  missed_logs on the next log; function_decline at the next measure less than half an MCID
  worse than its baseline. A later rise opens a new episode. (The days of an episode do not
  linger in later baselines for long: the level follows the patient down once she is back.)
- A pain window that fires while a pain episode is open, a clinically important rise above
  the level that episode was raised at, supersedes it: the open episode resolves on that log
  and a new one opens there (one open per key still holds).
- red_flag episodes are instant and never auto-resolved: every red-flag day opens its own
  urgent episode, detected that day, closed only by a clinician (its dedup key has the day).

Pain and adherence are computed for a whole batch of patients at once on packed arrays (see
`baseline.py`); only the few logs where an alert would open are walked in Python.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import numpy.typing as npt

from rehab.domain.alerts import AlertEpisode, RelatedEvent
from rehab.domain.baseline import (
    LogCalendar,
    PainBaselines,
    ShownBaselines,
    apply_pin,
    pain_baselines,
)
from rehab.domain.config import DetectionConfig
from rehab.domain.detectors import (
    EVENT_RULE,
    AdherenceDecisions,
    PainDecisions,
    adherence_decisions,
    pain_decisions,
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
from rehab.domain.series import PAIN_METRICS, PROVOKING_EVENT_TYPES, PatientEvent, PatientSeries

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Patients per packed batch: bounds the memory of the (logs × 11) histogram tables.
BATCH_PATIENTS = 512
_CURRENT_LOGS = 3
_ONSET_LOOKBACK = 40


@dataclass(frozen=True, slots=True)
class _Patient:
    """One patient's series with days counted from the first log (day 0) up to `as_of`."""

    series: PatientSeries
    origin: int  # ordinal of the first log's date
    last_day: int  # day index of `as_of`
    n_logs: int  # logs dated on or before `as_of`
    log_days: IntArray
    events: tuple[PatientEvent, ...]  # by date
    event_days: tuple[int, ...]
    has_surgery_history: bool

    def date_of(self, day: int) -> date:
        return date.fromordinal(self.origin + day)

    def known_events(self, day: int) -> tuple[PatientEvent, ...]:
        """Events dated on or before `day` (nothing logged later may appear)."""
        return self.events[: bisect_right(self.event_days, day)]

    def context(
        self, day: int, config: DetectionConfig
    ) -> tuple[tuple[PatientEvent, ...], tuple[RelatedEvent, ...], str]:
        """Events of the `related_event_days` up to `day`, as objects and as related events,
        and the history line, all as known on `day`."""
        if not self.events:
            return (), (), history_sentence(self.series.history, ()) if self.series.history else ""
        known_until = bisect_right(self.event_days, day)
        recent_from = bisect_left(self.event_days, day - config.related_event_days)
        recent = self.events[recent_from:known_until]
        related = tuple(RelatedEvent(e.date, e.event_type, e.note) for e in recent)
        return recent, related, history_sentence(self.series.history, self.events[:known_until])


def _prepare(series: PatientSeries, as_of: date | None) -> _Patient | None:
    if not series.dates:
        return None
    ordinals = np.fromiter(
        map(date.toordinal, series.dates), dtype=np.int64, count=len(series.dates)
    )
    if ordinals.shape[0] > 1 and not bool(np.all(ordinals[1:] > ordinals[:-1])):
        raise ValueError(f"{series.patient_id}: log dates must be strictly increasing")
    origin = int(ordinals[0])
    last_day = (series.dates[-1] if as_of is None else as_of).toordinal() - origin
    if last_day < 0:
        return None
    log_days = ordinals - origin
    n_logs = int(np.searchsorted(log_days, last_day, side="right"))
    events = tuple(sorted(series.events, key=lambda e: e.date))
    event_days = tuple(e.date.toordinal() - origin for e in events)
    surgery = any(item.kind == "surgery" for item in series.history)
    return _Patient(
        series, origin, last_day, n_logs, log_days[:n_logs], events, event_days, surgery
    )


@dataclass(frozen=True, slots=True)
class _Packed:
    """Logs of several series (patient × column) of a batch, laid end to end (`baseline.py`)."""

    owner: list[int]  # per series: position of its patient in the batch
    column: list[str]  # per series: which log column it is
    series_start: IntArray
    series_end: IntArray
    day: IntArray  # virtual day
    local_day: IntArray  # day since the patient's first log
    value: FloatArray
    series_first: IntArray  # per log: index of the first log of its series
    source_index: IntArray  # per log: index into the patient's log columns
    series_offset: IntArray  # per series: virtual day of the patient's day 0
    calendar: LogCalendar


def _series_gap(config: DetectionConfig) -> int:
    """Days between packed series on the virtual calendar: more than any lookback."""
    return 2 + max(
        config.baseline_window_days,
        config.noise_window_days,
        config.rho_window_days,
        config.adherence_gap_days + config.adherence_baseline_days,
        config.event_window_days,
        int(config.window_span_per_log * max(w for w, _ in config.windows)) + 1,
        config.adherence_window_max_span_days,
    )


def _pack(
    patients: Sequence[_Patient | None],
    columns: Sequence[str],
    min_logs: int,
    config: DetectionConfig,
) -> _Packed | None:
    owners: list[int] = []
    names: list[str] = []
    spans: list[int] = []
    days: list[IntArray] = []
    values: list[FloatArray] = []
    sources: list[IntArray] = []
    for position, patient in enumerate(patients):
        if patient is None:
            continue
        for column in columns:
            raw_column = getattr(patient.series, column)
            if len(raw_column) < min_logs:
                continue
            raw = np.array(raw_column[: patient.n_logs], dtype=np.float64)
            present = np.flatnonzero(raw == raw)  # NaN (None) is not equal to itself
            if present.shape[0] < min_logs:
                continue
            owners.append(position)
            names.append(column)
            spans.append(patient.last_day + 1)
            days.append(patient.log_days[present])
            values.append(raw[present])
            sources.append(present)
    if not owners:
        return None
    lengths = np.fromiter(map(len, days), dtype=np.int64, count=len(days))
    series_end = np.cumsum(lengths)
    series_start = series_end - lengths
    local_day = np.concatenate(days)
    gap = _series_gap(config)
    series_offset = gap + np.concatenate([[0], np.cumsum(np.array(spans) + gap)])
    offsets = np.repeat(series_offset[:-1], lengths)
    day = local_day + offsets
    return _Packed(
        owner=owners,
        column=names,
        series_start=series_start,
        series_end=series_end,
        day=day,
        local_day=local_day,
        value=np.concatenate(values),
        series_first=np.repeat(series_start, lengths),
        source_index=np.concatenate(sources),
        series_offset=series_offset[:-1],
        calendar=LogCalendar(day, int(series_offset[-1])),
    )


def _first_run_end(
    values: FloatArray, start: int, end: int, limit: float, run: int, *, below: bool
) -> int | None:
    """Index where values[start:end] have first been ≤ limit (or ≥ with below=False) for
    `run` consecutive entries; scanned in chunks because episodes usually settle soon."""
    held = 0
    chunk = 32
    for lo in range(start, end, chunk):
        part = values[lo : min(end, lo + chunk)]
        ok = (part <= limit) if below else (part >= limit)
        for offset, good in enumerate(ok.tolist()):
            held = held + 1 if good else 0
            if held >= run:
                return lo + offset
    return None


def _fired_by_series(fired: BoolArray, packed: _Packed) -> list[tuple[int, IntArray]]:
    """(series number, indexes of fired logs) for each series where anything fired."""
    hits = np.flatnonzero(fired)
    if hits.shape[0] == 0:
        return []
    series_of_hit = np.searchsorted(packed.series_end, hits, side="right")
    bounds = np.flatnonzero(np.diff(series_of_hit)) + 1
    starts = np.concatenate([[0], bounds])
    return [
        (int(series_of_hit[s]), group)
        for s, group in zip(starts, np.split(hits, bounds), strict=True)
    ]


def _pain_baselines_with_pins(
    packed: _Packed, patients: Sequence[_Patient | None], config: DetectionConfig
) -> PainBaselines:
    baselines = pain_baselines(packed.day, packed.value, packed.calendar, config, packed.local_day)
    for k, position in enumerate(packed.owner):
        patient = patients[position]
        assert patient is not None
        if not patient.series.pinned_baselines:
            continue
        pins = patient.series.pinned_for(packed.column[k])
        if not pins:
            continue
        lo, hi = int(packed.series_start[k]), int(packed.series_end[k])
        for pin in pins:
            from_day = pin.effective_from.toordinal() - patient.origin
            applies = np.zeros(packed.day.shape[0], dtype=np.bool_)
            applies[lo:hi] = packed.local_day[lo:hi] >= from_day
            baselines = apply_pin(baselines, applies, pin.level, pin.spread)
    return baselines


def _provoking_days(
    packed: _Packed, patients: Sequence[_Patient | None], config: DetectionConfig
) -> IntArray:
    """Virtual days of falls and injuries up to `as_of` (later ones do not exist yet, and
    would sit on the next series' stretch); one older than the event window before the first
    log is kept just out of its reach, for the same reason."""
    days: list[int] = []
    oldest = -config.event_window_days - 1
    for k, position in enumerate(packed.owner):
        patient = patients[position]
        assert patient is not None
        offset = int(packed.series_offset[k])
        for event, event_day in zip(patient.events, patient.event_days, strict=True):
            if event.event_type in PROVOKING_EVENT_TYPES and event_day <= patient.last_day:
                days.append(offset + max(event_day, oldest))
    return np.array(sorted(days), dtype=np.int64)


def _linked_event(
    patient: _Patient, onset_day: int, detected_day: int, config: DetectionConfig
) -> PatientEvent | None:
    """The latest fall or injury from `event_window_days` before the onset to detection."""
    linked: PatientEvent | None = None
    for event, event_day in zip(patient.events, patient.event_days, strict=True):
        if event_day > detected_day:
            break
        if (
            event.event_type in PROVOKING_EVENT_TYPES
            and event_day >= onset_day - config.event_window_days
        ):
            linked = event
    return linked


@dataclass(frozen=True, slots=True)
class _PainDecision:
    """The decision an alert opened on: the window of logs [anchor, log] of one kind, and the
    statistic it was judged by, as logged (the alert's `current`).

    kind "window": the trimmed mean of the last `width` logs (the highest `trimmed` left out);
    kind "event": the mean of the 2 logs on or after the fall or injury on virtual day
    `event_day`.
    """

    log: int
    kind: str
    width: int
    anchor: int
    level: float
    event_day: int

    @staticmethod
    def at(decisions: PainDecisions, log: int, kind: str | None = None) -> _PainDecision:
        """The decision at `log`: of `kind`, or the one that takes precedence there."""
        if kind is None:
            kind = "event" if int(decisions.rule[log]) == EVENT_RULE else "window"
        if kind == "event":
            return _PainDecision(
                log,
                "event",
                EVENT_RULE,
                log - 1,
                float(decisions.event_level[log]),
                int(decisions.event_day[log]),
            )
        width = int(decisions.window_width[log])
        return _PainDecision(
            log, "window", width, log - width + 1, float(decisions.window_level[log]), 0
        )


def _statistic_phrase(
    decision: _PainDecision,
    patient: _Patient,
    packed: _Packed,
    event_offset: int,
    config: DetectionConfig,
) -> str:
    """How the alert's current level was taken, e.g. "(mean of the last 6 logs over 8 days,
    2 highest left out)" or "(mean of the 2 logs since the fall on 2025-09-14)"."""
    first_day = int(packed.local_day[decision.anchor])
    last_day = int(packed.local_day[decision.log])
    if decision.kind == "event":
        event_day = decision.event_day - event_offset
        event = _event_on(patient, event_day)
        noun = event.event_type if event is not None else "event"
        when = patient.date_of(event_day).isoformat()
        first = int(packed.series_first[decision.log])
        since = decision.anchor == first or int(packed.local_day[decision.anchor - 1]) < event_day
        if since:
            return f"(mean of the 2 logs since the {noun} on {when})"
        return f"(mean of the last 2 logs, both since the {noun} on {when})"
    span = last_day - first_day + 1
    over = "" if span == decision.width else f" over {span} days"
    if decision.width - config.trimmed_logs == 1:
        return f"(lowest of the last {decision.width} logs{over})"
    return f"(mean of the last {decision.width} logs{over}, {config.trimmed_logs} highest left out)"


def _event_on(patient: _Patient, day: int) -> PatientEvent | None:
    """The latest provoking event logged on `day` (the one the after-a-fall rule used)."""
    found: PatientEvent | None = None
    for event, event_day in zip(patient.events, patient.event_days, strict=True):
        if event_day == day and event.event_type in PROVOKING_EVENT_TYPES:
            found = event
    return found


def _pain_episode(
    patient: _Patient,
    metric: str,
    packed: _Packed,
    series: int,
    baselines: PainBaselines,
    decisions: PainDecisions,
    decision: _PainDecision,
    earliest: int,
    resolve_at: int | None,
    shown_baseline: float,
    config: DetectionConfig,
    supersedes: date | None = None,
) -> AlertEpisode:
    i = decision.log
    anchor = decision.anchor
    level = shown_baseline
    important = float(decisions.important_rise[anchor])
    # Onset: first log of the run of clearly raised logs that ends at or before detection
    # (looking back at most `_ONSET_LOOKBACK` logs, never before the previous episode ended).
    lo = max(earliest, i - _ONSET_LOOKBACK)
    values = packed.value[lo : i + 1].tolist()
    days = packed.local_day[lo : i + 1].tolist()
    clearly = level + max(config.elevated_margin, 0.75 * important)
    k = len(values) - 1
    while k > 0 and values[k] < clearly:
        k -= 1
    while k > 0 and values[k - 1] >= clearly:
        k -= 1
    onset_day = days[k]
    detected_day = days[-1]
    # The alert states the statistic its decision was taken on (never a different summary).
    current = decision.level
    statistic = _statistic_phrase(
        decision, patient, packed, int(packed.series_offset[series]), config
    )
    first_current = max(earliest, int(packed.series_first[i]), i - _CURRENT_LOGS + 1)
    linked = _linked_event(patient, onset_day, detected_day, config)
    recent, related, history = patient.context(detected_day, config)
    side: str | None = None
    if metric == "leg_pain" and patient.series.leg_side:
        sides = patient.series.leg_side
        for source in reversed(packed.source_index[first_current : i + 1].tolist()):
            if sides[source]:
                side = sides[source]
                break
    surgery = patient.has_surgery_history or any(
        e.event_type == "surgery" for e in patient.known_events(detected_day)
    )
    urgent = config.urgent_if_event_after_surgery and linked is not None and surgery
    if baselines.pinned[anchor]:
        source = f"pinned by the clinician: {format_number(level)}/10"
    else:
        before = patient.date_of(int(packed.local_day[anchor])).isoformat()
        source = (
            f"automatic: median of {int(baselines.logs_used[anchor])} logs in the "
            f"{int(baselines.window_days[anchor])} days before {before}"
            + (", following the patient's improvement" if baselines.followed_down[anchor] else "")
            + f"; day-to-day noise {format_number(float(baselines.noise[anchor]))}"
        )
    return AlertEpisode(
        patient_id=patient.series.patient_id,
        kind="pain_regression",
        metric=metric,
        onset=patient.date_of(onset_day),
        detected_on=patient.date_of(detected_day),
        resolved_on=None
        if resolve_at is None
        else patient.date_of(int(packed.local_day[resolve_at])),
        severity="urgent" if urgent else "routine",
        baseline=level,
        current=current,
        change=current - level,
        related_events=related,
        explanation=pain_explanation(
            metric=metric,
            leg_side=side,
            current=current,
            statistic=statistic,
            baseline=level,
            important_rise=important,
            onset=patient.date_of(onset_day),
            linked_event=linked,
            other_events=[e for e in recent if e is not linked],
            history=history,
            supersedes=supersedes,
        ),
        baseline_source=source,
        linked_event=None
        if linked is None
        else RelatedEvent(linked.date, linked.event_type, linked.note),
    )


def _pain_episodes(
    patients: Sequence[_Patient | None],
    config: DetectionConfig,
    out: list[list[AlertEpisode]],
) -> None:
    # Every series with 2 logs (the after-a-fall rule's window): with a clinician's pin a
    # decision needs no week of history, and a series left out for want of logs would alert
    # only once more logs came (causality).
    packed = _pack(patients, PAIN_METRICS, 2, config)
    if packed is None:
        return
    value = packed.value
    bad = (value < 0) | (value > 10) | (value != np.round(value))
    if bool(bad.any()):
        k = int(np.searchsorted(packed.series_end, np.argmax(bad), "right"))
        owner = patients[packed.owner[k]]
        raise ValueError(
            f"{owner.series.patient_id if owner else '?'}: {packed.column[k]} must be integers 0–10"
        )
    baselines = _pain_baselines_with_pins(packed, patients, config)
    provoking = _provoking_days(packed, patients, config)
    shown_levels = ShownBaselines(packed.day, value, packed.calendar, baselines)
    decisions = pain_decisions(
        packed.day, value, packed.series_first, baselines, provoking, config, shown_levels
    )
    for k, fired in _fired_by_series(decisions.rule > 0, packed):
        position = packed.owner[k]
        patient = patients[position]
        assert patient is not None
        end = int(packed.series_end[k])
        next_from = onset_from = int(packed.series_start[k])
        supersedes: date | None = None
        opening: _PainDecision | None = None  # the decision a superseding episode opens on
        fired_logs = fired.tolist()
        for n_fired, i in enumerate(fired_logs):
            if i < next_from:
                continue
            decision = opening if opening is not None else _PainDecision.at(decisions, i)
            opening = None
            anchor = decision.anchor
            shown = baselines.shown_level(packed.day, value, packed.calendar, anchor)
            important = float(decisions.important_rise[anchor])
            margin = max(config.resolve_margin, 0.5 * important)
            resolve_at = _first_run_end(
                decisions.recent_median, i + 1, end, shown + margin, config.resolve_logs, below=True
            )
            superseding = (
                _superseded_by(
                    decisions,
                    value,
                    packed.day,
                    int(packed.series_start[k]),
                    fired_logs[n_fired + 1 :],
                    decision,
                    important,
                    resolve_at,
                    config.trimmed_logs,
                )
                if config.escalate
                else None
            )
            out[position].append(
                _pain_episode(
                    patient,
                    packed.column[k],
                    packed,
                    k,
                    baselines,
                    decisions,
                    decision,
                    onset_from,
                    superseding.log if superseding is not None else resolve_at,
                    shown,
                    config,
                    supersedes,
                )
            )
            if superseding is not None:
                # The next episode opens on that log, on the decision that superseded this
                # one; its onset is looked for in that window (the further rise), after this
                # one's detection.
                next_from = superseding.log
                opening = superseding
                onset_from = max(i + 1, superseding.anchor)
                supersedes = patient.date_of(int(packed.local_day[i]))
                continue
            if resolve_at is None:
                break
            next_from = onset_from = resolve_at + 1
            supersedes = None


def _superseded_by(
    decisions: PainDecisions,
    value: FloatArray,
    day: IntArray,
    series_first: int,
    later_fired: Sequence[int],
    alert: _PainDecision,
    important: float,
    resolve_at: int | None,
    trimmed: int,
) -> _PainDecision | None:
    """The first later decision, while the episode opened on `alert` is still open, that is a
    further clinically important rise over the alert's own current level, judged like with
    like: a further regression, which supersedes it (design §2 keeps one open alert per
    metric, so the open one closes that day and the new one opens).

    The later decision's statistic must be the clinically important rise above the alert's
    current level and above the same statistic at the alert's detection: a window's trimmed
    mean above the trimmed mean of as many logs then (a window that fired while its first
    logs were still low does not make the plateau it reached a further rise); the mean of the
    2 logs since a fall or injury dated after the detection (a new one) above the mean of the
    last 2 logs then. An after-a-fall alert's first pair of logs may straddle the rise (the
    fall-day log and the first raised one), so for it a window must also rise above the
    higher of those 2 logs; and the same fall's later pairs of logs are the regression it
    already reports, still being logged, never a further one."""
    i = alert.log
    at_alert: dict[int, float] = {}

    def trimmed_mean_at_alert(width: int) -> float:
        if width not in at_alert:
            first = i - width + 1
            at_alert[width] = (
                float(np.sort(value[first : i + 1])[: width - trimmed].mean())
                if first >= series_first
                else -np.inf
            )
        return at_alert[width]

    for j in later_fired:
        if resolve_at is not None and j > resolve_at:
            return None
        if int(decisions.event_day[j]) > int(day[i]):
            last_two = (float(value[i - 1]) + float(value[i])) / 2.0 if i > series_first else 0.0
            reference = max(alert.level, last_two)
            if float(decisions.event_level[j]) >= reference + important - 1e-9:
                return _PainDecision.at(decisions, j, "event")
        width = int(decisions.window_width[j])
        if width:
            if alert.kind == "window":
                reference = max(alert.level, trimmed_mean_at_alert(width))
            else:
                reference = max(alert.level, float(value[i]), float(value[i - 1]))
            if float(decisions.window_level[j]) >= reference + important - 1e-9:
                return _PainDecision.at(decisions, j, "window")
    return None


def _adherence_episodes(
    patients: Sequence[_Patient | None],
    config: DetectionConfig,
    out: list[list[AlertEpisode]],
) -> None:
    packed = _pack(
        patients,
        ("adherence",),
        # Not their sum: the window's logs may also be baseline logs when a week or more has
        # no log, and a series left out for want of logs must stay out until more come.
        max(config.adherence_min_baseline_logs, config.adherence_window_logs),
        config,
    )
    if packed is None:
        return
    value = np.clip(packed.value, 0.0, 1.0)
    decisions: AdherenceDecisions = adherence_decisions(
        packed.day, value, packed.series_first, packed.calendar, config
    )
    for k, fired in _fired_by_series(decisions.fired, packed):
        position = packed.owner[k]
        patient = patients[position]
        assert patient is not None
        end = int(packed.series_end[k])
        earliest = int(packed.series_start[k])
        for i in fired.tolist():
            if i < earliest:
                continue
            usual = float(decisions.usual[i])
            threshold = float(decisions.threshold[i])
            resolve_at = _first_run_end(
                decisions.current,
                int(i) + 1,
                end,
                usual - threshold / 2.0,
                config.adherence_resolve_logs,
                below=False,
            )
            window_first = max(earliest, int(i) - config.adherence_window_logs + 1)
            onset_i = int(i)
            while onset_i - 1 >= window_first and decisions.low[onset_i - 1]:
                onset_i -= 1
            detected_day = int(packed.local_day[i])
            recent, related, history = patient.context(detected_day, config)
            current = float(decisions.current[i])
            usual_until = detected_day - config.adherence_gap_days
            out[position].append(
                AlertEpisode(
                    patient_id=patient.series.patient_id,
                    kind="adherence_drop",
                    metric="adherence",
                    onset=patient.date_of(int(packed.local_day[onset_i])),
                    detected_on=patient.date_of(detected_day),
                    resolved_on=None
                    if resolve_at is None
                    else patient.date_of(int(packed.local_day[resolve_at])),
                    severity="routine",
                    baseline=round(usual, 3),
                    current=round(current, 3),
                    change=round(current - usual, 3),
                    related_events=related,
                    explanation=adherence_explanation(
                        current=current,
                        n_logs=int(i) - max(int(packed.series_first[i]), int(i) - 4) + 1,
                        span_days=detected_day
                        - int(packed.local_day[max(int(packed.series_first[i]), int(i) - 4)])
                        + 1,
                        baseline=usual,
                        threshold=threshold,
                        other_events=recent,
                        history=history,
                    ),
                    baseline_source=(
                        f"automatic: mean of {int(decisions.usual_logs[i])} logs in the "
                        f"{config.adherence_baseline_days} days up to "
                        f"{patient.date_of(usual_until).isoformat()}"
                    ),
                )
            )
            if resolve_at is None:
                break
            earliest = resolve_at + 1


def _missed_log_episodes(patient: _Patient, config: DetectionConfig) -> list[AlertEpisode]:
    """Detected on the Nth consecutive day without a log; resolved by the next log."""
    n_missing = config.missed_log_days
    days = patient.log_days
    # The day after `as_of` acts as the next log: only gaps reaching N days by `as_of` alert.
    following = np.concatenate([days[1:], [patient.last_day + 1]])
    gaps = np.flatnonzero(following - days - 1 >= n_missing)
    episodes: list[AlertEpisode] = []
    n_days = days.shape[0]
    for k, last_log, next_log in zip(
        gaps.tolist(), days[gaps].tolist(), following[gaps].tolist(), strict=True
    ):
        detected_day = last_log + n_missing
        resolved = next_log if k + 1 < n_days else None
        recent, related, history = patient.context(detected_day, config)
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
                    other_events=recent,
                    history=history,
                ),
            )
        )
    return episodes


def _red_flag_episodes(patient: _Patient, config: DetectionConfig) -> list[AlertEpisode]:
    episodes: list[AlertEpisode] = []
    for k, flags in enumerate(patient.series.red_flags[: patient.n_logs]):
        if not flags:
            continue
        day = int(patient.log_days[k])
        recent, related, history = patient.context(day, config)
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
                    day=when, flags=flags, other_events=recent, history=history
                ),
            )
        )
    return episodes


def _function_episodes(patient: _Patient, config: DetectionConfig) -> list[AlertEpisode]:
    """ODI/PSFS worse than the median of the previous stable measures (or a pin) by ≥ MCID."""
    episodes: list[AlertEpisode] = []
    last_date = patient.date_of(patient.last_day)
    for instrument, mcid, worse_sign in (
        ("odi", config.odi_mcid, 1.0),
        ("psfs", config.psfs_mcid, -1.0),
    ):
        measures = sorted(
            (
                m
                for m in patient.series.outcomes
                if m.instrument == instrument and m.date <= last_date
            ),
            key=lambda m: m.date,
        )
        pins = patient.series.pinned_for(instrument)
        stable: list[float] = []
        open_at: int | None = None
        open_baseline = 0.0
        for measure in measures:
            if open_at is not None:
                if worse_sign * (measure.score - open_baseline) < mcid / 2.0:
                    episodes[open_at] = replace(episodes[open_at], resolved_on=measure.date)
                    open_at = None
                    stable.append(measure.score)
                continue
            pin = next((p for p in reversed(pins) if p.effective_from <= measure.date), None)
            recent_scores = stable[-config.outcome_baseline_measures :]
            if pin is not None:
                base, n_used = pin.level, 0
                source = f"pinned by the clinician: {format_number(pin.level)}"
            elif recent_scores:
                base, n_used = float(np.median(recent_scores)), len(recent_scores)
                source = f"automatic: median of the previous {n_used} measures"
            else:
                stable.append(measure.score)
                continue
            if worse_sign * (measure.score - base) < mcid:
                stable.append(measure.score)
                continue
            detected_day = measure.date.toordinal() - patient.origin
            recent, related, history = patient.context(detected_day, config)
            episodes.append(
                AlertEpisode(
                    patient_id=patient.series.patient_id,
                    kind="function_decline",
                    metric=instrument,
                    onset=measure.date,
                    detected_on=measure.date,
                    resolved_on=None,
                    severity="routine",
                    baseline=base,
                    current=measure.score,
                    change=measure.score - base,
                    related_events=related,
                    explanation=function_explanation(
                        instrument=instrument,
                        score=measure.score,
                        measured_on=measure.date,
                        baseline=base,
                        baseline_measures=n_used,
                        important_change=mcid,
                        other_events=recent,
                        history=history,
                    ),
                    baseline_source=source,
                )
            )
            open_at = len(episodes) - 1
            open_baseline = base
    return episodes


def _episode_order(episode: AlertEpisode) -> tuple[date, str, str]:
    return (episode.detected_on, episode.kind, episode.metric or "")


def replay_batch(
    batch: Sequence[PatientSeries], config: DetectionConfig, as_of: date | None = None
) -> list[list[AlertEpisode]]:
    """All episodes of each patient, replayed causally up to `as_of` (default: each patient's
    last log), in the order of `batch`."""
    out: list[list[AlertEpisode]] = [[] for _ in batch]
    for first in range(0, len(batch), BATCH_PATIENTS):
        chunk = batch[first : first + BATCH_PATIENTS]
        patients = [_prepare(series, as_of) for series in chunk]
        chunk_out = out[first : first + BATCH_PATIENTS]
        _pain_episodes(patients, config, chunk_out)
        _adherence_episodes(patients, config, chunk_out)
        for patient, episodes in zip(patients, chunk_out, strict=True):
            if patient is None:
                continue
            episodes.extend(_red_flag_episodes(patient, config))
            episodes.extend(_missed_log_episodes(patient, config))
            if patient.series.outcomes:
                episodes.extend(_function_episodes(patient, config))
            episodes.sort(key=_episode_order)
    return out
