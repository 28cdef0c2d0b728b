"""`--check` on Globus endpoints: the real CLI and globus-sdk against the fake Transfer API.

Per collection: reachable (`get_endpoint`), identity (the configured root is a directory there,
`operation_stat`), listing with the account's consents and mapping (`operation_ls`), writable
(a probe directory made with `operation_mkdir` and removed by a recursive delete task).
"""

from __future__ import annotations

import json

from tests.cli.test_prune_globus import GlobusSite, site  # noqa: F401 (`site` is a fixture)
from tests.conftest import RunCli


def line_of(stdout: str, endpoint: str) -> str:
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith(f"endpoint {endpoint}: ")]
    return line


def test_every_collection_is_reachable_listed_and_writable(
    site: GlobusSite,  # noqa: F811
    run_cli: RunCli,
) -> None:
    done = run_cli("--check", config=site.config_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("dtn", "cfs", "hpss"):
        line = line_of(done.stdout, name)
        assert line.startswith(f"endpoint {name}: ok (globus collection "), line
        assert "root /raw: reachable; listed; writable (probe directory made and removed))" in line
    # the probes are gone: one recursive delete task per collection, and nothing left behind
    deletes = [t for t in site.fake.tasks.values() if t.kind == "DELETE"]
    assert len(deletes) == 3 and all(t.body.get("recursive") for t in deletes)
    for root in site.roots.values():
        assert [p.name for p in root.iterdir() if p.name.startswith(".bl931-")] == []


def test_a_read_only_collection_needs_a_person(site: GlobusSite, run_cli: RunCli) -> None:  # noqa: F811
    ids = {c.root.name: cid for cid, c in site.fake.collections.items()}
    site.fake.read_only.add(ids["cfs"])
    done = run_cli("--check", config=site.config_path)
    assert done.returncode == 1
    line = line_of(done.stdout, "cfs")
    assert line.startswith("endpoint cfs: FAILED: writable: cannot make a directory under /raw on ")
    assert "PermissionDenied" in line
    assert line_of(done.stdout, "dtn").startswith("endpoint dtn: ok (")


def test_an_unmapped_collection_and_a_missing_root_are_named(
    site: GlobusSite,  # noqa: F811
    run_cli: RunCli,
) -> None:
    ids = {c.root.name: cid for cid, c in site.fake.collections.items()}
    site.fake.unmap_identity(ids["hpss"])
    (site.roots["cfs"]).rename(site.roots["cfs"].with_name("raw-moved"))
    done = run_cli("--check", "--json", config=site.config_path)
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    by_name = {e["endpoint"]: e for e in doc["endpoints"]}
    assert by_name["dtn"]["verdict"] == "ok" and by_name["dtn"]["kind"] == "globus"
    cfs = {c["check"]: c for c in by_name["cfs"]["checks"]}
    assert cfs["identity"]["verdict"] == "FAILED"
    assert cfs["identity"]["message"].startswith(
        f"root /raw is not a directory on collection {ids['cfs']}"
    )
    hpss = {c["check"]: c for c in by_name["hpss"]["checks"]}
    assert hpss["identity"]["verdict"] == "FAILED"
    assert "No identity mapping" in hpss["identity"]["message"]
    assert doc["exit"] == 1
