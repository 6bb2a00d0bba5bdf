"""Care guidance shown to a patient after a log or an event (the seed case's lessons).

Guidance, not diagnosis: it tells the patient when to seek care and what to say, never what
the cause is.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from rehab.domain.vocabulary import RED_FLAG_LABELS, RedFlag

RED_FLAG_ADVICE = (
    "Seek immediate care: go to an emergency department or call emergency services now. "
    "New numbness, weakness, saddle numbness or a change in bladder or bowel control can need "
    "urgent treatment. Your clinician has been alerted."
)
FALL_ADVICE = (
    "After a fall, get evaluated by your clinician before assuming where the pain comes from. "
    "Tell them exactly how you fell: where, how far, and what landed first."
)
FALL_AFTER_SURGERY_ADVICE = (
    "You have had spine surgery: after a fall, ask to be assessed rather than assuming the "
    "surgical site is involved or is not. Explain the mechanism of the fall."
)


@dataclass(frozen=True)
class Advice:
    urgent: bool
    messages: tuple[str, ...]


def advice_for(
    red_flags: Collection[RedFlag], had_fall: bool, has_spine_surgery_history: bool
) -> Advice | None:
    messages: list[str] = []
    if red_flags:
        names = ", ".join(RED_FLAG_LABELS[flag].lower() for flag in sorted(red_flags))
        messages.append(f"You reported: {names}. {RED_FLAG_ADVICE}")
    if had_fall:
        messages.append(FALL_ADVICE)
        if has_spine_surgery_history:
            messages.append(FALL_AFTER_SURGERY_ADVICE)
    if not messages:
        return None
    return Advice(urgent=bool(red_flags), messages=tuple(messages))
