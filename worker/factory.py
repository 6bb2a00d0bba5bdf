"""Celery bound to the Flask app: every task runs inside an application context
(the pattern of Flask's examples/celery)."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask

from config.celery import celery_settings
from rehab.services import audit


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            # Audit rows written by the task name it (`audit.invocation`).
            label = f"task:{self.request.id or 'called directly'}"
            with app.app_context(), audit.invocation(label):
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_settings(app.config["REHAB_SETTINGS"]))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
