"""Celery configuration derived from the settings (broker, reliability, schedule)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from config.settings import Settings


def celery_settings(settings: Settings) -> dict[str, Any]:
    broker_url = settings.resolve_sqlite(settings.broker_url)
    conf: dict[str, Any] = {
        "broker_url": broker_url,
        "include": ["worker.tasks"],
        # Results are never read: tasks write their outcome to the database.
        "task_ignore_result": True,
        # Acknowledge after the task ran, so a worker killed mid-task gives the message back;
        # every task is idempotent, which makes the redelivery safe.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
        "timezone": "UTC",
        "beat_schedule": {
            "scan-patients": {
                "task": "rehab.scan_patients",
                "schedule": timedelta(seconds=settings.scan_interval_seconds),
            },
        },
    }
    if broker_url.startswith("sqla+"):
        conf["beat_schedule"]["clean-broker"] = {
            "task": "rehab.clean_broker",
            "schedule": timedelta(seconds=settings.broker_cleanup_interval_seconds),
        }
        # Poll often: the SQLite transport has no push, and red flags must go out at once.
        conf["broker_transport_options"] = {"polling_interval": 0.5}
    else:
        # Redis: a message not acknowledged within this time is delivered again.
        conf["broker_transport_options"] = {"visibility_timeout": 3600}
    return conf
