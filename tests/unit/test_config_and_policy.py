"""Settings load from TOML and environment with clear errors; the policy assigns risk."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from bot.wiring import build_policy, database_urls
from config import ConfigError, Settings, load_settings
from config.settings import McpSettings, WebhookSettings
from connectors.base import Action
from graph.policy import RISKS, Policy

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.toml"


def test_example_config_loads_and_documents_every_section(monkeypatch) -> None:
    monkeypatch.delenv("SOLO_CONFIG", raising=False)
    settings = load_settings(EXAMPLE)
    text = EXAMPLE.read_text()

    def check(model: type[BaseModel], prefix: str) -> None:
        for key, field in model.model_fields.items():
            inner = field.annotation
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                assert f"[{prefix}{key}" in text, f"{prefix}{key}"
                check(inner, f"{prefix}{key}.")
            elif prefix == "connectors." and key == "webhooks":
                assert "[connectors.webhooks." in text
                check(WebhookSettings, "connectors.webhooks.NAME.")
            elif prefix == "connectors." and key == "mcp":
                assert "[connectors.mcp." in text
                check(McpSettings, "connectors.mcp.NAME.")
            else:
                assert f"\n{key} =" in text or f"# {key} =" in text, f"{prefix}{key}"

    check(Settings, "")
    assert settings.connectors.webhooks["crm"].risk == "high"


def test_environment_overrides_toml(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "solo.toml"
    config.write_text('[operator]\ntimezone = "Europe/Paris"\n'
                      '[connectors.webhooks.crm]\nurl = "http://127.0.0.1:1/hook"\n')
    monkeypatch.setenv("SOLO_CONFIG", str(config))
    monkeypatch.setenv("SOLO_OPERATOR__TIMEZONE", "America/New_York")
    monkeypatch.setenv("SOLO_TELEGRAM__TOKEN", "123:abc")
    settings = load_settings()
    assert settings.operator.timezone == "America/New_York"
    assert settings.connectors.webhooks["crm"].url == "http://127.0.0.1:1/hook"
    assert settings.telegram.token.get_secret_value() == "123:abc"
    assert "123:abc" not in repr(settings)
    assert settings.configured_adapters() == ["telegram"]


@pytest.mark.parametrize(("content", "message"), [
    ('[operator]\ntimezone = "Mars/Olympus"\n', "operator.timezone"),
    ("[storage\n", "not valid TOML"),
    ("[nonsense]\nx = 1\n", "nonsense"),
    ('[connectors.webhooks.crm]\nrisk = "extreme"\nurl = "http://x"\n', "risk"),
])
def test_bad_config_names_the_key(tmp_path: Path, content: str, message: str,
                                  monkeypatch) -> None:
    monkeypatch.delenv("SOLO_CONFIG", raising=False)
    config = tmp_path / "bad.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_database_defaults_to_sqlite_files_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.model_validate({"storage": {"data_dir": tmp_path}})
    state, checkpoints = database_urls(settings)
    assert state == f"sqlite:///{tmp_path / 'solo.sqlite3'}"
    assert checkpoints == str(tmp_path / "checkpoints.sqlite3")
    pg = Settings.model_validate({"storage": {"database_url": "postgresql://u@127.0.0.1/db"}})
    assert database_urls(pg) == ("postgresql://u@127.0.0.1/db", "postgresql://u@127.0.0.1/db")


def test_policy_from_settings() -> None:
    settings = Settings.model_validate({
        "connectors": {"webhooks": {"Log": {"url": "http://x", "risk": "low"},
                                    "crm": {"url": "http://y"}}},
        "policy": {"approval_ttl_minutes": 30, "risk": {"webhook:crm": "medium"}}})
    policy = build_policy(settings)
    assert policy.approval_ttl == timedelta(minutes=30)
    assert policy.risk_for(Action("webhook.post", "webhook:log")) == "low"
    assert policy.risk_for(Action("webhook.post", "webhook:crm")) == "medium"
    assert policy.risk_for(Action("note.create", "notes")) == "low"
    assert policy.risk_for(Action("email.send", "email")) == "high"


@given(kind=st.text(max_size=20), connector=st.text(max_size=20),
       table=st.dictionaries(st.text(max_size=20), st.sampled_from(RISKS), max_size=5))
def test_policy_only_lets_low_risk_run_without_approval(kind: str, connector: str,
                                                        table: dict[str, str]) -> None:
    policy = Policy(risk=table)
    risk = policy.risk_for(Action(kind, connector))
    assert risk in RISKS
    assert policy.needs_approval(risk) == (risk != "low")
    if connector not in table and kind not in table:
        assert risk == "high"
