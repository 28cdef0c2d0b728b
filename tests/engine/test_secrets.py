"""Credentials never show their value: not in repr, logs, exceptions, JSON or string building;
and a secrets file that others can read is refused."""

from __future__ import annotations

import json
import logging
import os
import traceback
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.secrets import Secret, lookup, read_secrets_file

VALUE = "s3cr3t-Zq9"


def test_repr_str_and_format_hide_the_value() -> None:
    secret = Secret(VALUE)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s %r" % (secret, secret)]  # noqa: UP031 (logging style)
    assert all(VALUE not in text for text in shown)
    assert secret.reveal() == VALUE


def test_logging_and_tracebacks_never_carry_the_value(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(VALUE)
    log = logging.getLogger("bl931.test.secrets")
    with caplog.at_level(logging.DEBUG):
        log.info("token %s (%r)", secret, secret)
        try:
            raise RuntimeError(f"login refused with {secret}")
        except RuntimeError:
            log.exception("failed")
            text = traceback.format_exc()
    assert VALUE not in caplog.text
    assert VALUE not in text


def test_a_secret_cannot_leak_through_string_building_or_json() -> None:
    """A `str` subclass would hand its value to `+`, `.encode()` and `json.dumps` silently."""
    secret = Secret(VALUE)
    with pytest.raises(TypeError):
        _ = "Bearer " + secret  # type: ignore[operator]
    with pytest.raises((TypeError, AttributeError)):
        secret.encode()  # type: ignore[attr-defined]
    try:
        dumped = json.dumps({"token": secret})
    except TypeError:
        dumped = ""
    assert VALUE not in dumped


def _secrets_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(f'GLOBUS_CLIENT_SECRET = "{VALUE}"\nNUMBER = 12\n')
    os.chmod(path, mode)
    return path


def test_values_from_an_owner_only_file_are_secrets(tmp_path: Path) -> None:
    values = read_secrets_file(_secrets_file(tmp_path, 0o600))
    assert values["GLOBUS_CLIENT_SECRET"].reveal() == VALUE
    assert values["NUMBER"].reveal() == "12"
    assert VALUE not in repr(values)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_file_others_can_read_is_refused_naming_the_file_not_the_value(
    tmp_path: Path, mode: int
) -> None:
    path = _secrets_file(tmp_path, mode)
    with pytest.raises(ConfigError) as caught:
        lookup("GLOBUS_CLIENT_SECRET", secrets_file=path, environ={})
    assert "chmod 600" in str(caught.value)
    assert str(path) in str(caught.value)
    assert VALUE not in str(caught.value)


def test_a_broken_file_is_reported_by_line_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text(f'GLOBUS_CLIENT_SECRET = "{VALUE}\n')  # unterminated string
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as caught:
        lookup("GLOBUS_CLIENT_SECRET", secrets_file=path, environ={})
    assert "not valid TOML" in str(caught.value)
    assert VALUE not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_environment_wins_over_the_file_and_empty_means_unset(tmp_path: Path) -> None:
    path = _secrets_file(tmp_path, 0o600)
    from_env = lookup(
        "GLOBUS_CLIENT_SECRET", secrets_file=path, environ={"GLOBUS_CLIENT_SECRET": "e"}
    )
    assert isinstance(from_env, Secret) and from_env.reveal() == "e"
    from_file = lookup(
        "GLOBUS_CLIENT_SECRET", secrets_file=path, environ={"GLOBUS_CLIENT_SECRET": ""}
    )
    assert isinstance(from_file, Secret) and from_file.reveal() == VALUE
    assert lookup("MISSING", secrets_file=path, environ={}) is None
