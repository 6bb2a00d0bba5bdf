"""`rehab bench detect --quick` end to end: its own PostgreSQL and Redis, the simulated clinic
COPYed in, the raw reads, the scans (first, steady, 2 processes), the incremental evaluation
and the report. Speed is the benchmark's business, not the test's: this only asserts that the
figures are there and that the steady scan stored nothing new."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_bench_ingest import rehab_command

pytestmark = pytest.mark.slow


def test_quick_detect_bench_reports_its_figures(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Another benchmark\n\nkept as it is\n")
    figures = tmp_path / "detect.json"
    command = [*rehab_command(), "bench", "detect", "--quick", "--patients", "120"]
    command += ["--days", "90", "--incremental", "8"]
    command += ["--results", str(results), "--json", str(figures)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    report = json.loads(figures.read_text())
    assert report["patients"] == 120 and report["rows"] > 120 * 30
    assert report["copy_runs"][0]["rows"] == report["rows"]
    assert report["row_copy_runs"][0]["rows"] == report["rows"]
    assert report["select_runs"][0]["rows"] == report["rows"]
    # The 2-process read: each process half of the patients, together every log.
    assert report["select_parallel_runs"][0]["rows"] == report["rows"]
    assert report["fetchall"]["rows"] == report["rows"]
    first, steady = report["first"], report["steady_runs"][0]
    assert first["patients"] == steady["patients"] == 120
    assert first["stored"] > 0 and steady["stored"] == 0
    for figure in (report["copy_runs"][0], report["row_copy_runs"][0], report["fetchall"], first):
        assert figure["seconds"] > 0 and figure["peak_rss_mb"] > 0
    assert steady["seconds"] > 0 and steady["peak_rss_mb"] > 0
    assert set(steady["stages"]) == {"load", "domain", "reconcile", "notify", "commit"}
    assert report["parallel"]["patients"] == 120
    assert len(report["incremental"]["ms"]) == 8
    names = ("fastest_read", "ratio_first", "ratio_steady", "ratio_steady_row_copy",
             "ratio_parallel")  # fmt: skip
    for name in (*names, "incremental_median_ms", "incremental_p90_ms"):
        assert math.isfinite(report[name]) and report[name] > 0, name
    assert report["problems"] == []

    text = results.read_text()
    assert "## Another benchmark\n\nkept as it is" in text
    section = text[text.index("## Detection scan (rehab bench detect)") :]
    for row in (
        "| raw read: COPY (SELECT …) TO STDOUT (FORMAT BINARY) → numpy, one fixed-width",
        "| raw read: the same records by a plain SELECT (binary) → numpy",
        "| raw read: the same COPY with one row per log → numpy |",
        "| raw read: the same SELECT in 2 processes at once, half of the patients each",
        "| plain fetchall (psycopg tuples), for context |",
        "| full scan, first run |",
        "| **full scan, steady state** |",
        "| full scan, steady state, 2 processes |",
    ):
        assert row in section
    assert "Full scan (steady state, one process) ÷ fastest raw read" in section
    assert "Incremental evaluation after one new log: median" in section
    assert "x86_64" in section or "aarch64" in section or "cores (nproc)" in section
    # The same report is printed.
    assert "## Detection scan (rehab bench detect)" in run.stdout
