"""Adherence of one daily session: how much of the prescribed work was done (0–1)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PrescribedDose:
    prescription_id: int
    sets: int


@dataclass(frozen=True)
class DoneEntry:
    prescription_id: int
    done: bool
    sets_done: int = 0


def session_adherence(
    prescribed: Iterable[PrescribedDose], done: Mapping[int, DoneEntry]
) -> float | None:
    """Mean credit over prescribed exercises; None when nothing was prescribed.

    An exercise ticked done with no set count gets full credit (the phone form is a single
    tap); with a set count, credit is the fraction of prescribed sets, capped at 1, so doing
    extra of one exercise does not hide skipping another. Unlogged exercises count as 0.
    """
    credits: list[float] = []
    for dose in prescribed:
        entry = done.get(dose.prescription_id)
        if entry is None or (not entry.done and entry.sets_done == 0):
            credits.append(0.0)
        elif entry.sets_done == 0:
            credits.append(1.0)
        else:
            credits.append(min(1.0, entry.sets_done / dose.sets))
    if not credits:
        return None
    return round(sum(credits) / len(credits), 3)
