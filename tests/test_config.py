"""Configuration: every setting from a HUBBUB_* variable; a bad value stops
start-up with a message that names the variable and the expected form."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hubbub.cli import main
from hubbub.config import ConfigError, Settings, load_settings


def test_defaults_run_everything_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "RAY_ADDRESS", "PORT", "HOST", "DATA_DIR"):
        monkeypatch.delenv(f"HUBBUB_{name}", raising=False)
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.data_dir == Path(".hubbub")
    assert settings.database_url is settings.redis_url is settings.ray_address is None


def test_values_come_from_hubbub_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBBUB_PORT", "9001")
    monkeypatch.setenv("HUBBUB_CORS_ORIGINS", "https://a.example, https://b.example")
    settings = load_settings()
    assert settings.port == 9001
    assert settings.cors_origins == ("https://a.example", "https://b.example")


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBBUB_SMTP_URL", "")
    monkeypatch.setenv("HUBBUB_DATABASE_URL", "")
    monkeypatch.setenv("HUBBUB_PORT", "")
    settings = load_settings()
    assert settings.smtp_url is settings.database_url is None
    assert settings.port == 8000


def test_command_line_options_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBBUB_PORT", "9001")
    assert load_settings(port=9002).port == 9002


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("HUBBUB_PORT", "eighty", "HUBBUB_PORT: Input should be a valid integer"),
        ("HUBBUB_PORT", "70000", "HUBBUB_PORT: Input should be less than or equal to 65535"),
        ("HUBBUB_SHARDS", "0", "HUBBUB_SHARDS: Input should be greater than or equal to 1"),
        ("HUBBUB_LOG_LEVEL", "LOUD", "HUBBUB_LOG_LEVEL: Input should be 'DEBUG', 'INFO'"),
    ],
)
def test_an_invalid_value_names_the_variable_and_the_expected_form(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert expected in str(error.value)
    assert repr(value) in str(error.value)


def test_serve_refuses_to_start_on_an_invalid_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HUBBUB_SHARDS", "many")
    assert main(["serve"]) == 2
    assert "HUBBUB_SHARDS" in capsys.readouterr().err


def test_the_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    documented = set(re.findall(r"`(HUBBUB_[A-Z_]+)`", readme))
    assert {f"HUBBUB_{name.upper()}" for name in Settings.model_fields} <= documented


def test_an_invalid_value_is_the_only_error_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # Defaults derived from another setting (the export directory from the data
    # directory, the public URL from the port) must not add errors of their own.
    monkeypatch.setenv("HUBBUB_SHARDS", "many")
    with pytest.raises(ConfigError) as error:
        load_settings()
    lines = str(error.value).splitlines()[1:]
    assert [line.split(":")[0].strip() for line in lines] == ["HUBBUB_SHARDS"]
    assert "PydanticUndefined" not in str(error.value)


def test_the_public_url_follows_the_port_and_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBBUB_PUBLIC_URL", raising=False)
    assert load_settings(port=9002).public_url == "http://127.0.0.1:9002"
    assert load_settings(host="0.0.0.0", port=9003).public_url == "http://127.0.0.1:9003"
    assert load_settings(host="10.1.2.3").public_url == "http://10.1.2.3:8000"
    monkeypatch.setenv("HUBBUB_PUBLIC_URL", "https://chat.example")
    assert load_settings(port=9002).public_url == "https://chat.example"
