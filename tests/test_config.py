"""mod.config: defaults, config.ini, MORELIA_CONFIG, environment overrides, one-line errors."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mod.config.config import ConfigError, config_path, load_settings
from mod.config.validator import Settings
from tests.support import ROOT


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MORELIA_* variable and an empty working directory: only what a test sets counts."""
    for name in list(os.environ):
        if name.startswith("MORELIA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def error_of(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


# -- defaults ---------------------------------------------------------------------------------


def test_no_file_and_no_environment_gives_the_defaults() -> None:
    assert config_path() is None
    settings = load_settings()
    assert settings == Settings()
    assert settings.database.uri == "sqlite:morelia.db"
    assert settings.broker.uri == "memory://"
    assert settings.server.host == "127.0.0.1"
    assert settings.protocol.min_version == "1.0"
    assert settings.protocol.max_version == "1.9"
    assert settings.protocol.messages_limit == 100
    assert settings.protocol.users_limit == 100
    assert settings.security.token_ttl > 0


# -- files ------------------------------------------------------------------------------------


def test_config_ini_in_the_working_directory_is_read(clean: Path) -> None:
    write(clean / "config.ini", "[SERVER]\nNAME = Wonderland\nPORT = 9000\n")
    assert config_path() == Path("config.ini")
    settings = load_settings()
    assert settings.server.name == "Wonderland"
    assert settings.server.port == 9000
    assert settings.database == Settings().database


def test_morelia_config_names_another_file(clean: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean / "config.ini", "[server]\nname = default file\n")
    other = write(clean / "elsewhere.ini", "[server]\nname = named file\n")
    monkeypatch.setenv("MORELIA_CONFIG", str(other))
    assert config_path() == other
    assert load_settings().server.name == "named file"


def test_morelia_config_naming_a_missing_file_is_an_error(
        clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORELIA_CONFIG", str(clean / "missing.ini"))
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    message = error_of(excinfo)
    assert "MORELIA_CONFIG" in message and "missing.ini" in message


def test_sections_and_keys_are_case_insensitive_and_values_unquoted(clean: Path) -> None:
    write(clean / "config.ini",
          "[Server]\nName = \"Quoted Name\"\nrate_limit = 7\n[DATABASE]\nURI = 'sqlite:x.db'\n")
    settings = load_settings()
    assert settings.server.name == "Quoted Name"
    assert settings.server.rate_limit == 7
    assert settings.database.uri == "sqlite:x.db"


def test_a_file_that_is_not_ini_is_an_error(clean: Path) -> None:
    write(clean / "config.ini", "port = 8080\n")
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    assert "config.ini" in error_of(excinfo)


# -- environment ------------------------------------------------------------------------------


def test_environment_overrides_the_file(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean / "config.ini", "[server]\nport = 9000\nname = from file\n")
    monkeypatch.setenv("MORELIA_SERVER_PORT", "9100")
    monkeypatch.setenv("MORELIA_SERVER_MAX_FRAME_SIZE", "1000")
    monkeypatch.setenv("MORELIA_PROTOCOL_MESSAGES_LIMIT", "5")
    monkeypatch.setenv("MORELIA_DATABASE_URI", "postgres://user@db.example/morelia")
    settings = load_settings()
    assert settings.server.port == 9100
    assert settings.server.name == "from file"
    assert settings.server.max_frame_size == 1000
    assert settings.protocol.messages_limit == 5
    assert settings.database.uri == "postgres://user@db.example/morelia"


def test_environment_alone_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORELIA_SECURITY_TOKEN_TTL", "1")
    assert load_settings().security.token_ttl == 1


def test_variables_outside_the_settings_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORELIA_TEST_POSTGRES_URI", "postgres://x/y")
    monkeypatch.setenv("MORELIA_", "x")
    monkeypatch.setenv("MORELIA_SERVER", "x")
    assert load_settings() == Settings()


# -- errors: one line naming section and key --------------------------------------------------


@pytest.mark.parametrize(("text", "place"), [
    ("[server]\nport = 0\n", "[SERVER] PORT"),
    ("[server]\nport = eighty\n", "[SERVER] PORT"),
    ("[server]\nrate_limit = -5\n", "[SERVER] RATE_LIMIT"),
    ("[database]\nuri = mysql://localhost/db\n", "[DATABASE] URI"),
    ("[broker]\nuri = kafka://localhost\n", "[BROKER] URI"),
    ("[protocol]\nmax_version = two\n", "[PROTOCOL] MAX_VERSION"),
    ("[logging]\nlevel = LOUD\n", "[LOGGING] LEVEL"),
    ("[media]\nthumbnail_sizes = 32x32 stretch\n", "[MEDIA] THUMBNAIL_SIZES"),
    ("[media]\nthumbnail_workers = 100\n", "[MEDIA] THUMBNAIL_WORKERS"),
    ("[media]\nthumbnail_timeout = 0\n", "[MEDIA] THUMBNAIL_TIMEOUT"),
])
def test_an_invalid_setting_names_its_section_and_key(clean: Path, text: str,
                                                      place: str) -> None:
    write(clean / "config.ini", text)
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    message = error_of(excinfo)
    assert place in message, message
    assert "config.ini" in message


def test_an_invalid_environment_value_names_its_section_and_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORELIA_PROTOCOL_USERS_LIMIT", "many")
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    message = error_of(excinfo)
    assert "[PROTOCOL] USERS_LIMIT" in message and "environment" in message


def test_an_unknown_key_is_an_error(clean: Path) -> None:
    write(clean / "config.ini", "[server]\nportt = 8080\n")
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    message = error_of(excinfo)
    assert "[SERVER] PORTT" in message and "unknown setting" in message


def test_an_unknown_key_from_the_environment_is_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORELIA_DATABASE_URL", "sqlite:typo.db")
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    assert "[DATABASE] URL" in error_of(excinfo)


def test_an_unknown_section_is_an_error(clean: Path) -> None:
    write(clean / "config.ini", "[servers]\nport = 8080\n")
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    message = error_of(excinfo)
    assert "[SERVERS]" in message and "unknown section" in message


def test_the_server_exits_with_that_one_line(clean: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MORELIA_")}
    env["MORELIA_PROTOCOL_MESSAGES_LIMIT"] = "-1"
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "server:app", "--app-dir", str(ROOT),
         "--host", "127.0.0.1", "--port", "0"],
        cwd=clean, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "[PROTOCOL] MESSAGES_LIMIT" in lines[0], output
    assert not (clean / "morelia.db").exists()


def test_example_config_documents_every_setting() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "example_config.ini", encoding="utf-8")
    documented = {(section.lower(), key) for section in parser.sections()
                  for key in parser[section]}
    defined = {(section, key) for section, model in Settings.model_fields.items()
               for key in model.annotation.model_fields}  # type: ignore[union-attr]
    assert documented == defined


def test_a_broker_scheme_without_a_broker_is_refused_at_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the schemes mod.broker serves pass (no rediss://: TLS to Redis is not offered)."""
    monkeypatch.setenv("MORELIA_BROKER_URI", "rediss://cache:6379/0")
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    assert "redis://" in error_of(excinfo)
