"""A real SMTP server for tests: aiosmtpd's Controller on a concrete free port (port 0 fails),
in a thread of the test process.

The handler records every accepted message, and can be told to answer the next N messages
with a reply (e.g. "451 ..."), to answer every message with one (e.g. "550 ..."), or to hold
a message until released. The server can be stopped and started again on the same port.
Optionally with STARTTLS (a throwaway self-signed certificate) and AUTH.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from rehab.devservers import free_port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    at: float  # time.monotonic() when the server accepted it

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return str(part.get_content()) if part is not None else ""

    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return str(part.get_content()) if part is not None else ""


class RecordingHandler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.data_attempts = 0  # DATA commands seen, accepted or not
        self._replies: list[str] = []
        self._always: str | None = None
        self._hold: threading.Event | None = None
        self.holding = threading.Event()  # set while a message is held

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.data_attempts += 1
            if self._replies:
                return self._replies.pop(0)
            if self._always is not None:
                return self._always
            hold = self._hold
        message = cast(
            EmailMessage,
            email.message_from_bytes(envelope.content, policy=email.policy.default),
        )
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), message, time.monotonic())
        if hold is not None:
            # The message has arrived; its sender waits for the answer (the crash window).
            with self.lock:
                self.messages.append(received)
            self.holding.set()
            while not hold.is_set():  # released by the test's thread
                await asyncio.sleep(0.05)
            return "250 OK"
        with self.lock:
            self.messages.append(received)
        return "250 OK"


class SmtpServer:
    """`url` is what `REHAB_SMTP_URL` takes."""

    def __init__(
        self,
        *,
        tls_dir: Path | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.handler = RecordingHandler()
        self.auth = auth
        self.cafile: Path | None = None
        kwargs: dict[str, Any] = {}
        if tls_dir is not None:
            cert, key = self_signed_certificate(tls_dir)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            self.cafile = cert
            kwargs.update(tls_context=context, require_starttls=True)
        if auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=tls_dir is not None)
        self.host = "localhost" if tls_dir is not None else "127.0.0.1"
        self._kwargs = kwargs
        self.controller: Controller | None = None
        self.running = False

    def _controller(self) -> Controller:
        return Controller(self.handler, hostname="127.0.0.1", port=self.port, **self._kwargs)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.auth is not None
            and auth_data.login.decode() == self.auth[0]
            and auth_data.password.decode() == self.auth[1]
        )
        return AuthResult(success=ok, handled=False)

    @property
    def url(self) -> str:
        credentials = ""
        if self.auth is not None:
            user, password = (quote(part, safe="") for part in self.auth)
            credentials = f"{user}:{password}@"
        query = f"?starttls=1&cafile={self.cafile}" if self.cafile else ""
        return f"smtp://{credentials}{self.host}:{self.port}{query}"

    def start(self) -> None:
        if not self.running:
            self.controller = self._controller()
            self.controller.start()
            self.running = True

    def stop(self) -> None:
        if self.running and self.controller is not None:
            self.controller.stop()
            self.controller.loop.close()
            self.running = False

    # --- behaviour ---

    def fail_next(self, count: int, reply: str = "451 4.3.0 Try again later") -> None:
        with self.handler.lock:
            self.handler._replies = [reply] * count

    def answer_always(self, reply: str | None) -> None:
        with self.handler.lock:
            self.handler._always = reply

    def hold(self) -> threading.Event:
        """Hold the next messages after they arrive, until the returned event is set."""
        release = threading.Event()
        with self.handler.lock:
            self.handler._hold = release
        return release

    # --- reading ---

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    @property
    def data_attempts(self) -> int:
        with self.handler.lock:
            return self.handler.data_attempts

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages
            if len(messages) >= count:
                return messages
            time.sleep(0.02)
        raise TimeoutError(f"{len(self.messages)} of {count} messages after {timeout}s")


@contextlib.contextmanager
def smtp_server(**kwargs: Any) -> Iterator[SmtpServer]:
    server = SmtpServer(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for localhost / 127.0.0.1 (openssl CLI)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
