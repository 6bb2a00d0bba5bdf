"""Configuration: defaults in `defaults.toml`, overridden by `REHAB_*` environment variables."""

from config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
