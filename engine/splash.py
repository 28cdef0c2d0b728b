"""Globus endpoints defined once, in splash_flows' `config.yml`.

The ALS flows keep their Globus collections in one YAML file (als-computing/splash_flows,
`config.yml`):

    globus:
      globus_endpoints:
        bl931-nersc_alsdev_raw:
          root_path: /global/cfs/cdirs/als/data_mover/9.3.1/raw
          uri: nersc.gov
          uuid: d40248e6-d874-4f7b-badd-2c06c16f1a58
          name: bl931-nersc_alsdev_raw

A bl931 endpoint may name one of them instead of repeating its ids:

    [splash]
    config = "/opt/splash_flows/config.yml"   # relative: to the bl931 config's folder
    [endpoints.cfs]
    from_splash = "bl931-nersc_alsdev_raw"    # kind = "globus", collection = uuid, root = root_path

`expand(data, source)` fills `kind`, `collection` and `root` in before validation (a key also
written in the table must agree with the YAML, or it is an error naming both), and
`endpoint_tables` prints TOML tables for `bl931tui --import-splash`. Every error names the file
and the key.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# bl931's endpoint key → the splash_flows key it comes from (`kind` has none).
_YAML_KEY = {"collection": "uuid", "root": "root_path"}


def read_splash(path: Path) -> dict[str, dict[str, str]]:
    """The `globus.globus_endpoints` of a splash_flows config: name → {uuid, root_path, …}."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError("file not found (the splash_flows config.yml)", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "splash_flows' config.yml is UTF-8 YAML",
            path=str(path),
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"is not valid YAML: {exc}", path=str(path)) from None
    endpoints = (data or {}).get("globus", {}) if isinstance(data, dict) else None
    endpoints = endpoints.get("globus_endpoints") if isinstance(endpoints, dict) else None
    if not isinstance(endpoints, dict):
        raise ConfigError(
            "has no `globus.globus_endpoints` mapping (is it splash_flows' config.yml?)",
            path=str(path),
        )
    out: dict[str, dict[str, str]] = {}
    for name, entry in endpoints.items():
        key = f"globus.globus_endpoints.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{key}: should be a mapping with uuid and root_path", path=str(path))
        for field in ("uuid", "root_path"):
            value = entry.get(field)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{key}.{field}: missing or not text", path=str(path))
        if not _is_uuid(entry["uuid"]):
            raise ConfigError(
                f"{key}.uuid: {entry['uuid']!r} is not a UUID (a Globus collection id looks "
                "like d40248e6-d874-4f7b-badd-2c06c16f1a58)",
                path=str(path),
            )
        out[str(name)] = {k: str(v) for k, v in entry.items() if v is not None}
    return out


def _is_uuid(text: str) -> bool:
    """A Globus collection id: the 8-4-4-4-12 hexadecimal form (any case, no braces or URN)."""
    stripped = text.strip()
    try:
        return str(uuid.UUID(stripped)) == stripped.lower()
    except ValueError:
        return False


def _root(root_path: str) -> str:
    """splash_flows writes some roots with a trailing slash (`/beamline_staging/bl931/raw/`)."""
    stripped = root_path.strip()
    return stripped.rstrip("/") or "/"


def expand(data: dict[str, Any], source: Path | None) -> dict[str, Any]:
    """`data` (a parsed bl931 config) with every `from_splash` endpoint filled in from the YAML.

    Raises:
        ConfigError: no `[splash] config`, the YAML is unusable, the name is not in it, or a
            key written beside `from_splash` disagrees with the YAML.
    """
    endpoints = data.get("endpoints")
    if not isinstance(endpoints, dict):
        return data
    wanted = {n: e for n, e in endpoints.items() if isinstance(e, dict) and "from_splash" in e}
    if not wanted:
        return data
    where = str(source) if source is not None else "<config>"
    splash = data.get("splash") if isinstance(data.get("splash"), dict) else {}
    configured = splash.get("config") if splash else None
    if not isinstance(configured, str) or not configured:
        first = next(iter(wanted))
        raise ConfigError(
            f'endpoints.{first}.from_splash: needs [splash] config = "PATH/config.yml" '
            "(splash_flows' file of Globus endpoints)",
            path=where,
        )
    yml = Path(configured).expanduser()
    if not yml.is_absolute() and source is not None:
        yml = source.parent / yml
    if not yml.exists():
        users = ", ".join(f"endpoints.{n}.from_splash" for n in wanted)
        raise ConfigError(
            f"splash.config: {yml}: file not found (splash_flows' config.yml, the Globus "
            f"endpoints named by {users}; a relative path is taken from this file's folder)",
            path=where,
        )
    known = read_splash(yml)
    filled = dict(endpoints)
    for name, table in wanted.items():
        key = f"endpoints.{name}.from_splash"
        ref = table["from_splash"]
        if not isinstance(ref, str) or ref not in known:
            close = ", ".join(sorted(known)[:8])
            raise ConfigError(
                f"{key}: {ref!r} is not an endpoint of {yml} (globus.globus_endpoints has: "
                f"{close}{', …' if len(known) > 8 else ''})",
                path=where,
            )
        entry = known[ref]
        collection = entry["uuid"].strip().lower()
        derived = {"kind": "globus", "collection": collection, "root": _root(entry["root_path"])}
        merged = {k: v for k, v in table.items() if k != "from_splash"}
        for field, value in derived.items():
            written = merged.get(field)
            if written is None or _agrees(field, written, value):
                merged[field] = value
                continue
            if field == "kind":
                raise ConfigError(
                    f"endpoints.{name}.kind: {written!r}, but a `from_splash` endpoint is a "
                    'Globus collection (kind = "globus"); drop `kind` or `from_splash`',
                    path=where,
                )
            raise ConfigError(
                f"endpoints.{name}.{field}: {written!r} disagrees with {yml} "
                f"globus.globus_endpoints.{ref}.{_YAML_KEY[field]} ({value!r}); drop one of them",
                path=where,
            )
        filled[name] = merged
    return {**data, "endpoints": filled}


def _agrees(field: str, written: object, value: str) -> bool:
    """A key written beside `from_splash` says the same as the YAML (a root's trailing slash and
    a collection id's case make no difference)."""
    if field == "root":
        return _root(str(written)) == value
    if field == "collection":
        return str(written).strip().lower() == value
    return written == value


def endpoint_tables(endpoints: dict[str, dict[str, str]], path: Path) -> str:
    """TOML `[endpoints.NAME]` tables for every endpoint of a splash_flows config."""
    lines = [f"# Globus endpoints imported from {path} (splash_flows config.yml)."]
    lines.append("# Keep the ones this beamline uses; rename the tables (dtn, cfs, hpss …) freely.")
    for name, entry in endpoints.items():
        table = name if _BARE_KEY.fullmatch(name) else json.dumps(name)
        lines += [
            "",
            f"[endpoints.{table}]",
            'kind = "globus"',
            f"collection = {json.dumps(entry['uuid'].strip().lower())}",
            f"root = {json.dumps(_root(entry['root_path']))}",
        ]
        if entry.get("uri"):
            lines.append(f"# host: {entry['uri']}")
    return "\n".join(lines) + "\n"
