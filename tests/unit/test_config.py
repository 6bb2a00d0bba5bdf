"""Configuration: defaults in config/, REHAB_* overrides, and production refusing to start
without what it must not guess (a secret key, where e-mail goes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("REHAB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REHAB_INSTANCE_PATH", str(tmp_path / "instance"))


def test_defaults_and_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.mode == "development"
    assert settings.database_url == "sqlite:///rehab.sqlite"
    assert settings.smtp_url == ""
    monkeypatch.setenv("REHAB_DATABASE_URL", "postgresql+psycopg://rehab@db/rehab")
    monkeypatch.setenv("REHAB_BROKER_URL", "redis://broker:6379/0")
    monkeypatch.setenv("REHAB_SMTP_URL", "smtp://mail:587")
    monkeypatch.setenv("REHAB_SECRET_KEY", "k" * 40)
    settings = load_settings()
    assert settings.database_url == "postgresql+psycopg://rehab@db/rehab"
    assert settings.broker_url == "redis://broker:6379/0"
    assert settings.smtp_url == "smtp://mail:587"
    assert settings.secret_key == "k" * 40


def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REHAB_MODE", "staging")
    with pytest.raises(ConfigError, match="REHAB_MODE"):
        load_settings()


def test_production_refuses_a_missing_or_short_secret_and_a_missing_smtp_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REHAB_MODE", "production")
    monkeypatch.setenv("REHAB_SMTP_URL", "smtp://mail:587")
    with pytest.raises(ConfigError, match="REHAB_SECRET_KEY is not set"):
        load_settings()
    monkeypatch.setenv("REHAB_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="at least"):
        load_settings()
    monkeypatch.setenv("REHAB_SECRET_KEY", "k" * 40)
    assert load_settings().mode == "production"
    monkeypatch.setenv("REHAB_SMTP_URL", "")
    with pytest.raises(ConfigError, match="REHAB_SMTP_URL is not set"):
        load_settings()
    monkeypatch.setenv("REHAB_OUTBOX_IN_PRODUCTION", "true")
    assert load_settings().outbox_in_production is True


def test_the_late_limit_must_outlast_two_scan_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REHAB_SCAN_INTERVAL_SECONDS", "600")
    with pytest.raises(ConfigError, match="REHAB_PIPELINE_LATE_MINUTES"):
        load_settings()  # 15 minutes: within two 10-minute scans
    monkeypatch.setenv("REHAB_PIPELINE_LATE_MINUTES", "25")
    assert load_settings().pipeline_late_minutes == 25


def test_the_settle_period_is_from_none_to_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().pipeline_settle_minutes == 30
    monkeypatch.setenv("REHAB_PIPELINE_SETTLE_MINUTES", "1441")
    with pytest.raises(ConfigError, match="REHAB_PIPELINE_SETTLE_MINUTES"):
        load_settings()
    monkeypatch.setenv("REHAB_PIPELINE_SETTLE_MINUTES", "-1")
    with pytest.raises(ConfigError, match="REHAB_PIPELINE_SETTLE_MINUTES"):
        load_settings()
    monkeypatch.setenv("REHAB_PIPELINE_SETTLE_MINUTES", "0")
    assert load_settings().pipeline_settle_minutes == 0


def test_development_makes_its_own_secret_once(tmp_path: Path) -> None:
    first = load_settings().secret_key
    assert len(first) >= 32
    assert load_settings().secret_key == first  # kept in the instance folder


def test_the_rehab_command_says_what_is_missing_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REHAB_")}
    env.update(REHAB_MODE="production", REHAB_INSTANCE_PATH=str(tmp_path / "instance"))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "rehab"), "routes"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "REHAB_SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_counts_logins_in_the_brokers_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn's web processes must share one login count: production with a Redis broker
    keeps it there unless told otherwise; memory stays for one process or no Redis."""
    monkeypatch.setenv("REHAB_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("REHAB_SMTP_URL", "smtp://mail:587")
    monkeypatch.setenv("REHAB_BROKER_URL", "redis://broker:6379/0")
    assert load_settings().ratelimit_storage_url == "memory://"  # development
    monkeypatch.setenv("REHAB_MODE", "production")
    assert load_settings().ratelimit_storage_url == "redis://broker:6379/0"
    monkeypatch.setenv("REHAB_RATELIMIT_STORAGE_URL", "redis://limits:6379/3")
    assert load_settings().ratelimit_storage_url == "redis://limits:6379/3"
    monkeypatch.delenv("REHAB_RATELIMIT_STORAGE_URL")
    monkeypatch.setenv("REHAB_BROKER_URL", "sqla+sqlite:///broker.sqlite")
    assert load_settings().ratelimit_storage_url == "memory://"
