"""Find and read config.ini, then apply MORELIA_<SECTION>_<KEY> environment overrides."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from pydantic import ValidationError

from mod.config.validator import Settings

DEFAULT_FILE = "config.ini"
ENV_PREFIX = "MORELIA_"


class ConfigError(Exception):
    """A setting that is missing, unknown or invalid; the message is one line for the operator."""


def config_path() -> Path | None:
    """The file to read: $MORELIA_CONFIG, else ./config.ini if it exists, else none."""
    named = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"MORELIA_CONFIG: no such file: {named}")
        return path
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def _read_file(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: cannot be read: {first}") from exc
    return {
        section.lower(): {key.lower(): _unquote(value) for key, value in parser.items(section)}
        for section in parser.sections()
    }


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _apply_environment(raw: dict[str, dict[str, str]]) -> None:
    sections = set(Settings.model_fields)
    for name, value in os.environ.items():
        if not name.startswith(ENV_PREFIX) or name == f"{ENV_PREFIX}CONFIG":
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section in sections and key:
            raw.setdefault(section, {})[key] = value


def load_settings() -> Settings:
    """Read and check every setting; raise ConfigError with one clear line when one is wrong."""
    path = config_path()
    raw = _read_file(path) if path else {}
    _apply_environment(raw)
    source = str(path) if path else "environment"
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = [str(part) for part in error["loc"]]
        if len(where) >= 2:
            place = f"[{where[0].upper()}] {where[1].upper()}"
        else:
            place = f"[{where[0].upper()}]" if where else "settings"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting" if len(where) >= 2 else "unknown section"
        raise ConfigError(f"{source}: {place}: {message}") from exc
