"""Printing a patient's summary: the chart as a PNG (kaleido) and the document as a PDF
(headless chromium `--print-to-pdf`, from a temporary folder holding the HTML, its stylesheet
and the chart — no network, no script, no login needed by the printing browser)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from flask import current_app, has_app_context

from rehab.charts.model import Trajectory
from rehab.charts.trajectory import trajectory_figure

# The printed chart: the last half year (or everything, if shorter), at print size.
PRINT_DAYS = 182
PRINT_WIDTH = 1100
PRINT_HEIGHT = 640
PRINT_SCALE = 1.5
PDF_TIMEOUT_SECONDS = 90
# Debian chromium in a container or CI (design §5); the browser tests launch it with these too.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# Printing to PDF: no date/URL header and footer; the charts drawn before the page is printed.
PRINT_FLAGS = ("--no-pdf-header-footer", "--run-all-compositor-stages-before-draw")


class PrintUnavailable(RuntimeError):
    """The chart image or the PDF could not be made (no chromium, or it failed)."""


def chart_png(chart: Trajectory) -> bytes:
    """The main chart of the last half year as a PNG (kaleido drives the installed chromium;
    about two seconds)."""
    import plotly.io as pio

    days = min(PRINT_DAYS, chart.days)
    fig = trajectory_figure(chart, days=days, height=PRINT_HEIGHT, static=True)
    try:
        return pio.to_image(
            fig, format="png", width=PRINT_WIDTH, height=PRINT_HEIGHT, scale=PRINT_SCALE
        )
    except Exception as exc:  # kaleido raises its own types; any failure means "no image"
        raise PrintUnavailable(f"chart image failed: {type(exc).__name__}") from exc


def chromium_path() -> str:
    configured = current_app.config["REHAB_SETTINGS"].chromium_path if has_app_context() else ""
    if configured:
        return str(configured)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    raise PrintUnavailable("no chromium found (install chromium or set REHAB_CHROMIUM_PATH)")


def print_pdf(html: str, files: dict[str, bytes]) -> bytes:
    """Print an HTML document (with the files it refers to, by relative name) to PDF."""
    chromium = chromium_path()
    with tempfile.TemporaryDirectory(prefix="rehab-print-") as tmp:
        folder = Path(tmp)
        for name, content in files.items():
            (folder / name).write_bytes(content)
        document = folder / "summary.html"
        document.write_text(html, encoding="utf-8")
        target = folder / "summary.pdf"
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            *PRINT_FLAGS,
            f"--user-data-dir={folder / 'profile'}",
            f"--print-to-pdf={target}",
            document.as_uri(),
        ]
        try:
            subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=PDF_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PrintUnavailable(f"chromium failed: {type(exc).__name__}") from exc
        pdf = target.read_bytes() if target.exists() else b""
    if not pdf.startswith(b"%PDF"):
        raise PrintUnavailable("chromium produced no PDF")
    return pdf
