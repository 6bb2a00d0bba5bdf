"""Pages of a list: the one rule of every paged view (the caseload, the alert inbox, the
audit log)."""

from __future__ import annotations

import math


def page_bounds(total: int, requested: int, per_page: int) -> tuple[int, int]:
    """(the page shown, how many pages) for `total` items: at least one page, an empty one
    included; a page number out of range shows the nearest page."""
    if per_page < 1:
        raise ValueError("per_page must be positive")
    pages = max(1, math.ceil(total / per_page))
    return min(max(1, requested), pages), pages
