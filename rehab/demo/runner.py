"""`rehab demo run`: the web server, a Celery worker and Celery beat under one Procfile-style
runner (honcho's Python API), on the embedded SQLite database and broker.

The three are started from the running interpreter's scripts directory (the venv's `bin/`), each
in its own session; Ctrl-C (SIGINT) or SIGTERM stops all three, and if one of them dies the
others are stopped too.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

from honcho.manager import Manager
from honcho.printer import Printer

# honcho's return code when it was stopped by SIGINT / SIGTERM: a requested, clean stop.
_STOPPED_BY_SIGNAL = {128 + signal.SIGINT, 128 + signal.SIGTERM}


def scripts_dir() -> Path:
    # Not resolved: the venv's python is a symlink to the system one, the scripts are beside it.
    return Path(sys.executable).parent


def process_commands(host: str, port: int, instance_path: Path) -> dict[str, list[str]]:
    bin_dir = scripts_dir()
    celery = str(bin_dir / "celery")
    return {
        "web": [str(bin_dir / "rehab"), "run", "--host", host, "--port", str(port), "--no-reload"],
        # The SQLite transport has no broadcast: gossip, mingle and heartbeats would only fail.
        "worker": [
            celery, "-A", "worker", "worker", "--loglevel", "INFO", "--pool", "solo",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--hostname", "demo@%h",
        ],
        "beat": [
            celery, "-A", "worker", "beat", "--loglevel", "INFO",
            "--schedule", str(instance_path / "celerybeat-schedule"),
        ],
    }  # fmt: skip


def child_environment(instance_path: Path, public_url: str) -> dict[str, str]:
    env = dict(os.environ)
    # The same instance folder (database, broker, secret key) for all three processes,
    # whatever their working directory.
    env["REHAB_INSTANCE_PATH"] = str(instance_path)
    env.setdefault("REHAB_PUBLIC_URL", public_url)
    env["PYTHONUNBUFFERED"] = "1"
    # Two-factor sign-in would make the demo logins unusable without an authenticator app;
    # production keeps it on (config/defaults.toml).
    env.setdefault("REHAB_TOTP_REQUIRED", "false")
    return env


def run_processes(commands: dict[str, list[str]], env: dict[str, str]) -> int:
    """Run the processes until Ctrl-C or until one of them stops; the exit status to use."""
    manager = Manager(Printer(sys.stdout))
    for name, argv in commands.items():
        manager.add_process(name, shlex.join(argv), env=env)
    manager.loop()
    code = manager.returncode or 0
    return 0 if code in _STOPPED_BY_SIGNAL else code
