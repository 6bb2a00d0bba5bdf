"""The clinic's calendar: "today" is the clinic's date, not the server's UTC date."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

DEFAULT_TIMEZONE = "UTC"


def clinic_timezone() -> ZoneInfo:
    name = DEFAULT_TIMEZONE
    if has_app_context():
        name = current_app.config.get("REHAB_CLINIC_TIMEZONE", DEFAULT_TIMEZONE)
    return ZoneInfo(name)


def clinic_today() -> dt.date:
    return dt.datetime.now(clinic_timezone()).date()


def clinic_time(moment: dt.datetime) -> dt.datetime:
    """`moment` on the clinic's clock (a naive time is UTC, as the database stores them)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(clinic_timezone())


def clinic_time_words(moment: dt.datetime) -> str:
    """A stored time as an e-mail says it, e.g. "2024-03-05 at 14:32 CET"."""
    return clinic_time(moment).strftime("%Y-%m-%d at %H:%M %Z")


def clinic_date(moment: dt.datetime) -> dt.date:
    """The clinic's date at `moment`."""
    return clinic_time(moment).date()


def clinic_day_start(day: dt.date) -> dt.datetime:
    """Midnight starting `day` on the clinic's clock, as a UTC time (the database's)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=clinic_timezone()).astimezone(dt.UTC)
