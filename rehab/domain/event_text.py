"""Plain renderings of structured event details, shared by alerts, pages and e-mails."""

from __future__ import annotations

_LOCATION_PHRASES = {
    "stairs": "on stairs",
    "level_ground": "on level ground",
    "from_height": "from a height",
    "ice_or_wet": "on ice or a wet surface",
    "other": "",
}


def fall_mechanism(
    location: str | None,
    steps: int | None,
    height_cm: int | None,
    landed_on: str | None,
) -> str:
    """ "on stairs (10 steps, landed on buttocks)"; empty when nothing is known."""
    head = _LOCATION_PHRASES.get(location or "", "")
    details = []
    if steps:
        details.append(f"{steps} step{'s' if steps != 1 else ''}")
    if height_cm:
        details.append(f"{height_cm / 100:g} m" if height_cm >= 100 else f"{height_cm} cm")
    if landed_on:
        details.append(f"landed on {landed_on.replace('_', ' ')}")
    if details:
        return f"{head} ({', '.join(details)})".strip()
    return head
