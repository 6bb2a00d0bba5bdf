"""Where personal data must never go, captured for the tests (design §6): every URL a test
client asks for or is given (request paths, Location headers, links, form actions and
resources in pages), every task message published, and the messages waiting in a broker.

Use `RecordingClient` as the app's `test_client_class`; every client of the app then records
into `RecordingClient.recorder`. `TaskRecorder` listens to Celery's `before_task_publish`
signal in this process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape
from typing import Any

import sqlalchemy as sa
from celery.signals import before_task_publish
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

LINK = re.compile(r"""\b(?:href|src|action|formaction|content)\s*=\s*["']([^"']*)["']""", re.I)
URL_IN_TEXT = re.compile(r"""(?:https?://|/)[^\s"'<>()]+""")


@dataclass
class UrlRecorder:
    urls: list[tuple[str, str]] = field(default_factory=list)  # (where it was seen, url)

    def add(self, where: str, url: str) -> None:
        self.urls.append((where, unescape(url)))

    def response(self, request_url: str, response: TestResponse) -> None:
        self.add("request", request_url)
        location = response.headers.get("Location")
        if location:
            self.add(f"Location of {request_url}", location)
        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith("text/html"):
            for url in LINK.findall(response.get_data(as_text=True)):
                self.add(f"link in {request_url}", url)
        elif content_type.startswith("application/json"):
            for url in URL_IN_TEXT.findall(response.get_data(as_text=True)):
                if "/" in url[1:]:
                    self.add(f"URL in JSON of {request_url}", url)


class RecordingClient(FlaskClient):
    recorder = UrlRecorder()

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        request = response.request
        url = request.full_path if request.query_string else request.path
        self.recorder.response(url, response)
        return response


def urls_in_text(text: str) -> list[str]:
    return URL_IN_TEXT.findall(unescape(text))


@dataclass
class TaskRecorder:
    """Every task message published by this process: (task name, args, kwargs, headers)."""

    messages: list[tuple[str, Any, Any, dict[str, Any]]] = field(default_factory=list)

    def _on_publish(
        self, sender: str | None = None, body: Any = None, headers: Any = None, **_: Any
    ) -> None:
        args, kwargs = (body[0], body[1]) if isinstance(body, list | tuple) else (body, None)
        self.messages.append((str(sender), args, kwargs, dict(headers or {})))

    def __enter__(self) -> TaskRecorder:
        before_task_publish.connect(self._on_publish, weak=False)
        return self

    def __exit__(self, *exc: object) -> None:
        before_task_publish.disconnect(self._on_publish)


def sqlite_broker_messages(broker_url: str) -> list[str]:
    """The payloads in kombu's SQL transport table (the demo's SQLite broker)."""
    engine = sa.create_engine(broker_url.removeprefix("sqla+"))
    try:
        with engine.connect() as conn:
            return [str(p) for p in conn.scalars(sa.text("SELECT payload FROM kombu_message"))]
    finally:
        engine.dispose()
