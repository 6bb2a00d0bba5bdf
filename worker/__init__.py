"""The Celery worker: `celery -A worker worker` and `celery -A worker beat`.

The Flask app (and with it the Celery app) is created on first access of `worker.app`, not at
import, so the web process can import `worker.tasks` without building a second app.
"""

from __future__ import annotations

from typing import Any

_celery_app: Any = None


def __getattr__(name: str) -> Any:
    global _celery_app
    if name in ("app", "celery"):
        if _celery_app is None:
            from rehab import create_app

            _celery_app = create_app().extensions["celery"]
        return _celery_app
    raise AttributeError(name)
