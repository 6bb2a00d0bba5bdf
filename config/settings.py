"""Settings loader: `defaults.toml` beside this file, then `REHAB_*` environment variables.

pydantic-settings does the parsing and type checking, so a wrong value (say
REHAB_MAX_BODY_BYTES=lots) stops start-up with the variable named.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = CONFIG_DIR.parent

# Secret keys shorter than this are rejected in production.
MIN_SECRET_LENGTH = 32


class ConfigError(RuntimeError):
    """Start-up configuration is unusable; the message says which setting and why."""


# The clinic's policy: the settings an administrator may change in the app (/admin/settings,
# rehab.services.clinic_policy); the environment gives their defaults. One set of bounds for
# both: a default outside them stops start-up, a change outside them is refused.
MissedLogsDays = Annotated[int, Field(ge=2, le=60)]
OutcomeIntervalDays = Annotated[int, Field(ge=7, le=365)]
DigestHour = Annotated[int, Field(ge=0, le=23)]
ReminderAfterDays = Annotated[int, Field(ge=1, le=30)]
ReminderHour = Annotated[int, Field(ge=0, le=23)]
UrgentFollowUpMinutes = Annotated[int, Field(ge=15, le=24 * 60)]


class ClinicPolicy(BaseModel):
    """The policy settings' values in effect: defaults from the environment, overridden by
    what an administrator set. Field order is the order of the admin's page."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    missed_logs_days: MissedLogsDays
    urgent_follow_up_minutes: UrgentFollowUpMinutes
    outcome_interval_days: OutcomeIntervalDays
    digest_hour: DigestHour
    reminder_after_days: ReminderAfterDays
    reminder_hour: ReminderHour

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REHAB_", toml_file=CONFIG_DIR / "defaults.toml", extra="ignore"
    )

    mode: Literal["development", "production", "testing"]
    instance_path: Path
    database_url: str
    broker_url: str
    smtp_url: str
    outbox_in_production: bool
    mail_from: str
    public_url: str
    secret_key: str
    clinic_timezone: str
    max_body_bytes: int
    login_rate_limit: str
    ratelimit_storage_url: str
    totp_required: bool
    chromium_path: str
    session_idle_minutes: int
    session_absolute_minutes: int
    missed_logs_days: MissedLogsDays
    outcome_interval_days: OutcomeIntervalDays
    scan_interval_seconds: int
    evaluation_batch_ms: int = Field(ge=0, le=5000)
    broker_cleanup_interval_seconds: int
    invite_valid_hours: int
    password_reset_valid_minutes: int = Field(ge=5, le=24 * 60)
    password_reset_every_minutes: int = Field(ge=1, le=24 * 60)
    # E-mail notifications (rehab.services.notifications).
    smtp_timeout_seconds: float
    digest_hour: DigestHour
    reminder_after_days: ReminderAfterDays
    reminder_hour: ReminderHour
    notify_max_attempts: int = Field(ge=1)
    notify_backoff_seconds: float = Field(gt=0)
    notify_backoff_max_seconds: float = Field(gt=0)
    notify_resend_interval_seconds: float = Field(gt=0)
    notify_claim_timeout_seconds: float = Field(gt=0)
    # An urgent alert unacknowledged this long is followed up (notifications.queue_follow_ups).
    urgent_follow_up_minutes: UrgentFollowUpMinutes
    # The system status (rehab.services.health).
    pipeline_late_minutes: int = Field(ge=1)
    # The administrators' "alerts may be late" incident closes only after alerts have been on
    # time this long (rehab.services.pipeline_watch); at most a day, the reminders' interval.
    pipeline_settle_minutes: int = Field(ge=0, le=24 * 60)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: explicit arguments, environment, then the TOML defaults.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def clinic_policy(self) -> ClinicPolicy:
        """The policy's defaults, as configured (before any administrator's change)."""
        return ClinicPolicy(**{name: getattr(self, name) for name in ClinicPolicy.names()})

    def resolved_instance_path(self) -> Path:
        path = self.instance_path
        return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()

    def resolve_sqlite(self, url: str) -> str:
        """Put relative SQLite files (database and broker) inside the instance folder."""
        for prefix in ("sqla+sqlite:///", "sqlite+pysqlite:///", "sqlite:///"):
            if url.startswith(prefix):
                rest = url[len(prefix) :]
                if rest and not rest.startswith("/") and not rest.startswith(":memory:"):
                    return prefix + str(self.resolved_instance_path() / rest)
        return url


def _development_secret(settings: Settings) -> str:
    """Development: one random key kept in the instance folder, so the web server, the
    worker and beat (separate processes) sign and verify the same tokens. Tests: random."""
    if settings.mode == "testing":
        return secrets.token_hex(32)
    key_file = settings.resolved_instance_path() / "secret_key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, failing with a `ConfigError` that names the bad variable."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"REHAB_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    if not settings.secret_key:
        if settings.mode == "production":
            raise ConfigError(
                "REHAB_SECRET_KEY is not set. Production mode refuses to start without a secret"
                " key; generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        settings.secret_key = _development_secret(settings)
    elif settings.mode == "production" and len(settings.secret_key) < MIN_SECRET_LENGTH:
        raise ConfigError(f"REHAB_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters")
    if (
        settings.mode == "production"
        and settings.ratelimit_storage_url == "memory://"
        and settings.broker_url.startswith(("redis://", "rediss://"))
    ):
        # gunicorn runs several web processes: in memory each would count logins (and
        # account changes) on its own. The broker's Redis holds one count for them all.
        settings.ratelimit_storage_url = settings.broker_url
    if settings.pipeline_late_minutes * 60 <= 2 * settings.scan_interval_seconds:
        # A log counts as not evaluated until the next scan sees it evaluated: a limit within
        # two scan intervals would tell clinicians "alerts may be late" most of the time.
        raise ConfigError(
            f"REHAB_PIPELINE_LATE_MINUTES ({settings.pipeline_late_minutes}) must be longer"
            f" than two scan intervals (REHAB_SCAN_INTERVAL_SECONDS ="
            f" {settings.scan_interval_seconds})"
        )
    if (
        settings.mode == "production"
        and not settings.smtp_url
        and not settings.outbox_in_production
    ):
        # Urgent alerts would be written to files nobody reads: never silently.
        raise ConfigError(
            "REHAB_SMTP_URL is not set. Production mode refuses to start without it: alert"
            " e-mails would be written to <instance>/outbox/ and never sent. Set it (e.g."
            " smtp://user:password@mail.example.org:587), or set"
            " REHAB_OUTBOX_IN_PRODUCTION=true to accept the file outbox (admin page only)."
        )
    return settings
