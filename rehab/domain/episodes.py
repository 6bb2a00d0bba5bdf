"""Causal replay of patients into alert episodes of every kind.

Rules (design §2 dedup and auto-resolve):
- At most one open episode per (kind, metric). While one is open its baseline is frozen at the
  value it was opened against, and nothing new opens for that (kind, metric).
- pain_regression resolves once the median of the last 3 logs has stayed within
  max(`resolve_margin`, half the clinically important rise) of the frozen baseline for
  `resolve_logs` logs in a row; adherence_drop once the mean of the last 5 logs has been back
  within half the alert drop of the usual level for `adherence_resolve_logs` logs in a row;
  missed_logs on the next log; function_decline at the next measure less than half an MCID
  worse than its baseline (a PSFS: compared on the activities the decline was raised on; it
  closes, saying so, at a measure that no longer rates enough of them). A later rise opens a
  new episode. (The days of an episode do not linger in later baselines for long: the level
  follows the patient down once she is back.)
- A pain decision that is a further clinically important rise over an open pain episode's
  level, judged like with like (`_superseded_by`), supersedes it: the open episode resolves
  on that log and a new one opens there (one open per key still holds).
- red_flag episodes are instant and never auto-resolved: every red-flag day opens its own
  urgent episode, detected that day, closed only by a clinician (its dedup key has the day).

Everything per log is computed for a whole batch of patients at once on flat arrays
(`packing.py`, `baseline.py`, `detectors.py`), in integer day numbers; Python walks only the
logs where an alert would open, and builds dates, explanations and event context only for the
episodes it emits.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import date
from operator import attrgetter
from typing import NamedTuple

import numpy as np

from rehab.domain.alerts import AlertEpisode, RelatedEvent
from rehab.domain.arrays import BoolArray, FloatArray, IntArray, flat_true
from rehab.domain.baseline import (
    PainBaselines,
    ShownBaselines,
    apply_pin_in_place,
    pain_baselines,
    pin_applies,
    pin_in_force,
    pin_periods,
)
from rehab.domain.clinical import SCORE_TOLERANCE
from rehab.domain.config import DetectionConfig
from rehab.domain.detectors import (
    EVENT_RULE,
    PainDecisions,
    adherence_decisions,
    pain_decisions,
)
from rehab.domain.explain import (
    activities_compared,
    adherence_head,
    format_number,
    function_head,
    join_sentences,
    missed_logs_head,
    missed_logs_since_start_head,
    pain_began,
    pain_head,
    red_flag_head,
    with_context,
)
from rehab.domain.missed_logs import Gap, Stretch, asked_gaps, program_runs
from rehab.domain.packing import Batch, Packed, Patient, pack
from rehab.domain.questionnaires import comparable_psfs
from rehab.domain.series import (
    PAIN_METRICS,
    PROVOKING_EVENT_TYPES,
    AnySeries,
    OutcomeScore,
    PatientSeries,
)

# Patients per packed batch: bounds the memory of the per-log arrays (a few dozen per log).
BATCH_PATIENTS = 512
_CURRENT_LOGS = 3
_ONSET_LOOKBACK = 40


def _first_run_end(
    held: FloatArray, start: int, end: int, limit: float, run: int, *, below: bool
) -> int | None:
    """Index where the values have first been ≤ limit (≥ with below=False) for `run`
    consecutive entries from `start` on (before `end`), given `held`: the max (min with
    below=False) of the `run` values ending at each index."""
    first = start + run - 1
    if first >= end:
        return None
    ok = held[first:end] <= limit if below else held[first:end] >= limit
    at = int(ok.argmax())
    return first + at if bool(ok[at]) else None


def _rolling(values: FloatArray, run: int, *, largest: bool) -> FloatArray:
    """Max (min with largest=False) of the `run` values ending at each index (across series
    boundaries too: callers only look at runs inside one series)."""
    held = values.copy()
    combine = np.maximum if largest else np.minimum
    for lag in range(1, run):
        combine(held[lag:], values[:-lag], out=held[lag:])
    return held


# --- pain ----------------------------------------------------------------------------------


class _PainDecision(NamedTuple):
    """The decision an alert opened on: the window of logs [anchor, log] of one kind, and the
    statistic it was judged by, as logged (the alert's `current`), and the baseline the alert
    shows (`shown`: the pin, or the median of the logs of the baseline period).

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
    shown: float


class _FiredLogs:
    """The logs of a batch where a pain alert would open, with what the episode walk reads of
    them as Python lists (entry k: the k-th such log), so that walking them costs no array
    access per log."""

    def __init__(self, decisions: PainDecisions, day: IntArray) -> None:
        fired = flat_true(decisions.rule > 0)
        self.fired = fired
        self.log: list[int] = fired.tolist()
        self.is_event: list[bool] = (decisions.rule[fired] == EVENT_RULE).tolist()
        self.window_width: list[int] = decisions.window_width[fired].tolist()
        window_level = decisions.window_level[fired]
        event_level = decisions.event_level[fired]
        self.window_level: list[float] = window_level.tolist()
        self.window_shown: list[float] = decisions.window_shown[fired].tolist()
        self.event_level: list[float] = event_level.tolist()
        self.event_shown: list[float] = decisions.event_shown[fired].tolist()
        self.event_day: list[int] = decisions.event_day[fired].tolist()
        self.day: list[int] = day[fired].tolist()
        # The clinically important rise over the baseline of each kind's window.
        width = decisions.window_width[fired]
        important = decisions.important_rise
        self.window_important: list[float] = important[
            np.maximum(fired - np.maximum(width, 1) + 1, 0)
        ].tolist()
        self.event_important: list[float] = important[np.maximum(fired - 1, 0)].tolist()
        # The higher statistic of the two kinds (−∞ where neither fired), for a quick reject.
        self.best: list[float] = np.fmax(
            np.nan_to_num(window_level, nan=-np.inf), np.nan_to_num(event_level, nan=-np.inf)
        ).tolist()

    def important(self, k: int, decision: _PainDecision) -> float:
        """The clinically important rise of the decision at the k-th fired log."""
        return self.event_important[k] if decision.kind == "event" else self.window_important[k]

    def decision(self, k: int, kind: str | None = None) -> _PainDecision:
        """The decision at the k-th fired log: of `kind`, or the one that takes precedence."""
        log = self.log[k]
        if kind is None:
            kind = "event" if self.is_event[k] else "window"
        if kind == "event":
            return _PainDecision(
                log,
                "event",
                EVENT_RULE,
                log - 1,
                self.event_level[k],
                self.event_day[k],
                self.event_shown[k],
            )
        width = self.window_width[k]
        return _PainDecision(
            log, "window", width, log - width + 1, self.window_level[k], 0, self.window_shown[k]
        )


def _statistic_phrase(
    decision: _PainDecision, span: int, event: str, event_date: str, only_logs: bool, trimmed: int
) -> str:
    """How the alert's current level was taken, e.g. "(mean of the last 6 logs over 8 days,
    2 highest left out)" or "(mean of the 2 logs since the fall on 2025-09-14)"."""
    if decision.kind == "event":
        if only_logs:
            return f"(mean of the 2 logs since the {event} on {event_date})"
        return f"(mean of the last 2 logs, both since the {event} on {event_date})"
    over = "" if span == decision.width else f" over {span} days"
    if decision.width - trimmed == 1:
        return f"(lowest of the last {decision.width} logs{over})"
    return f"(mean of the last {decision.width} logs{over}, {trimmed} highest left out)"


class _Opened(NamedTuple):
    """A pain episode the walk opened: on `decision` in series `series`, its onset looked for
    from log `earliest` on, closed on log `closed` (None: still open; `superseded`: by the next
    episode's further rise), replacing the episode detected on log `supersedes` (None: none)."""

    series: int
    decision: _PainDecision
    earliest: int
    closed: int | None
    supersedes: int | None
    superseded: bool


def _onset_logs(
    value: FloatArray, log: IntArray, earliest: IntArray, clearly: FloatArray
) -> IntArray:
    """Onset of each episode: the first log of the run of clearly raised logs (≥ `clearly`)
    that ends at or before its detection `log`, looking back at most `_ONSET_LOOKBACK` logs and
    never before `earliest` (when none is clearly raised, the earliest log it may look at)."""
    back = np.arange(_ONSET_LOOKBACK + 1)
    reach = log - np.maximum(earliest, log - _ONSET_LOOKBACK)  # logs one may look back
    valid = back[None, :] <= reach[:, None]
    clear = (value[np.maximum(log[:, None] - back[None, :], 0)] >= clearly[:, None]) & valid
    # The latest clearly raised log (else the earliest one may look at) …
    latest = np.where(clear.any(axis=1), clear.argmax(axis=1), reach)
    # … and back from it while the logs stay clearly raised.
    after = (back[None, :] > latest[:, None]) & ~clear
    first = np.where(after.any(axis=1), after.argmax(axis=1) - 1, reach)
    return np.asarray(log - np.minimum(first, reach), dtype=np.int64)


def _emit_pain_episodes(
    patients: Sequence[Patient | None],
    packed: Packed,
    baselines: PainBaselines,
    decisions: PainDecisions,
    opened: list[_Opened],
    config: DetectionConfig,
    out: list[list[AlertEpisode]],
) -> None:
    """The alert episodes of the pain episodes opened: what each needs from the arrays is
    gathered for all of them at once, then their dates, explanations and event context."""
    local_day = packed.local_day
    log = np.array([o.decision.log for o in opened], dtype=np.int64)
    anchor = np.array([o.decision.anchor for o in opened], dtype=np.int64)
    earliest = np.array([o.earliest for o in opened], dtype=np.int64)
    shown = np.array([o.decision.shown for o in opened])
    series = np.array([o.series for o in opened], dtype=np.int64)
    important = decisions.important_rise[anchor]
    clearly = shown + np.maximum(config.elevated_margin, 0.75 * important)
    onset = _onset_logs(packed.value, log, earliest, clearly)
    closed = np.array([-1 if o.closed is None else o.closed for o in opened], dtype=np.int64)
    replaced = np.array([-1 if o.supersedes is None else o.supersedes for o in opened])
    series_first = packed.series_first[log]
    event_day = np.array([o.decision.event_day for o in opened]) - packed.series_offset[series]
    # Whether the 2 logs of an after-a-fall decision are the only ones since the fall.
    only_logs = (anchor == series_first) | (local_day[np.maximum(anchor - 1, 0)] < event_day)
    # The logs the leg side is read from: the last 3 of the episode, latest first.
    side_from = np.maximum(np.maximum(earliest, series_first), log - _CURRENT_LOGS + 1)
    source = packed.source_index
    columns = zip(
        opened,
        important.tolist(),
        local_day[onset].tolist(),
        local_day[log].tolist(),
        local_day[anchor].tolist(),
        np.where(closed >= 0, local_day[closed], -1).tolist(),
        np.where(replaced >= 0, local_day[np.maximum(replaced, 0)], -1).tolist(),
        event_day.tolist(),
        only_logs.tolist(),
        (log - side_from + 1).tolist(),
        source[log].tolist(),
        source[np.maximum(log - 1, 0)].tolist(),
        source[np.maximum(log - 2, 0)].tolist(),
        baselines.pinned[anchor].tolist(),
        baselines.logs_used[anchor].tolist(),
        baselines.window_days[anchor].tolist(),
        baselines.followed_down[anchor].tolist(),
        baselines.noise[anchor].tolist(),
        strict=True,
    )
    trimmed = config.trimmed_logs
    for (
        opening,
        rise,
        onset_day,
        detected_day,
        anchor_day,
        closed_day,
        replaced_day,
        event_on,
        only,
        side_logs,
        source_0,
        source_1,
        source_2,
        pinned,
        logs_used,
        window_days,
        followed_down,
        noise,
    ) in columns:
        decision = opening.decision
        k = opening.series
        position = packed.owner[k]
        patient = patients[position]
        assert patient is not None
        metric = packed.column[k]
        level = decision.shown
        current = decision.level
        if decision.kind == "event":
            event = patient.latest_provoking(event_on, event_on)
            statistic = _statistic_phrase(
                decision,
                0,
                event.event_type if event is not None else "event",
                patient.date_of(event_on).isoformat(),
                only,
                trimmed,
            )
        else:
            statistic = _statistic_phrase(
                decision, detected_day - anchor_day + 1, "", "", False, trimmed
            )
        side: str | None = None
        if metric == "leg_pain" and patient.series.leg_side:
            sides = patient.series.leg_side
            for source_index in (source_0, source_1, source_2)[:side_logs]:
                if sides[source_index]:
                    side = sides[source_index]
                    break
        onset_date = patient.date_of(onset_day)
        head = pain_head(
            metric=metric,
            leg_side=side,
            current=current,
            statistic=statistic,
            baseline=level,
            important_rise=rise,
        )
        supersedes = None if replaced_day < 0 else patient.date_of(replaced_day)
        linked = (
            patient.latest_provoking(detected_day, onset_day - config.event_window_days)
            if patient.provoking
            else None
        )
        if linked is None:
            related, tail = patient.context_tail(detected_day, config)
            began = pain_began(onset=onset_date, linked_event=None, supersedes=supersedes)
            explanation = with_context(f"{head} {began}" if began else head, tail)
            urgent = False
        else:
            related, tail = patient.context_tail_without(detected_day, config, linked)
            explanation = join_sentences(
                head,
                pain_began(onset=onset_date, linked_event=linked, supersedes=supersedes),
                tail,
            )
            urgent = config.urgent_if_event_after_surgery and patient.surgery_known(detected_day)
        if pinned:
            baseline_source = f"pinned by the clinician: {format_number(level)}/10"
        else:
            baseline_source = (
                f"automatic: median of {logs_used} logs in the {window_days} days before "
                f"{patient.date_of(anchor_day).isoformat()}"
                + (", following the patient's improvement" if followed_down else "")
                + f"; day-to-day noise {format_number(noise)}"
            )
        out[position].append(
            AlertEpisode(
                patient.series.patient_id,
                "pain_regression",
                metric,
                onset_date,
                patient.date_of(detected_day),
                None if closed_day < 0 else patient.date_of(closed_day),
                "urgent" if urgent else "routine",
                level,
                current,
                current - level,
                related,
                explanation,
                baseline_source,
                None
                if linked is None
                else RelatedEvent(linked.date, linked.event_type, linked.note),
                opening.superseded,
            )
        )


def _pain_baselines_with_pins(
    packed: Packed,
    patients: Sequence[Patient | None],
    config: DetectionConfig,
    checked: bool = False,
) -> PainBaselines:
    """The baselines of packed pain series, with the clinicians' pins (`checked`: the values
    are known to be ratings 0–10)."""
    baselines = pain_baselines(
        packed.day,
        packed.value,
        packed.calendar,
        config,
        packed.local_day,
        integer_values=checked or bool(np.all(packed.value == np.round(packed.value))),
        series_first=packed.series_first,
    )
    for k, position in enumerate(packed.owner):
        patient = patients[position]
        assert patient is not None
        if not patient.series.pinned_baselines:
            continue
        pins = patient.series.pinned_for(packed.column[k])
        if not pins:
            continue
        logs = slice(int(packed.series_start[k]), int(packed.series_end[k]))
        periods = pin_periods(
            [(p.effective_from.toordinal() - patient.origin, p.level, p.spread) for p in pins]
        )
        for period in periods:
            applies = pin_applies(period, packed.local_day[logs])
            apply_pin_in_place(baselines, logs, applies, period.level, period.spread)
    return baselines


def _provoking_days(
    packed: Packed, patients: Sequence[Patient | None], config: DetectionConfig
) -> IntArray:
    """Virtual days of falls and injuries up to `as_of` (later ones do not exist yet, and
    would sit on the next series' stretch); one older than the event window before the first
    log is kept just out of its reach, for the same reason."""
    days: list[int] = []
    oldest = -config.event_window_days - 1
    for k, position in enumerate(packed.owner):
        patient = patients[position]
        assert patient is not None
        if not patient.events:
            continue
        offset = int(packed.series_offset[k])
        for event, event_day in zip(patient.events, patient.event_days, strict=True):
            if event.event_type in PROVOKING_EVENT_TYPES and event_day <= patient.last_day:
                days.append(offset + max(event_day, oldest))
    return np.array(sorted(days), dtype=np.int64)


def _check_pain_values(packed: Packed, patients: Sequence[Patient | None]) -> None:
    value = packed.value
    bad = (value < 0) | (value > 10) | (value != np.round(value))
    if not bool(bad.any()):
        return
    bad_series = np.unique(packed.series_end.searchsorted(flat_true(bad), "right"))
    # The first patient in batch order (then back before leg pain) is the one named.
    k = min(
        bad_series.tolist(),
        key=lambda s: (packed.owner[s], packed.column[s] != PAIN_METRICS[0]),
    )
    owner = patients[packed.owner[k]]
    raise ValueError(
        f"{owner.series.patient_id if owner else '?'}: {packed.column[k]} must be integers 0–10"
    )


def _pain_episodes(batch: Batch, config: DetectionConfig, out: list[list[AlertEpisode]]) -> None:
    # Every series with 2 logs (the after-a-fall rule's window): with a clinician's pin a
    # decision needs no week of history, and a series left out for want of logs would alert
    # only once more logs came (causality).
    patients = batch.patients
    packed = pack(batch, [(m, batch.column(m)) for m in PAIN_METRICS], 2, config)
    if packed is None:
        return
    _check_pain_values(packed, patients)
    value = packed.value
    baselines = _pain_baselines_with_pins(packed, patients, config, checked=True)
    provoking = _provoking_days(packed, patients, config)
    shown_levels = ShownBaselines(packed.day, value, packed.calendar, baselines, ratings=True)
    decisions = pain_decisions(
        packed.day, value, packed.series_first, baselines, provoking, config, shown_levels
    )
    fired = _FiredLogs(decisions, packed.day)
    if not fired.log:
        return
    held = _rolling(decisions.recent_median, config.resolve_logs, largest=True)
    # The fired logs of series k are entries bounds[k] … bounds[k + 1] − 1.
    bounds = [*fired.fired.searchsorted(packed.series_start).tolist(), len(fired.log)]
    log = fired.log
    opened: list[_Opened] = []
    series_end = packed.series_end.tolist()
    series_starts = packed.series_start.tolist()
    for k in flat_true(np.diff(bounds)).tolist():
        end = series_end[k]
        series_start = series_starts[k]
        onset_from = series_start
        supersedes: int | None = None
        entry, last_entry = bounds[k], bounds[k + 1]
        decision = fired.decision(entry)
        while True:
            i = decision.log
            important = fired.important(entry, decision)
            margin = max(config.resolve_margin, 0.5 * important)
            resolve_at = _first_run_end(
                held, i + 1, end, decision.shown + margin, config.resolve_logs, below=True
            )
            # The later fired logs while this episode is open.
            later_end = (
                last_entry
                if resolve_at is None
                else bisect_right(log, resolve_at, entry + 1, last_entry)
            )
            superseding = (
                _superseded_by(
                    fired,
                    value,
                    series_start,
                    entry + 1,
                    later_end,
                    decision,
                    important,
                    config.trimmed_logs,
                )
                if config.escalate and later_end > entry + 1
                else None
            )
            opened.append(
                _Opened(
                    k,
                    decision,
                    onset_from,
                    superseding[1].log if superseding is not None else resolve_at,
                    supersedes,
                    superseding is not None,
                )
            )
            if superseding is not None:
                # The next episode opens on that log, on the decision that superseded this
                # one; its onset is looked for in that window (the further rise), after this
                # one's detection.
                entry, decision = superseding
                onset_from = max(i + 1, decision.anchor)
                supersedes = i
                continue
            if resolve_at is None:
                break
            entry = bisect_left(log, resolve_at + 1, entry + 1, last_entry)
            if entry >= last_entry:
                break
            onset_from = resolve_at + 1
            supersedes = None
            decision = fired.decision(entry)
    if opened:
        _emit_pain_episodes(patients, packed, baselines, decisions, opened, config, out)


def _superseded_by(
    fired: _FiredLogs,
    value: FloatArray,
    series_first: int,
    first: int,
    end: int,
    alert: _PainDecision,
    important: float,
    trimmed: int,
) -> tuple[int, _PainDecision] | None:
    """The first later decision (fired entries `first` … `end` − 1, while the episode opened
    on `alert` is still open) that is a further clinically important rise over the alert's own
    current level, judged like with like: a further regression, which supersedes it (design
    §2 keeps one open alert per metric, so the open one closes that day and the new one opens).

    The later decision's statistic must be the clinically important rise above the alert's
    current level and above the same statistic at the alert's detection: a window's trimmed
    mean above the trimmed mean of as many logs then (a window that fired while its first
    logs were still low does not make the plateau it reached a further rise); the mean of the
    2 logs since a fall or injury dated after the detection (a new one) above the mean of the
    last 2 logs then. An after-a-fall alert's first pair of logs may straddle the rise (the
    fall-day log and the first raised one), so for it a window must also rise above the
    higher of those 2 logs; and the same fall's later pairs of logs are the regression it
    already reports, still being logged, never a further one."""
    # Quick reject: no later statistic reaches the rise over the alert's own level.
    if max(fired.best[first:end]) < alert.level + important - 1e-9:
        return None
    i = alert.log
    recent = value[max(series_first, i - 20) : i + 1].tolist()
    at_alert: dict[int, float] = {}
    detected = fired.day[first - 1]  # the alert's own log is the entry before `first`
    for j in range(first, end):
        if fired.event_day[j] > detected:
            last_two = (recent[-2] + recent[-1]) / 2.0 if len(recent) > 1 else 0.0
            if fired.event_level[j] >= max(alert.level, last_two) + important - 1e-9:
                return j, fired.decision(j, "event")
        width = fired.window_width[j]
        if width:
            if alert.kind == "window":
                reference = at_alert.get(width)
                if reference is None:
                    reference = (
                        sum(sorted(recent[-width:])[: width - trimmed]) / (width - trimmed)
                        if width <= len(recent)
                        else -np.inf
                    )
                    reference = max(alert.level, reference)
                    at_alert[width] = reference
            else:
                reference = max(alert.level, recent[-1], recent[-2])
            if fired.window_level[j] >= reference + important - 1e-9:
                return j, fired.decision(j, "window")
    return None


# --- adherence -----------------------------------------------------------------------------


def _adherence_episodes(
    batch: Batch, config: DetectionConfig, out: list[list[AlertEpisode]]
) -> None:
    patients = batch.patients
    packed = pack(
        batch,
        [("adherence", batch.column("adherence"))],
        # Not their sum: the window's logs may also be baseline logs when a week or more has
        # no log, and a series left out for want of logs must stay out until more come.
        max(config.adherence_min_baseline_logs, config.adherence_window_logs),
        config,
    )
    if packed is None:
        return
    value = np.clip(packed.value, 0.0, 1.0)
    decisions = adherence_decisions(packed.day, value, packed.series_first, packed.calendar, config)
    fired = flat_true(decisions.fired)
    if fired.shape[0] == 0:
        return
    held = _rolling(decisions.current, config.adherence_resolve_logs, largest=False)
    log = fired.tolist()
    usual = decisions.usual[fired].tolist()
    threshold = decisions.threshold[fired].tolist()
    bounds = [*fired.searchsorted(packed.series_start).tolist(), len(log)]
    series_end = packed.series_end.tolist()
    # The walk: (series, fired entry, first log its onset may be, resolution log or −1).
    opened: list[tuple[int, int, int, int]] = []
    for k in flat_true(np.diff(bounds)).tolist():
        end = series_end[k]
        earliest = int(packed.series_start[k])
        entry, last_entry = bounds[k], bounds[k + 1]
        while entry < last_entry:
            i = log[entry]
            resolve_at = _first_run_end(
                held,
                i + 1,
                end,
                usual[entry] - threshold[entry] / 2.0,
                config.adherence_resolve_logs,
                below=False,
            )
            opened.append((k, entry, earliest, -1 if resolve_at is None else resolve_at))
            if resolve_at is None:
                break
            earliest = resolve_at + 1
            entry = bisect_left(log, earliest, entry + 1, last_entry)
    # What the episodes need, for all of them at once.
    entries = np.array([o[1] for o in opened], dtype=np.int64)
    at = fired[entries]
    earliest_log = np.array([o[2] for o in opened], dtype=np.int64)
    resolved = np.array([o[3] for o in opened], dtype=np.int64)
    # Onset: back from the detection over the logs that were low, within the window.
    window_first = np.maximum(earliest_log, at - config.adherence_window_logs + 1)
    onset = at.copy()
    still = np.ones(at.shape[0], dtype=np.bool_)
    for back in range(1, config.adherence_window_logs):
        still &= (at - back >= window_first) & decisions.low[np.maximum(at - back, 0)]
        onset[still] = at[still] - back
    window_start = np.maximum(packed.series_first[at], at - 4)
    local_day = packed.local_day
    columns = zip(
        opened,
        local_day[onset].tolist(),
        local_day[at].tolist(),
        np.where(resolved >= 0, local_day[np.maximum(resolved, 0)], -1).tolist(),
        decisions.current[at].tolist(),
        decisions.usual_logs[at].tolist(),
        (at - window_start + 1).tolist(),
        local_day[window_start].tolist(),
        strict=True,
    )
    for (
        k,
        entry,
        _,
        _,
    ), onset_day, detected_day, resolved_day, current, usual_logs, n_logs, first in columns:
        position = packed.owner[k]
        patient = patients[position]
        assert patient is not None
        usual_level = usual[entry]
        related, tail = patient.context_tail(detected_day, config)
        usual_until = detected_day - config.adherence_gap_days
        out[position].append(
            AlertEpisode(
                patient.series.patient_id,
                "adherence_drop",
                "adherence",
                patient.date_of(onset_day),
                patient.date_of(detected_day),
                None if resolved_day < 0 else patient.date_of(resolved_day),
                "routine",
                round(usual_level, 3),
                round(current, 3),
                round(current - usual_level, 3),
                related,
                with_context(
                    adherence_head(
                        current=current,
                        n_logs=n_logs,
                        span_days=detected_day - first + 1,
                        baseline=usual_level,
                        threshold=threshold[entry],
                    ),
                    tail,
                ),
                f"automatic: mean of {usual_logs} logs in the "
                f"{config.adherence_baseline_days} days up to "
                f"{patient.date_of(usual_until).isoformat()}",
            )
        )


# --- missed logs, red flags, function --------------------------------------------------------


def _missed_log_episodes(
    batch: Batch, config: DetectionConfig, out: list[list[AlertEpisode]]
) -> None:
    """Detected on the Nth consecutive day without a log; resolved by the next log. A series
    that says when logging was asked (`logging_asked`) counts only the days of its programs
    (`rehab.domain.missed_logs`): its stretches without logs found here are handed over."""
    n_missing = config.missed_log_days
    ordinal = batch.ordinal
    n = ordinal.shape[0]
    dates = _DateCache()  # the batch's patients share their calendar
    # Patients whose logging was asked have their stretches without logs handed over to
    # `missed_logs.asked_gaps` (`stretches`): the one before the first log, then those found
    # below (`asked`). The usual case is shorter: one open-ended program that began on or
    # before her first log, whose gaps after it are the ones found here; only the stretch
    # before that log is handed over, if it is long enough to hold one.
    asked: list[int] = []
    stretches: dict[int, list[Stretch]] = {}
    for p, series in enumerate(batch.series):
        periods = series.logging_asked
        if periods is None:
            continue
        first_log = int(ordinal[batch.first[p]]) if batch.n_logs[p] > 0 else None
        if len(periods) == 1 and periods[0][1] is None and first_log is not None:
            started = periods[0][0].toordinal()
            if started <= first_log:
                if first_log - started >= n_missing:
                    stretches[p] = [(None, first_log)]
                continue
        stretches[p] = [(None, first_log)]
        asked.append(p)
    if n:
        # The day after `as_of` acts as the next log: only gaps reaching N days by `as_of`.
        last = batch.first + batch.n_logs - 1
        has_logs = batch.n_logs > 0
        following = np.empty(n, dtype=np.int64)
        following[:-1] = ordinal[1:]
        following[last[has_logs]] = (batch.origin + batch.last_day + 1)[has_logs]
        gaps = flat_true(following - ordinal - 1 >= n_missing)
        is_last = np.zeros(n, dtype=np.bool_)
        is_last[last[has_logs]] = True
        if asked and gaps.shape[0]:
            handed = np.zeros(len(batch.series), dtype=np.bool_)
            handed[asked] = True
            theirs = handed[batch.owner[gaps]]
            for owner, last_log, next_log, open_ in zip(
                batch.owner[gaps[theirs]].tolist(),
                ordinal[gaps[theirs]].tolist(),
                following[gaps[theirs]].tolist(),
                is_last[gaps[theirs]].tolist(),
                strict=True,
            ):
                stretches[owner].append((last_log, None if open_ else next_log))
            gaps = gaps[~theirs]
        _log_gap_episodes(batch, gaps, following, is_last, config, dates, out)
    for p, handed_over in stretches.items():
        _asked_missed_log_episodes(batch, p, handed_over, config, dates, out[p])


def _log_gap_episodes(
    batch: Batch,
    gaps: IntArray,
    following: IntArray,
    is_last: BoolArray,
    config: DetectionConfig,
    dates: _DateCache,
    out: list[list[AlertEpisode]],
) -> None:
    """The episodes of the logs followed by N days or more without one (`gaps`)."""
    if gaps.shape[0] == 0:
        return
    n_missing = config.missed_log_days
    patients = batch.patients
    for owner, last_log, next_log, open_ in zip(
        batch.owner[gaps].tolist(),
        batch.ordinal[gaps].tolist(),
        following[gaps].tolist(),
        is_last[gaps].tolist(),
        strict=True,
    ):
        patient = patients[owner]
        assert patient is not None
        head = missed_logs_head(days_without=n_missing, last_log=dates.isoformat(last_log))
        resolved = None if open_ else next_log
        gap = Gap(last_log + 1, last_log + n_missing, resolved, last_log, run_start=0)  # no run
        out[owner].append(_missed_log_episode(patient, gap, head, config, dates))


def _asked_missed_log_episodes(
    batch: Batch,
    position: int,
    stretches: list[Stretch],
    config: DetectionConfig,
    dates: _DateCache,
    out: list[AlertEpisode],
) -> None:
    """The missed-log episodes of a series that says when logging was asked, from its
    stretches without logs; also for a patient with no log at all (no `Patient` in the
    batch: one is made here for the context)."""
    series = batch.series[position]
    assert series.logging_asked is not None
    as_of = int(batch.origin[position] + batch.last_day[position])
    logs_from = series.logs_from
    gaps = asked_gaps(
        stretches,
        program_runs(series.logging_asked),
        as_of,
        config.missed_log_days,
        logs_from.toordinal() if logs_from is not None else None,
    )
    if not gaps:
        return
    first = int(batch.first[position])
    patient = batch.patients[position] or Patient(series, position, as_of, 0, first)
    n_missing = config.missed_log_days
    for gap in gaps:
        if gap.last_log is not None and gap.last_log == gap.onset - 1:
            head = missed_logs_head(days_without=n_missing, last_log=dates.isoformat(gap.last_log))
        else:
            head = missed_logs_since_start_head(
                days_without=n_missing,
                started=dates.isoformat(gap.run_start),
                last_log=None if gap.last_log is None else dates.isoformat(gap.last_log),
            )
        out.append(_missed_log_episode(patient, gap, head, config, dates))


def _missed_log_episode(
    patient: Patient, gap: Gap, head: str, config: DetectionConfig, dates: _DateCache
) -> AlertEpisode:
    """A missed-logs episode: its head, then the events around its detection and history."""
    series = patient.series
    if patient.events or series.history:
        related, tail = patient.context_tail(gap.detected - patient.origin, config)
        explanation = with_context(head, tail)
    else:
        related, explanation = (), head
    return AlertEpisode(
        series.patient_id,
        "missed_logs",
        None,
        dates[gap.onset],
        dates[gap.detected],
        None if gap.resolved is None else dates[gap.resolved],
        "routine",
        None,
        float(config.missed_log_days),  # current: days without a log
        None,
        related,
        explanation,
        program_ended=gap.run_ended,
    )


class _DateCache(dict[int, date]):
    """Dates by ordinal, made once: the patients of a batch share their calendar."""

    def __init__(self) -> None:
        super().__init__()
        self._iso: dict[int, str] = {}

    def __missing__(self, ordinal: int) -> date:
        made = self[ordinal] = date.fromordinal(ordinal)
        return made

    def isoformat(self, ordinal: int) -> str:
        text = self._iso.get(ordinal)
        if text is None:
            text = self._iso[ordinal] = self[ordinal].isoformat()
        return text


def _red_flag_episodes(
    patient: Patient, days: IntArray, config: DetectionConfig
) -> list[AlertEpisode]:
    """`days`: the batch's log day numbers (`Batch.day`)."""
    episodes: list[AlertEpisode] = []
    red_flags = list(patient.series.red_flags[: patient.n_logs])
    if red_flags.count(()) == len(red_flags):
        return episodes
    for k, flags in enumerate(red_flags):
        if not flags:
            continue
        day = int(days[patient.first + k])
        when = patient.date_of(day)
        related, tail = patient.context_tail(day, config)
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
                explanation=with_context(red_flag_head(day=when, flags=flags), tail),
            )
        )
    return episodes


def _median(scores: list[float]) -> float:
    """`float(np.median(scores))` for a few scores, without numpy's overhead."""
    count = len(scores)
    if count == 1:
        only = scores[0]
        if only == only:
            return float(only)
    total = sum(scores)
    if total != total:  # a NaN (or opposite infinities): numpy's answer
        return float(np.median(scores))
    if count == 2:
        return float((scores[0] + scores[1]) / 2.0)
    ordered = sorted(scores)
    middle = count // 2
    if count % 2:
        return float(ordered[middle])
    return float((ordered[middle - 1] + ordered[middle]) / 2.0)


def _compared(
    measure: OutcomeScore, against: Sequence[OutcomeScore], on: frozenset[str] | None
) -> tuple[float, float] | None:
    """The measure's score and the median of `against`'s, on the same PSFS activities among
    `on` (as they are for ODI); None when too few are common."""
    compared = comparable_psfs(measure, against, on)
    if compared is None:
        return None
    return compared.current, _median(list(compared.earlier))


def _by_date(measure: OutcomeScore) -> date:
    return measure.date


def _function_episodes(patient: Patient, config: DetectionConfig) -> list[AlertEpisode]:
    """ODI/PSFS worse than the median of the previous stable measures (or a pin) by ≥ MCID."""
    episodes: list[AlertEpisode] = []
    last_date = patient.date_of(patient.last_day)
    by_instrument: dict[str, list[OutcomeScore]] = {"odi": [], "psfs": []}
    for measure in patient.series.outcomes:
        if measure.date <= last_date:
            found = by_instrument.get(measure.instrument)
            if found is not None:
                found.append(measure)
    keep = config.outcome_baseline_measures
    for instrument, mcid, worse_sign in (
        ("odi", config.odi_mcid, 1.0),
        ("psfs", config.psfs_mcid, -1.0),
    ):
        measures = by_instrument[instrument]
        if not measures:
            continue
        measures.sort(key=_by_date)
        pins = pin_periods(
            [
                (p.effective_from.toordinal(), p.level, p.spread)
                for p in patient.series.pinned_for(instrument)
            ]
            if patient.series.pinned_baselines
            else []
        )
        stable: list[OutcomeScore] = []
        # The open episode, built once its resolution is known: its fields but resolved_on;
        # and what it was judged against (a pin's level, or the earlier measures and, for a
        # PSFS, the activities compared).
        open_: dict[str, object] | None = None
        open_pin: float | None = None
        open_against: list[OutcomeScore] = []
        open_on: frozenset[str] | None = None
        for measure in measures:
            if open_ is not None:
                if open_pin is not None:
                    now: tuple[float, float] | None = (measure.score, open_pin)
                else:
                    now = _compared(measure, open_against, open_on)
                if now is None:
                    # (PSFS) The activities it was raised on are no longer rated: it cannot
                    # be followed. Closed, saying so; the measure is then judged below like
                    # any other, against the earlier ones it shares enough activities with.
                    episodes.append(
                        AlertEpisode(resolved_on=measure.date, activities_replaced=True, **open_)  # type: ignore[arg-type]
                    )
                    open_ = None
                elif worse_sign * (now[0] - now[1]) < mcid / 2.0 - SCORE_TOLERANCE:
                    episodes.append(AlertEpisode(resolved_on=measure.date, **open_))  # type: ignore[arg-type]
                    open_ = None
                    stable.append(measure)
                    continue
                else:
                    continue
            pin = pin_in_force(pins, measure.date.toordinal()) if pins else None
            activities = 0
            if pin is not None:
                # A pin is the clinician's level for the score as recorded.
                score, base, n_used = measure.score, pin.level, 0
                against: list[OutcomeScore] = []
                on: frozenset[str] = frozenset()
                source = f"pinned by the clinician: {format_number(pin.level)}"
            else:
                against = stable[-keep:]
                compared = comparable_psfs(measure, against) if against else None
                if compared is None:
                    stable.append(measure)
                    continue
                score, activities = compared.current, compared.activities
                against = against[len(against) - len(compared.earlier) :]
                base, n_used = _median(list(compared.earlier)), len(compared.earlier)
                source = f"automatic: median of the previous {n_used} measures"
                if activities:
                    source += f", {activities_compared(activities)}"
                on = compared.on
            if worse_sign * (score - base) < mcid - SCORE_TOLERANCE:
                stable.append(measure)
                continue
            detected_day = measure.date.toordinal() - patient.origin
            related, tail = patient.context_tail(detected_day, config)
            open_ = {
                "patient_id": patient.series.patient_id,
                "kind": "function_decline",
                "metric": instrument,
                "onset": measure.date,
                "detected_on": measure.date,
                "severity": "routine",
                "baseline": base,
                "current": score,
                "change": score - base,
                "related_events": related,
                "explanation": with_context(
                    function_head(
                        instrument=instrument,
                        score=score,
                        measured_on=measure.date,
                        baseline=base,
                        baseline_measures=n_used,
                        important_change=mcid,
                        activities=activities,
                    ),
                    tail,
                ),
                "baseline_source": source,
            }
            open_pin = None if pin is None else base
            open_against = against
            open_on = on or None
        if open_ is not None:
            episodes.append(AlertEpisode(resolved_on=None, **open_))  # type: ignore[arg-type]
    return episodes


# Episodes of a patient by detection day, then kind and metric (one kind's metrics are all
# None or all names, so the attributes themselves order them).
_episode_order = attrgetter("detected_on", "kind", "metric")


def replay_batch(
    batch: Sequence[AnySeries], config: DetectionConfig, as_of: date | None = None
) -> list[list[AlertEpisode]]:
    """All episodes of each patient, replayed causally up to `as_of` (default: each patient's
    last log), in the order of `batch`.

    A series with `logs_from` (a window of a longer history): a pain or adherence decision
    reads up to `config.decision_lookback_days` before its log, so the window's first logs
    are judged against baselines made of a few logs instead of the history the whole replay
    has, and open episodes the whole replay never opens. Those episodes are replayed (one
    still open when the window's own decisions begin holds off a new one, as the whole
    replay's open episode would) but not returned."""
    out: list[list[AlertEpisode]] = [[] for _ in batch]
    for first in range(0, len(batch), BATCH_PATIENTS):
        chunk = Batch(batch[first : first + BATCH_PATIENTS], as_of)
        chunk_out = out[first : first + BATCH_PATIENTS]
        _pain_episodes(chunk, config, chunk_out)
        _adherence_episodes(chunk, config, chunk_out)
        _missed_log_episodes(chunk, config, chunk_out)
        for position, (patient, episodes) in enumerate(zip(chunk.patients, chunk_out, strict=True)):
            if patient is None:
                # No daily log (yet): a patient followed at her visits only still has her
                # ODI/PSFS scores watched (her missed logging, if asked for, is above).
                series = chunk.series[position]
                if series.outcomes:
                    scored = _patient_without_logs(chunk, position)
                    episodes.extend(_function_episodes(scored, config))
                    episodes.sort(key=_episode_order)
                continue
            if len(patient.series.red_flags):
                episodes.extend(_red_flag_episodes(patient, chunk.day, config))
            if patient.series.outcomes:
                episodes.extend(_function_episodes(patient, config))
            logs_from = patient.series.logs_from
            if logs_from is not None:
                decided_from = date.fromordinal(
                    logs_from.toordinal() + config.decision_lookback_days
                )
                episodes[:] = [e for e in episodes if _decided(e, decided_from)]
            episodes.sort(key=_episode_order)
    return out


def _patient_without_logs(batch: Batch, position: int) -> Patient:
    """A `Patient` for a series with ODI/PSFS scores but no log on or before the replay's day,
    whose day 0 is that day: `as_of` if given, else her latest score (a replay "up to her last
    log" is then up to her last data)."""
    series = batch.series[position]
    as_of = int(batch.origin[position] + batch.last_day[position])
    if not as_of:  # neither `as_of` nor a log
        as_of = max(measure.date for measure in series.outcomes).toordinal()
    return Patient(series, position, as_of, 0, int(batch.first[position]))


def _decided(episode: AlertEpisode, decided_from: date) -> bool:
    """Whether a window replay decides `episode` as the whole history would (see
    `replay_batch`): missed logs, red flags and function declines read no earlier logs."""
    return episode.detected_on >= decided_from or episode.kind not in LOOKBACK_KINDS


# The kinds whose decisions read earlier logs: a window of the history decides them as the
# whole history does only from `decision_lookback_days` after its first log.
LOOKBACK_KINDS = frozenset({"pain_regression", "adherence_drop"})


# --- the detector's baselines for one series, as the trajectory chart's checks replay them ----


def _prepare(series: PatientSeries, as_of: date | None) -> Patient | None:
    """One patient as a batch prepares her (None: no log on or before `as_of`)."""
    return Batch([series], as_of).patients[0]


def _pack(
    patients: Sequence[Patient | None],
    columns: Sequence[str],
    min_logs: int,
    config: DetectionConfig,
) -> Packed | None:
    """`packing.pack` of prepared patients (all prepared up to the same day)."""
    days = {p.origin + p.last_day for p in patients if p is not None}
    if len(days) > 1:
        raise ValueError("patients prepared up to different days")
    batch = Batch(
        [p.series if p is not None else PatientSeries("", (), (), ()) for p in patients],
        date.fromordinal(days.pop()) if days else None,
    )
    return pack(batch, [(c, batch.column(c)) for c in columns], min_logs, config)
