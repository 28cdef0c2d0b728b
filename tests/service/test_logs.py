"""Logs for journald: one JSON object per line, identifiers as fields, and never a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fakes.scicat_api import FakeScicat
from tests.fakes.transfer_api import FakeTransferAPI

GLOBUS_SECRET = "gl0bus-Cl13nt-S3cret-7f3a9c"
SCICAT_PASSWORD = "sc1cat-P4ssw0rd-b81e22"


def _config(tmp_path: Path, dtn: str, cfs: str, raw: Path) -> Path:
    path = tmp_path / "bl931.toml"
    path.write_text(
        f"""
[state]
path = "{tmp_path / "state.sqlite"}"
[inventory]
quiet_seconds = 0
[endpoints.dtn]
kind = "globus"
collection = "{dtn}"
root = "/raw"
path = "{raw}"
[endpoints.cfs]
kind = "globus"
collection = "{cfs}"
root = "/raw"
[[copy]]
from = "dtn"
to = "cfs"
[catalog]
kind = "scicat"
path = "{tmp_path / "catalog.json"}"
principal_investigator = "Jane Doe"
""",
        "utf-8",
    )
    return path


def _run(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bl931tui", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


def _records(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_json_logs_carry_ids_and_never_secrets(tmp_path: Path) -> None:
    raw = tmp_path / "dtn" / "raw"
    (raw / "2026").mkdir(parents=True)
    (tmp_path / "cfs" / "raw").mkdir(parents=True)
    for i in range(3):
        (raw / f"2026/s{i}.h5").write_bytes(os.urandom(64))
        os.utime(raw / f"2026/s{i}.h5", (1.7e9, 1.7e9))
    with (
        FakeTransferAPI(client_secret=GLOBUS_SECRET) as globus,
        FakeScicat(users={"ingestor": SCICAT_PASSWORD}) as scicat,
    ):
        dtn = globus.add_collection(tmp_path / "dtn")
        cfs = globus.add_collection(tmp_path / "cfs")
        config = _config(tmp_path, dtn, cfs, raw)
        env = {
            **globus.environ,
            "SCICAT_URL": scicat.base_url,
            "SCICAT_USERNAME": "ingestor",
            "SCICAT_PASSWORD": SCICAT_PASSWORD,
        }
        stderr = ""
        # Submit, then verify and register; then faults: a failing listing, an expired SciCat
        # session, a refused catalog call. Each pass at DEBUG, where client libraries say most.
        for _ in range(2):
            done = _run(config, env, "--reconcile", "--once", "--log-format", "json", "-v")
            assert done.returncode == 0, done.stderr
            stderr += done.stderr
        globus.fail_next("ls", n=50, status=500)
        scicat.expire_tokens()
        scicat.fail_next(20, status=500)
        faulty = _run(config, env, "--reconcile", "--once", "--log-format", "json", "-v")
        stderr += faulty.stderr
        assert faulty.returncode == 1, faulty.stderr
        tokens = [*globus.tokens, *scicat.tokens, *scicat.expired]

    for secret in (GLOBUS_SECRET, SCICAT_PASSWORD, *tokens):
        assert secret not in stderr, f"a secret reached the logs: {secret[:6]}…"

    records = _records(stderr)
    assert records and all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    lifecycle = [r for r in records if r.get("event")]
    submitted = [r for r in lifecycle if r["event"] == "copy.submitted"]
    verified = [r for r in lifecycle if r["event"] == "copy.verified"]
    registered = [r for r in lifecycle if r["event"] == "catalog.register"]
    assert len(submitted) == len(verified) == len(registered) == 3
    for record in submitted + verified + registered:
        assert record["scan"].startswith("2026/s") and len(record["action_id"]) == 16
    failures = [r for r in records if r["level"] == "error"]
    assert any(r.get("endpoint") == "cfs" and r.get("consecutive_failures") for r in failures)
    # Each action's lifecycle event is logged once, not once per layer.
    keys = [(r["event"], r["action_id"]) for r in submitted + verified + registered]
    assert len(keys) == len(set(keys))
