"""The app on a real port for browser tests, Debian chromium driven by Playwright, the clinic's
"today" pinned to a date, and screenshots kept where people can look at them.

`playwright install` cannot download in CI: chromium is Debian's (`.ci/system-deps`), launched
by path with the flags design §5 lists.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from rehab.services.printing import CHROMIUM_FLAGS

CHROMIUM = "/usr/bin/chromium"
# Screenshots are also copied here (gitignored) so they can be looked at after a run.
SHOT_DIR = Path(__file__).resolve().parents[2] / "test-output" / "e2e"


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve `app` on a free port in a background thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def freeze_clinic_today(monkeypatch: pytest.MonkeyPatch, day: dt.date, hour: int = 8) -> None:
    """Make the clinic's calendar say `day` (the app's every "today" comes from
    `rehab.services.time.clinic_today`, which reads the clock through its `dt` module)."""
    from rehab.services import time as clinic_time

    class _Clock(dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return dt.datetime(day.year, day.month, day.day, hour, 0, tzinfo=tz)

    shim = SimpleNamespace(datetime=_Clock, date=dt.date, timedelta=dt.timedelta, UTC=dt.UTC)
    monkeypatch.setattr(clinic_time, "dt", shim)


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_FLAGS))


def save_screenshot(page: Any, folder: Path, name: str, *, full_page: bool = True) -> Path:
    """Screenshot into the test's folder, copied to test-output/e2e/ for looking at."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    SHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOT_DIR / path.name)
    return path
