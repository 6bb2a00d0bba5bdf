"""`rehab bench log-cpu` end to end: its own PostgreSQL and Redis, both apps, alternating
rounds, the report. Speed is the benchmark's business: this asserts the figures are there,
that every log ours accepted is stored, and that the section lands beside the others."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_bench_ingest import rehab_command

pytestmark = pytest.mark.slow


def test_log_cpu_bench_reports_cpu_per_log_for_both_apps(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Another benchmark\n\nkept as it is\n")
    command = [*rehab_command(), "bench", "log-cpu", "--logs", "30", "--rounds", "2"]
    run = subprocess.run(
        [*command, "--results", str(results)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = results.read_text()
    assert "## Another benchmark\n\nkept as it is" in text
    section = text[text.index("## Log CPU (rehab bench log-cpu)") :]
    for app in ("ours", "bare Flask"):
        row = next(line for line in section.splitlines() if line.startswith(f"| {app} |"))
        web, postgres, total = (float(cell) for cell in row.split("|")[3:6])
        assert web > 0 and postgres >= 0 and total == pytest.approx(web + postgres, abs=0.011)
    assert re.search(r"bare ÷ ours, CPU per log: \d+%", section)
    assert "Checks: 60 of ours's 60 logs stored." in section


def test_log_cpu_refuses_an_empty_run() -> None:
    run = subprocess.run(
        [*rehab_command(), "bench", "log-cpu", "--rounds", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2
    assert "--rounds" in run.stderr
