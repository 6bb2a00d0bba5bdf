"""A real Celery worker process for integration tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def worker_env(
    database_url: str, broker_url: str, instance_path: Path, **extra: str
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        REHAB_MODE="testing",
        REHAB_DATABASE_URL=database_url,
        REHAB_BROKER_URL=broker_url,
        REHAB_INSTANCE_PATH=str(instance_path),
        **extra,
    )
    return env


@contextlib.contextmanager
def running_worker(
    database_url: str,
    broker_url: str,
    instance_path: Path,
    log_path: Path,
    *,
    concurrency: int = 1,
    extra_env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `celery -A worker worker`, wait until it is consuming, stop it afterwards."""
    celery = Path(sys.executable).parent / "celery"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [
            str(celery),
            "-A",
            "worker",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=worker_env(database_url, broker_url, instance_path, **(extra_env or {})),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        wait_for_log(log_path, "ready.", process)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        log_file.close()


def wait_for_log(
    log_path: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log_path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"worker not ready after {timeout}s:\n{log_path.read_text()[-3000:]}")


def wait_until(predicate, timeout: float = 30, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")
