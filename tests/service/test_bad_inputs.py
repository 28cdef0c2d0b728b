"""Bad input corpus, end to end: each gives a clear, classified error and loses nothing.

Unit-level cases live beside their modules (tests/storage, tests/engine/test_config.py,
tests/catalog); these are the gaps: whole passes of the real CLI over hostile file names,
configs the loader had not seen, and garbled Globus listings.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.backends import build_backends
from engine.config import parse_config
from engine.reconciler import Reconciler
from engine.state import StateStore
from engine.workspace import create_workspace
from tests.conftest import RunCli
from tests.fakes.transfer_api import FakeTransferAPI

Doc = dict[str, Any]


def test_hostile_file_names_through_the_whole_lifecycle(tmp_path: Path, run_cli: RunCli) -> None:
    ws = create_workspace(tmp_path / "ws", dtn_keep_days=0, cfs_keep_days=0, approval=())
    folder = os.fsencode(ws.dtn / "2026")
    os.makedirs(folder)
    odd = {
        b"-rf --no-preserve-root.h5": b"dash" * 100,
        b"line\nbreak.h5": b"newline" * 100,
        b"  spaced  out .h5": b"spaces" * 100,
        "Ångström é.h5".encode(): b"unicode" * 100,
        b"a..b.h5": b"dots" * 100,
    }
    undecodable = b"latin1 \xe9t\xe9.h5"
    for name, data in {**odd, undecodable: b"latin-1 name"}.items():
        with open(folder + b"/" + name, "wb") as out:
            out.write(data)
    outside_file = tmp_path / "outside.h5"
    outside_file.write_bytes(b"not the beamline's")
    outside_dir = tmp_path / "elsewhere"
    (outside_dir / "inner").mkdir(parents=True)
    (outside_dir / "inner" / "x.h5").write_bytes(b"not ours either")
    os.symlink(outside_file, ws.dtn / "2026" / "link-out.h5")
    os.symlink(outside_dir, ws.dtn / "2026" / "dir-out")

    stderr = ""
    for _ in range(5):
        done = run_cli("--reconcile", "--once", config=ws.config_path)
        assert done.returncode == 0, done.stderr
        stderr += done.stderr
    audit = run_cli("--dry-run", "--json", config=ws.config_path)
    doc = json.loads(audit.stdout)  # valid JSON whatever the names
    assert doc["errors"] == []
    # The scan with an undecodable name is the one thing a person must look at.
    assert [p["scan"] for p in doc["problems"]] == ["2026/latin1 \udce9t\udce9.h5"]
    assert audit.returncode == 1

    hpss = os.fsencode(ws.hpss / "2026")
    for name, data in odd.items():
        with open(hpss + b"/" + name, "rb") as copy:
            assert hashlib.md5(copy.read()).digest() == hashlib.md5(data).digest()
        assert not os.path.lexists(folder + b"/" + name)  # pruned after verified copies
    # An undecodable name is refused with a reason and left exactly where it is.
    with open(folder + b"/" + undecodable, "rb") as kept:
        assert kept.read() == b"latin-1 name"
    assert "not valid UTF-8; rename it" in stderr
    assert not os.path.lexists(hpss + b"/" + undecodable)
    # Links out of the root are never followed: not copied, and their targets untouched.
    assert "symlink(s) pointing outside the root" in stderr
    assert outside_file.read_bytes() == b"not the beamline's"
    assert (outside_dir / "inner" / "x.h5").read_bytes() == b"not ours either"
    copied = {p.name for p in (ws.hpss / "2026").iterdir()} | {
        p.name for p in (ws.cfs / "2026").iterdir()
    }
    assert "link-out.h5" not in copied and "dir-out" not in copied


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"\xff\xfe[beamline]\x00name = 1\n", "is not UTF-8 text", id="binary"),
        pytest.param(b"", "endpoints: is required but missing", id="empty"),
        pytest.param(None, "cannot be read", id="a-directory"),
        pytest.param(
            b'[endpoints.dtn]\nkind = "local"\npath = "d"\n[service]\nmetrics_port = 70000\n',
            "service.metrics_port",
            id="port-out-of-range",
        ),
        pytest.param(
            b'[endpoints.dtn]\nkind = "local"\npath = "d"\n[safety]\nendpoint_backoff_after = 0\n',
            "safety.endpoint_backoff_after",
            id="breaker-zero",
        ),
    ],
)
def test_unusable_configs_exit_78_naming_the_file(
    tmp_path: Path, run_cli: RunCli, content: bytes | None, expected: str
) -> None:
    config = tmp_path / "bl931.toml"
    if content is None:
        config.mkdir()
    else:
        config.write_bytes(content)
    done = run_cli("--reconcile", "--once", config=config)
    assert done.returncode == 78, done.stderr
    assert str(config) in done.stderr and expected in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()  # nothing was started


MUTATIONS: dict[str, Callable[[Doc], Any]] = {
    "not-an-object": lambda d: "<html><body>502 Bad Gateway</body></html>",
    "data-not-a-list": lambda d: {**d, "DATA": {"name": "s0.h5"}},
    "entry-not-an-object": lambda d: {**d, "DATA": ["s0.h5"]},
    "size-not-a-number": lambda d: {**d, "DATA": [{**e, "size": "big"} for e in d["DATA"]]},
    "negative-size": lambda d: {**d, "DATA": [{**e, "size": -1} for e in d["DATA"]]},
    "mtime-not-a-time": lambda d: {
        **d,
        "DATA": [{**e, "last_modified": "yesterday"} for e in d["DATA"]],
    },
    "name-climbs-out": lambda d: {**d, "DATA": [{**e, "name": "../../x"} for e in d["DATA"]]},
    "name-absolute": lambda d: {**d, "DATA": [{**e, "name": "/etc/passwd"} for e in d["DATA"]]},
    "total-not-a-count": lambda d: {**d, "total": "many"},
    "data-missing": lambda d: {k: v for k, v in d.items() if k != "DATA"},
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_garbled_globus_listing_is_a_classified_failure_not_an_empty_endpoint(
    tmp_path: Path, mutation: str
) -> None:
    with FakeTransferAPI() as fake:
        dtn = fake.add_collection(tmp_path / "dtn")
        cfs = fake.add_collection(tmp_path / "cfs")
        raw = tmp_path / "dtn" / "raw"
        (raw / "2026").mkdir(parents=True)
        (tmp_path / "cfs" / "raw" / "2026").mkdir(parents=True)
        for i in range(2):
            (raw / f"2026/s{i}.h5").write_bytes(b"x" * (i + 5))
            os.utime(raw / f"2026/s{i}.h5", (1.7e9, 1.7e9))
        config = parse_config(
            {
                "state": {"path": str(tmp_path / "state.sqlite")},
                "inventory": {"quiet_seconds": 0},
                "endpoints": {
                    "dtn": {"kind": "globus", "collection": dtn, "root": "/raw", "path": str(raw)},
                    "cfs": {"kind": "globus", "collection": cfs, "root": "/raw"},
                },
                "copy": [{"from": "dtn", "to": "cfs"}],
                "retention": {"dtn": {"keep_days": 0, "delete_requires": ["cfs"]}},
                "approval": {"required_for": ["delete"]},  # due, but held for a person
                "catalog": {"kind": "none"},
            }
        )
        garble = {"on": False}
        answer = fake.handle

        def handle(*args: Any) -> tuple[int, Any, dict[str, str]]:
            status, doc, extra = answer(*args)
            method, path = args[0], args[1]
            listing = method == "GET" and path.endswith("/ls") and cfs in path
            if garble["on"] and status == 200 and listing:
                doc = MUTATIONS[mutation](doc)
            return status, doc, extra

        fake.handle = handle  # type: ignore[method-assign]
        backends = build_backends(config, environ=fake.environ)
        store = StateStore(config.state.path)
        try:
            reconciler = Reconciler(config, store, backends)
            for _ in range(5):  # until copied and verified: the dtn prune is then due
                assert reconciler.reconcile_once().ok
                due = [a for a in reconciler.dry_run().actions if a.kind.value == "delete"]
                if len(due) == 2:
                    break
            else:
                raise AssertionError("the dtn prune never became due")
            # Approved: only the garbled listing stands between these deletes and the data.
            store.approve([a.id for a in due], "operator", reconciler.clock())
            garble["on"] = True
            report = reconciler.reconcile_once()
            (error,) = report.plan.errors
            assert error.endpoint == "cfs" and error.error_class.value == "transient"
            assert "malformed answer" in error.message or "partial answer" in error.message
            assert not any(a.kind.value == "delete" for a in report.plan.actions)
            assert sorted(p.name for p in (raw / "2026").iterdir()) == ["s0.h5", "s1.h5"]
            garble["on"] = False
            assert reconciler.reconcile_once().ok  # the next good answer is trusted again
        finally:
            store.close()
            backends.close()
