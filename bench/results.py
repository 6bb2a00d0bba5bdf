"""What every benchmark shares: where the figures go (`bench/RESULTS.md`, one section per
benchmark, the others kept), how the machine is described, and the command-line options
for the database, the results file and the JSON copy."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import click

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_PATH = BENCH_DIR / "RESULTS.md"


def machine_description() -> str:
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return (
        f"{platform.machine()}, {os.cpu_count()} cores (nproc), "
        f"{mem_kib / 1024 / 1024:.1f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, "a / b / c" ("unknown" off Linux)."""
    with contextlib.suppress(OSError):
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def write_section(path: Path, title: str, section: str) -> None:
    """Write or replace the `## {title}` section of a results file, keeping every other one."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    heading = f"## {title}"
    if heading in lines:
        start = lines.index(heading)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        new = [*lines[:start], *section.rstrip("\n").splitlines(), "", *lines[end:]]
    else:
        new = [*lines, "", *section.rstrip("\n").splitlines()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(new).rstrip("\n") + "\n", encoding="utf-8")


# The options the PostgreSQL benchmarks share.
database_url_option = click.option(
    "--database-url",
    help="PostgreSQL to use (postgresql+psycopg://...); default: a private durable server.",
)
results_option = click.option(
    "--results",
    "results_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Markdown file to write the section to [bench/RESULTS.md; none with --quick].",
)
json_option = click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the figures as JSON.",
)
