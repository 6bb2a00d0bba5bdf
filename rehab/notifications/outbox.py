"""Reading the file transport's outbox (`<instance>/outbox/*.eml`) for the admin page."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import cast

from rehab.notifications.render import NOTIFICATION_HEADER

NAME = re.compile(r"^\d{8}T\d{12}Z-[a-z0-9_-]{1,40}\.eml$")
_ID = re.compile(r"[0-9]{1,9}")  # a row id (PostgreSQL integer)


@dataclass(frozen=True)
class OutboxEntry:
    name: str
    subject: str
    to: str
    date: str
    size: int
    # The notification rows this message delivered (its `NOTIFICATION_HEADER`); a hand-edited
    # file's other text is ignored.
    notification_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class OutboxMessage:
    entry: OutboxEntry
    headers: list[tuple[str, str]]
    text: str
    html: str | None
    images: dict[str, str] = field(default_factory=dict)  # Content-ID -> data: URI

    @property
    def notification_ids(self) -> tuple[int, ...]:
        return self.entry.notification_ids

    def html_with_images(self) -> str | None:
        """The HTML part with `cid:` references replaced by the inline images' data."""
        if self.html is None:
            return None
        html = self.html
        for cid, uri in self.images.items():
            html = html.replace(f"cid:{cid}", uri)
        return html


def _entry(path: Path, message: EmailMessage) -> OutboxEntry:
    return OutboxEntry(
        name=path.name,
        subject=str(message.get("Subject", "")),
        to=str(message.get("To", "")),
        date=str(message.get("Date", "")),
        size=path.stat().st_size,
        notification_ids=_notification_ids(str(message.get(NOTIFICATION_HEADER, ""))),
    )


def _notification_ids(listed: str) -> tuple[int, ...]:
    return tuple(
        int(part) for part in (p.strip() for p in listed.split(",")) if _ID.fullmatch(part)
    )


def list_outbox(directory: Path, limit: int = 200) -> list[OutboxEntry]:
    """The newest messages first (file names start with the UTC time of writing)."""
    if not directory.is_dir():
        return []
    names = sorted((p.name for p in directory.iterdir() if NAME.match(p.name)), reverse=True)
    parser = BytesHeaderParser(policy=policy.default)
    entries = []
    for name in names[:limit]:
        path = directory / name
        with path.open("rb") as handle:
            headers = cast(EmailMessage, parser.parse(handle))
        entries.append(_entry(path, headers))
    return entries


def read_outbox(directory: Path, name: str) -> OutboxMessage | None:
    """One message, or None if the name is not an outbox file (no paths, no other files)."""
    if not NAME.match(name):
        return None
    path = directory / name
    if not path.is_file():
        return None
    message = cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(path.read_bytes()))
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    images = {}
    for part in message.walk():
        cid = part.get("Content-ID")
        if cid and part.get_content_maintype() == "image":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                encoded = base64.b64encode(data).decode("ascii")
                images[cid.strip("<>")] = f"data:{part.get_content_type()};base64,{encoded}"
    keep = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe",
            NOTIFICATION_HEADER)  # fmt: skip
    return OutboxMessage(
        entry=_entry(path, message),
        headers=[(k, str(message[k])) for k in keep if message[k] is not None],
        text=str(text_part.get_content()) if text_part is not None else "",
        html=str(html_part.get_content()) if html_part is not None else None,
        images=images,
    )
