"""Throwaway PostgreSQL and Redis servers for the tests and benchmarks.

Each call starts a private server on a free loopback port in a temporary directory and stops
it on `close()`; nothing depends on a service already running on the machine. PostgreSQL
refuses to run as root, so as root the server runs as the `postgres` user (which Debian's
package creates).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise ServerError(f"nothing listens on port {port} after {timeout:.0f}s")


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise ServerError(f"{name} not found: install PostgreSQL (apt-get install postgresql)")
    return path


@dataclass
class PostgresServer:
    port: int
    data_dir: Path
    run_as: str | None
    _stopped: bool = field(default=False)

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def close(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        subprocess.run(
            _as(
                self.run_as,
                [
                    _postgres_bin("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            ),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def _as(user: str | None, cmd: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def start_postgres(*, durable: bool = False, max_connections: int = 200) -> PostgresServer:
    """Start PostgreSQL. `durable=False` (tests) turns fsync off; benchmarks keep it on."""
    run_as = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="rehab-pg-"))
    data_dir = base / "data"
    if run_as:
        os.chmod(base, 0o755)
        entry = pwd.getpwnam(run_as)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    port = free_port()
    init = subprocess.run(
        _as(
            run_as,
            [
                _postgres_bin("initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        raise ServerError(f"initdb failed: {init.stderr.strip()[-500:]}")
    options = [
        f"-p {port}",
        "-c listen_addresses=127.0.0.1",
        f"-c unix_socket_directories={base}",
        f"-c max_connections={max_connections}",
        "-c shared_buffers=256MB",
    ]
    if not durable:
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    start = subprocess.run(
        _as(
            run_as,
            [
                _postgres_bin("pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(base / "log"),
                "-o",
                " ".join(options),
                "-w",
                "-t",
                "60",
                "start",
            ],
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if start.returncode != 0:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        raise ServerError(f"PostgreSQL did not start: {start.stderr.strip()} {log[-800:]}")
    return PostgresServer(port=port, data_dir=data_dir, run_as=run_as)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """Stop hard (SIGKILL): everything in memory is lost, as in a crash."""
        self.process.kill()
        self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        self.process = _spawn_redis(self.port, self.workdir)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _spawn_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise ServerError("redis-server not found: install it (apt-get install redis-server)")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return process


def start_redis() -> RedisServer:
    workdir = Path(tempfile.mkdtemp(prefix="rehab-redis-"))
    port = free_port()
    return RedisServer(port=port, process=_spawn_redis(port, workdir), workdir=workdir)
