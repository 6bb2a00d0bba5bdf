"""`rehab demo ...`: the fictional clinic (placeholder until the demo data lands)."""

from __future__ import annotations

import click


@click.group()
def demo() -> None:
    """The demo clinic: load it, run it."""
