"""Celery configuration derived from the settings (broker, reliability, schedule)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from config.settings import Settings

# How often the follow-up of unacknowledged urgent alerts runs: its lateness at most.
FOLLOW_UP_INTERVAL_SECONDS = 300


def celery_settings(settings: Settings) -> dict[str, Any]:
    broker_url = settings.resolve_sqlite(settings.broker_url)
    conf: dict[str, Any] = {
        "broker_url": broker_url,
        "include": ["worker.tasks", "worker.mail_tasks"],
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
        # A web request publishes after its commit; with the broker down it must not hang on
        # retries (measured: 0.6 s a log with the defaults). One quick retry, then give up:
        # the data is committed and the periodic scan evaluates it.
        "task_publish_retry_policy": {
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.1,
            "interval_max": 0.1,
        },
        "timezone": "UTC",
        "beat_schedule": {
            "scan-patients": {
                "task": "rehab.scan_patients",
                "schedule": timedelta(seconds=settings.scan_interval_seconds),
            },
            # The outbox re-sender: what is due and unsent, digests, rows of a lost worker.
            "resend-notifications": {
                "task": "rehab.resend_notifications",
                "schedule": timedelta(seconds=settings.notify_resend_interval_seconds),
            },
            # Urgent alerts unacknowledged past `urgent_follow_up_minutes`.
            "follow-up-alerts": {
                "task": "rehab.follow_up_alerts",
                "schedule": timedelta(seconds=FOLLOW_UP_INTERVAL_SECONDS),
            },
            # Hourly; the task queues once a day from `reminder_hour` (clinic time) on.
            "queue-reminders": {
                "task": "rehab.queue_reminders",
                "schedule": timedelta(hours=1),
            },
        },
    }
    if broker_url.startswith("sqla+"):
        conf["beat_schedule"]["clean-broker"] = {
            "task": "rehab.clean_broker",
            "schedule": timedelta(seconds=settings.broker_cleanup_interval_seconds),
        }
        # The SQLite transport polls (kombu's default: every second). kombu hands every
        # transport option to create_engine() here, so none can be set.
    else:
        # Redis: a message not acknowledged within this time is delivered again.
        # A broker that does not answer fails fast instead of holding a request.
        conf["broker_transport_options"] = {"visibility_timeout": 3600, "socket_connect_timeout": 2}
    return conf
