"""Credentials from the environment or an owner-only file; never logged, never stored.

A secrets file is a TOML file of `NAME = "value"` pairs (the same names as the environment
variables). It is refused if anyone but its owner can read it.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from engine.errors import ConfigError


class Secret(SecretStr):
    """A credential whose repr, str and format never show its value (pydantic's `SecretStr`).

    Unlike a `str`, it cannot be concatenated, encoded or serialised to JSON by accident, so it
    cannot leak into logs, tracebacks, events or the state store. Use `.reveal()` at the one
    place the value is handed to a client library.
    """

    def reveal(self) -> str:
        return self.get_secret_value()


def read_secrets_file(path: Path) -> dict[str, Secret]:
    """Read an owner-only TOML file of secrets (every value wrapped at once)."""
    path = path.expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError("secrets file not found", path=str(path)) from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"secrets file is readable by others (mode {stat.filemode(info.st_mode)}); "
            "run `chmod 600` on it",
            path=str(path),
        )
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # The message names the position only; it never echoes file content.
        where = getattr(exc, "lineno", None)
        raise ConfigError(
            f"secrets file is not valid TOML{f' (line {where})' if where else ''}", path=str(path)
        ) from None
    return {str(k): Secret(str(v)) for k, v in data.items()}


def lookup(
    name: str, *, secrets_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Secret | None:
    """The secret `name` from the environment, else from the secrets file, else None."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value:
        return Secret(value)
    if secrets_file is not None:
        secret = read_secrets_file(secrets_file).get(name)
        if secret:
            return secret
    return None
