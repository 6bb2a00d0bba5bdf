"""Plain-facts alert explanations: values, windows, baselines, thresholds, events, history.

Explanations state what was logged and how it compares; they never name a cause or a diagnosis
(the platform records and shows, it does not diagnose). Example:

    Left leg pain 7/10 (mean of the 2 logs since the fall on 2025-09-14) vs baseline 1/10 (+6;
    clinically important ≥ 2). Began 1 day after a fall (slipped at the top of a staircase,
    went down 10 steps on buttocks) logged 2025-09-14. History: left L4-L5 decompression
    2024-06-10.

A pain alert's level is the statistic its decision was taken on, said with how it was taken
(the mean of the 2 logs since a fall, or a window's trimmed mean and its size), so the rise
it states is the rise that was judged clinically important.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from rehab.domain.series import (
    HISTORY_EVENT_TYPES,
    UNSPECIFIED_RED_FLAG,
    HistoryItem,
    PatientEvent,
)
from rehab.domain.vocabulary import RED_FLAG_LABELS

_RED_FLAG_NAMES: dict[str, str] = {flag.value: label for flag, label in RED_FLAG_LABELS.items()}

_EVENT_PHRASES: dict[str, str] = {
    "fall": "a fall",
    "injury": "an injury",
    "surgery": "surgery",
    "imaging": "imaging",
    "diagnosis": "a diagnosis",
    "symptom_return": "a return of symptoms",
    "medication_change": "a medication change",
    "travel": "travel",
    "other": "an event",
}


def format_number(value: float) -> str:
    """7.0 -> "7", 6.5 -> "6.5", 0.333 -> "0.33"."""
    text = _FORMATTED.get(value)
    if text is None:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        text = "0" if text in ("-0", "") else text
        if len(_FORMATTED) < 4096:  # the numbers alerts show repeat: keep the common ones
            _FORMATTED[value] = text
    return text


_FORMATTED: dict[float, str] = {}


def signed(value: float) -> str:
    return ("+" if value >= 0 else "−") + format_number(abs(value))


def metric_label(metric: str, leg_side: str | None = None) -> str:
    """ "Back pain", "Left leg pain", "Leg pain (both sides)", "Adherence", "ODI", "PSFS"."""
    if metric == "leg_pain":
        if leg_side in ("left", "right"):
            return f"{leg_side.capitalize()} leg pain"
        if leg_side == "both":
            return "Leg pain (both sides)"
        return "Leg pain"
    return {"back_pain": "Back pain", "adherence": "Adherence", "odi": "ODI", "psfs": "PSFS"}.get(
        metric, metric.replace("_", " ").capitalize()
    )


def describe_event(event: PatientEvent) -> str:
    """ "a fall on stairs (10 steps, landed on buttocks), left side (slipped on marble)"."""
    text = _EVENT_PHRASES.get(event.event_type, event.event_type.replace("_", " "))
    note = event.note.strip()
    if event.mechanism:
        text += f" {event.mechanism}"
    if event.side and event.side not in note and event.side not in (event.mechanism or ""):
        text += f", {event.side} side"
    if note:
        text += f" ({note})"
    return text


def began_sentence(onset: date, event: PatientEvent) -> str:
    gap = (onset - event.date).days
    described = describe_event(event)
    comma = "," if described.endswith(" side") else ""
    what = f"{described}{comma} logged {event.date.isoformat()}"
    if gap == 0:
        return f"Began the day of {what}."
    if gap > 0:
        return f"Began {gap} day{'s' if gap != 1 else ''} after {what}."
    return f"Began {-gap} day{'s' if gap != -1 else ''} before {what}."


def history_sentence(history: Sequence[HistoryItem], events: Sequence[PatientEvent]) -> str:
    """ "History: left L4-L5 decompression 2024-06." from history items and past surgeries and
    diagnoses (only those logged up to the decision, by the caller)."""
    parts: list[str] = []
    for item in history:
        parts.append(f"{item.description} {item.when}".strip())
    for event in sorted(events, key=lambda e: e.date):
        if event.event_type in HISTORY_EVENT_TYPES:
            label = event.note.strip() or _EVENT_PHRASES.get(event.event_type, event.event_type)
            parts.append(f"{label} {event.date.isoformat()}")
    unique = list(dict.fromkeys(parts))
    return f"History: {'; '.join(unique)}." if unique else ""


def event_mention(event: PatientEvent) -> str:
    """An event as "Also logged" lists it: "a fall on stairs (…) 2025-09-14"."""
    return f"{describe_event(event)} {event.date.isoformat()}"


def also_logged_sentence(mentions: Sequence[str]) -> str:
    """ "Also logged: …." of `event_mention`s (empty for none)."""
    return f"Also logged: {'; '.join(mentions)}." if mentions else ""


def join_sentences(*sentences: str) -> str:
    return " ".join([s for s in sentences if s])


def pain_head(
    *,
    metric: str,
    leg_side: str | None,
    current: float,
    statistic: str,
    baseline: float,
    important_rise: float,
) -> str:
    return (
        f"{metric_label(metric, leg_side)} {format_number(current)}/10 "
        f"{statistic} vs baseline {format_number(baseline)}/10 "
        f"({signed(current - baseline)}; clinically important ≥ {format_number(important_rise)})."
    )


def pain_began(*, onset: date, linked_event: PatientEvent | None, supersedes: date | None) -> str:
    """What a pain alert says after its head about how it began: after which fall, replacing
    which open alert (empty when neither)."""
    began = began_sentence(onset, linked_event) if linked_event is not None else ""
    if supersedes is None:
        return began
    further = (
        f"Rose further while the alert detected {supersedes.isoformat()} was open; this alert "
        "replaces it."
    )
    return f"{began} {further}" if began else further


def with_context(head: str, context: str) -> str:
    """`head` followed by its context ("Also logged: …", the history line), if any."""
    return f"{head} {context}" if context else head


def adherence_head(
    *, current: float, n_logs: int, span_days: int, baseline: float, threshold: float
) -> str:
    return (
        f"Adherence {round(100 * current)}% (mean of {n_logs} logs over {span_days} days) vs "
        f"usual {round(100 * baseline)}% ({signed(round(100 * (current - baseline)))} points; "
        f"alert at a drop ≥ {round(100 * threshold)} points)."
    )


def missed_logs_head(*, days_without: int, last_log: str) -> str:
    """`last_log` in ISO format."""
    return f"No log for {days_without} days (last log {last_log})."


def missed_logs_since_start_head(*, days_without: int, started: str, last_log: str | None) -> str:
    """No log since the program began (or began again after a break); dates in ISO format."""
    before = f"last log {last_log}" if last_log is not None else "no log yet"
    return f"No log for {days_without} days since the program started {started} ({before})."


def red_flag_head(*, day: date, flags: Sequence[str]) -> str:
    named = [
        _RED_FLAG_NAMES.get(f, f.replace("_", " ")) for f in flags if f != UNSPECIFIED_RED_FLAG
    ]
    return f"Red flag reported {day.isoformat()}" + (f": {'; '.join(named)}." if named else ".")


def activities_compared(activities: int) -> str:
    """ "on the 3 activities rated in each": how PSFS measures were compared."""
    return f"on the {activities} activit{'y' if activities == 1 else 'ies'} rated in each"


def function_head(
    *,
    instrument: str,
    score: float,
    measured_on: date,
    baseline: float,
    baseline_measures: int,
    important_change: float,
    activities: int = 0,
) -> str:
    """`baseline_measures` 0: the baseline is a clinician's pin. `activities`: PSFS compared
    on that many activities rated in each measure (0: all of them, the scores as recorded)."""
    scale = "/100" if instrument == "odi" else "/10"
    direction = "higher is worse" if instrument == "odi" else "lower is worse"
    label = metric_label(instrument)
    if activities:
        label += f" {activities_compared(activities)}:"
    if baseline_measures:
        plural = "s" if baseline_measures != 1 else ""
        source = f"median of {baseline_measures} earlier measure{plural}"
    else:
        source = "pinned by the clinician"
    return (
        f"{label} {format_number(score)}{scale} on {measured_on.isoformat()} "
        f"vs baseline {format_number(baseline)}{scale} ({source}; {direction}) "
        f"({signed(score - baseline)}; clinically important ≥ {format_number(important_change)})."
    )
