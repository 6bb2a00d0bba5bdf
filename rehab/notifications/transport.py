"""Sending a rendered message: over SMTP (`REHAB_SMTP_URL`), or into `<instance>/outbox/` as
`.eml` files when no SMTP server is configured (the demo default).

Failures are classified for the retry policy: `TransientError` (connection refused or lost,
timeouts, 4xx replies, authentication and TLS set-up problems an operator can fix) is retried
with backoff; `PermanentError` (a 5xx reply to the sender, a recipient or the data) is not.
The error text is the SMTP reply code and text with e-mail addresses removed: it is stored on
the notification and shown to admins, never message content.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

MAX_ERROR_LENGTH = 300
_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?")


class DeliveryError(Exception):
    """The message was not accepted; `reason` is safe to store and show (no addresses)."""

    permanent = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:MAX_ERROR_LENGTH]


class TransientError(DeliveryError):
    """Worth trying again later: the server or the network may recover."""


class PermanentError(DeliveryError):
    """The server refused for good (5xx): trying again would give the same answer."""

    permanent = True


class Transport(Protocol):
    def send(self, message: EmailMessage, name: str) -> None:
        """Deliver `message`; `name` labels it (the outbox file name), e.g. "n42"."""


def redact(text: str) -> str:
    return _ADDRESS.sub("<address>", text)


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return redact(f"{code} {' '.join(text.split())}".strip())


def classify(exc: BaseException) -> DeliveryError:
    """The `DeliveryError` an exception raised while sending stands for."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.values())
        text = "; ".join(_reply(code, msg) for code, msg in replies) or "recipients refused"
        if replies and all(500 <= code < 600 for code, _ in replies):
            return PermanentError(text)
        return TransientError(text)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # Wrong credentials are the operator's to fix; every message would fail the same way,
        # so they are retried (and logged) rather than marked failed one by one.
        return TransientError("authentication failed: " + _reply(exc.smtp_code, exc.smtp_error))
    if isinstance(exc, smtplib.SMTPResponseException):
        text = _reply(exc.smtp_code, exc.smtp_error)
        if 500 <= exc.smtp_code < 600:
            return PermanentError(text)
        return TransientError(text)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return TransientError(f"server does not support a required extension ({exc})")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransientError("server disconnected")
    if isinstance(exc, ssl.SSLError):
        return TransientError(f"TLS error ({type(exc).__name__}: {exc.reason or 'unknown'})")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TransientError("timed out")
    if isinstance(exc, ConnectionRefusedError):
        return TransientError("connection refused")
    if isinstance(exc, OSError):
        return TransientError(f"connection error ({type(exc).__name__})")
    if isinstance(exc, smtplib.SMTPException):
        return TransientError(f"SMTP error ({type(exc).__name__})")
    raise exc


# --- SMTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    tls: bool  # TLS from the first byte (smtps://)
    starttls: bool
    username: str | None
    password: str | None
    cafile: str | None
    timeout: float

    @classmethod
    def from_url(cls, url: str, timeout: float = 20.0) -> SmtpConfig:
        """`smtp://user:pass@host:port?starttls=1&cafile=/ca.pem`, `smtps://host:465`.

        STARTTLS is on for port 587 unless `starttls=0`; user and password are URL-decoded.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("REHAB_SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("REHAB_SMTP_URL has no host")
        tls = parts.scheme == "smtps"
        port = parts.port or (465 if tls else 25)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        flag = query.get("starttls")
        starttls = (flag in ("1", "true", "yes")) if flag is not None else port == 587
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            starttls=starttls and not tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            cafile=query.get("cafile") or None,
            timeout=float(query.get("timeout", timeout)),
        )

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)


class SmtpTransport:
    """One connection per message (stdlib smtplib): simple, and a broken connection never
    outlives the message it failed."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def send(self, message: EmailMessage, name: str) -> None:
        config = self.config
        try:
            smtp: smtplib.SMTP
            if config.tls:
                smtp = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=config.timeout, context=config.ssl_context()
                )
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        except Exception as exc:
            raise classify(exc) from None
        try:
            if config.starttls:
                smtp.starttls(context=config.ssl_context())
            if config.username is not None:
                smtp.login(config.username, config.password or "")
            refused = smtp.send_message(message)
        except Exception as exc:
            smtp.close()
            raise classify(exc) from None
        # The message is accepted: a failing QUIT must not make it look unsent (a resend
        # would duplicate it).
        with contextlib.suppress(Exception):
            smtp.quit()
        if refused:  # some recipients refused (we send to one, so this is rare)
            raise classify(smtplib.SMTPRecipientsRefused(refused))


# --- file ---------------------------------------------------------------------------------


class FileTransport:
    """Writes `<directory>/<UTC timestamp>-<name>.eml` atomically (temp file, then rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, message: EmailMessage, name: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.directory / f"{stamp}-{name}.eml"
        temp = self.directory / f".{target.name}.tmp"
        temp.write_bytes(message.as_bytes())
        os.replace(temp, target)


def transport_for(smtp_url: str, outbox_dir: Path, timeout: float = 20.0) -> Transport:
    if smtp_url:
        return SmtpTransport(SmtpConfig.from_url(smtp_url, timeout))
    return FileTransport(outbox_dir)
