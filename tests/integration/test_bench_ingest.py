"""`rehab bench ingest --quick` end to end: its own PostgreSQL and Redis, gunicorn for both HTTP
targets, the load generator, the checks and the report. Speed is the benchmark's business, not
the test's: this only asserts that the three figures are there and that nothing was lost."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def rehab_command() -> list[str]:
    script = Path(sys.executable).with_name("rehab")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from rehab.cli import main; main()"]


def test_quick_ingest_bench_reports_three_figures_and_loses_nothing(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Another benchmark\n\nkept as it is\n")
    figures = tmp_path / "ingest.json"
    command = [*rehab_command(), "bench", "ingest", "--quick"]
    command += ["--results", str(results), "--json", str(figures)]
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    report = json.loads(figures.read_text())
    for target in ("ours", "bare", "raw"):
        figure = report[target]
        assert figure["ok_total"] > 0, target
        for name in ("rate", "p50_ms", "p99_ms"):
            assert figure[name] > 0 and math.isfinite(figure[name]), (target, name)
        assert figure["errors"] == 0, (target, figure["details"])
        # Every acknowledged request is stored, and nothing else is.
        assert figure["stored"] == figure["ok_total"], target
    assert report["lost"] == 0
    assert report["duplicates"] == 0
    assert report["problems"] == []
    assert math.isfinite(report["ratio_bare"]) and math.isfinite(report["ratio_raw"])

    text = results.read_text()
    assert "## Another benchmark\n\nkept as it is" in text
    section = text[text.index("## Ingest (rehab bench ingest)") :]
    for row in ("| ours |", "| bare Flask |", "| raw psycopg |"):
        assert row in section
    assert "ours / bare Flask" in section and "ours / raw psycopg" in section
    assert "rows stored =" in section
    # The same report is printed.
    assert "## Ingest (rehab bench ingest)" in run.stdout
