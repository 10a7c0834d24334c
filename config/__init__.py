"""Settings for Solo OS: one schema, loaded from TOML and ``SOLO_<SECTION>__<KEY>`` variables."""

from config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
