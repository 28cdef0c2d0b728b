"""The tape endpoint with `runner = "sfapi"`, through the real CLI, against a fake Superfacility API.

The CLI runs in a child process with the real `sfapi_client`; the fake (tests/fakes/sfapi_api.py)
listens on 127.0.0.1 and runs each submitted job script with bash, PATH starting with the
`htar`/`hsi` shims and `HPSS_ROOT` a temporary "HPSS". Jobs advance one step per state read, so
a bundle takes a few passes (submit; PENDING; RUNNING; ended). Each fault ends with no lost
scan, no duplicate bundle, and no CFS prune without a verified bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.storage.tape_local import SHIMS
from engine.workspace import LocalWorkspace, create_workspace
from tests.fakes.sfapi_api import FakeSfapi
from tests.tape.test_tape_cli import write

CLIENT_ID = "abcdefghij123"
HPSS_DIR = "/home/a/alsdev/data_mover/9.3.1"
BUNDLE_1 = f"{HPSS_DIR}/2026-1/bl9.3.1-2026-1-p001.tar"


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass
class World:
    ws: LocalWorkspace
    api: FakeSfapi
    run_cli: Callable[..., object]

    def once(self, ok: bool | None = None) -> str:
        done = self.run_cli("--reconcile", "--once", config=self.ws.config_path)
        if ok is not None:
            assert (done.returncode == 0) is ok, done.stderr[-3000:]  # type: ignore[attr-defined]
        return done.stderr  # type: ignore[attr-defined,no-any-return]

    def audit(self, *extra: str) -> dict:  # type: ignore[type-arg]
        done = self.run_cli("--dry-run", "--json", *extra, config=self.ws.config_path)
        assert done.returncode in (0, 1, 2), done.stderr  # type: ignore[attr-defined]
        return json.loads(done.stdout)  # type: ignore[attr-defined,no-any-return]

    def bundles(self) -> list[tuple[str, str, str, str | None]]:
        with sqlite3.connect(self.ws.state_path) as conn:
            return conn.execute(
                "SELECT bundle, state, job_name, job_id FROM tape_bundles ORDER BY bundle"
            ).fetchall()

    def held(self) -> set[str]:
        with sqlite3.connect(self.ws.state_path) as conn:
            return {r[0] for r in conn.execute("SELECT scan FROM tape_members")}

    def tars(self) -> list[str]:
        return sorted("/" + str(p.relative_to(self.ws.hpss)) for p in self.ws.hpss.rglob("*.tar"))

    def archive_jobs(self) -> list[str]:
        return [j.name for j in self.api.jobs.values() if "-archive-" in j.name]

    def until(self, done: Callable[[], bool], passes: int = 8, *, safe: str | None = None) -> int:
        """Passes until `done()`; after each, the CFS copy of `safe` must still be there unless
        a verified bundle holds it."""
        stderr = ""
        for n in range(1, passes + 1):
            stderr = self.once()
            if safe is not None:
                assert safe in self.held() or (self.ws.cfs / safe).exists(), (
                    "CFS pruned without a verified bundle"
                )
            if done():
                return n
        tail = "\n".join(line for line in stderr.splitlines() if "httpx" not in line)[-3000:]
        raise AssertionError(f"not done after {passes} passes: {self.bundles()}\n{tail}")


def sfapi_world(
    tmp_path: Path, key_pair: tuple[str, str], run_cli: Callable[..., object], **kw: object
) -> Iterator[World]:
    ws = create_workspace(
        tmp_path / "ws",
        hpss_kind="tape",
        retry_base_seconds=0.01,
        **{"dtn_keep_days": 10**4, **kw},  # type: ignore[arg-type]
    )
    key_file = ws.root / "sfapi.pem"
    key_file.write_text(key_pair[0])
    key_file.chmod(0o600)
    (ws.root / "jobs").mkdir()
    with FakeSfapi(
        client_id=CLIENT_ID,
        public_key_pem=key_pair[1],
        extra_path=SHIMS,
        env={"HPSS_ROOT": str(ws.hpss)},
    ) as api:
        text = ws.config_path.read_text("utf-8").replace(
            'runner = "local"\npath = "hpss"\n', f'runner = "sfapi"\nroot = "{HPSS_DIR}"\n'
        )
        text += (
            "\n[endpoints.hpss.sfapi]\n"
            f'client_id = "{CLIENT_ID}"\nkey_file = "sfapi.pem"\naccount = "als"\n'
            f'api_base_url = "{api.api_base_url}"\ntoken_url = "{api.token_url}"\n'
            f'output_dir = "{ws.root / "jobs"}"\npoll_seconds = 0.01\n'
            "command_timeout_seconds = 30\n"
        )
        assert 'runner = "sfapi"' in text
        # Faults here last a few passes a second apart: never skip a listing for wall-clock time.
        text = text.replace("[safety]\n", "[safety]\nendpoint_backoff_after = 100\n")
        ws.config_path.write_text(text, "utf-8")
        yield World(ws, api, run_cli)


@pytest.fixture
def world(tmp_path: Path, key_pair: tuple[str, str], run_cli) -> Iterator[World]:  # type: ignore[no-untyped-def]
    yield from sfapi_world(tmp_path, key_pair, run_cli)


@pytest.fixture
def prune_world(tmp_path: Path, key_pair: tuple[str, str], run_cli) -> Iterator[World]:  # type: ignore[no-untyped-def]
    """CFS is pruned as soon as a verified tape copy allows it (no approval)."""
    yield from sfapi_world(
        tmp_path, key_pair, run_cli, dtn_keep_days=0, cfs_keep_days=0, approval=()
    )


def approve_deletes(w: World, endpoint: str) -> int:
    pending = [
        a
        for a in w.audit()["actions"]
        if a["kind"] == "delete" and a["target"] == endpoint and a["requires_approval"]
    ]
    for action in pending:
        done = w.run_cli("--approve", action["id"], config=w.ws.config_path)
        assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    return len(pending)


def verified(w: World, n: int = 1) -> Callable[[], bool]:
    return lambda: [b[1] for b in w.bundles()].count("verified") >= n


# ---- the happy path ---------------------------------------------------------------------------


def test_a_cycle_of_scans_becomes_one_verified_bundle_through_sfapi(world: World) -> None:
    scans = [write(world.ws, n) for n in range(3)]
    world.once(ok=True)  # dtn → cfs
    world.until(verified(world))
    assert world.tars() == [BUNDLE_1]
    assert world.held() == set(scans)
    (job,) = world.api.jobs.values()
    assert job.directives["qos"] == "xfer" and job.directives["account"] == "als"
    (row,) = world.bundles()
    assert row[3] == job.jobid  # the Slurm job id, recorded
    with sqlite3.connect(world.ws.state_path) as conn:
        evidence = json.loads(
            conn.execute("SELECT evidence FROM tape_members LIMIT 1").fetchone()[0]
        )
    assert evidence["bundle"] == BUNDLE_1 and evidence["job_id"] == job.jobid
    assert evidence["crc"] == "htar -Hcrc -Hverify=all"
    manifest = world.ws.hpss / (BUNDLE_1.lstrip("/") + ".manifest.json")
    assert sorted(json.loads(manifest.read_text())["scans"]) == sorted(scans)
    doc = world.audit()
    assert not [a for a in doc["actions"] if a["kind"] == "copy"], doc["actions"]
    assert world.archive_jobs() == [job.name]  # one job, however many passes


def test_dry_run_plans_the_bundle_without_submitting(world: World) -> None:
    write(world.ws, 1)
    world.once(ok=True)
    doc = world.audit()
    assert [a["target"] for a in doc["actions"] if a["kind"] == "copy"] == ["hpss"]
    assert world.api.jobs == {} and world.bundles() == []


# ---- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "exit_code", "run"),
    [
        pytest.param("FAILED", 1, True, id="FAILED"),
        pytest.param("NODE_FAIL", 0, False, id="NODE_FAIL"),
        pytest.param("TIMEOUT", 0, True, id="TIMEOUT"),
        pytest.param("COMPLETED", 3, True, id="COMPLETED-exit-3"),
    ],
)
def test_a_failed_job_archives_nothing_and_the_scans_are_bundled_again(
    prune_world: World, state: str, exit_code: int, run: bool
) -> None:
    w = prune_world
    scan = write(w.ws, 1)
    w.once(ok=True)
    w.api.next_job_ends(state, exit_code=exit_code, run=run)
    w.until(lambda: any(b[1] == "failed" for b in w.bundles()), safe=scan)
    assert w.held() == set() and (w.ws.cfs / scan).exists()
    w.until(verified(w), passes=10, safe=scan)
    states = [b[1] for b in w.bundles()]
    assert states == ["failed", "verified"], w.bundles()
    assert len(w.archive_jobs()) == 2  # one per bundle part: nothing submitted twice
    w.until(lambda: not (w.ws.cfs / scan).exists(), safe=scan)  # the prune follows


def test_a_nonzero_htar_exit_archives_nothing(prune_world: World) -> None:
    w = prune_world
    tools = w.ws.root / "tools"
    tools.mkdir()
    (tools / "hsi").symlink_to(SHIMS / "hsi")
    (tools / "htar").write_text(
        f'#!/bin/bash\n"{SHIMS / "htar"}" "$@"\n'
        'case "$1" in -cvf) echo "HTAR: ERROR: tape error" >&2; exit 1;; esac\n'
    )
    (tools / "htar").chmod(0o755)
    w.api.extra_path = tools
    scan = write(w.ws, 1)
    w.once(ok=True)
    w.until(lambda: any(b[1] == "failed" for b in w.bundles()), safe=scan)
    assert w.held() == set() and (w.ws.cfs / scan).exists()
    w.api.extra_path = SHIMS  # htar works again
    w.until(verified(w), passes=10, safe=scan)
    assert [b[1] for b in w.bundles()] == ["failed", "verified"]


def test_a_truncated_bundle_is_rebundled_before_any_cfs_prune(
    tmp_path: Path, key_pair: tuple[str, str], run_cli
) -> None:  # type: ignore[no-untyped-def]
    """The bundle is cut short on HPSS after it was verified, while the CFS prune waits for
    approval: the last look (hsi ls + htar -tvf through the command endpoint) finds it broken,
    the approved prune does not run, and the scan is bundled again first."""
    gen = sfapi_world(tmp_path, key_pair, run_cli, dtn_keep_days=0, cfs_keep_days=0)
    w = next(gen)
    try:
        scan = write(w.ws, 1)
        w.once(ok=True)

        def dtn_pruned_and_bundled() -> bool:
            approve_deletes(w, "dtn")  # the CFS prune waits while the DTN relies on CFS
            return verified(w)() and not (w.ws.dtn / scan).exists()

        w.until(dtn_pruned_and_bundled, safe=scan)
        tar = w.ws.hpss / BUNDLE_1.lstrip("/")
        os.truncate(tar, tar.stat().st_size // 2)
        approve_deletes(w, "cfs")  # the operator approves the prune (if planned): too late
        for _ in range(10):
            w.once()
            rebundled = any(b[1] == "verified" and "p002" in b[0] for b in w.bundles())
            assert rebundled or (w.ws.cfs / scan).exists(), "CFS pruned relying on a broken bundle"
            doc = w.audit()
            for alert in doc.get("alert_details", []):
                w.run_cli(
                    "--acknowledge", alert["id"], "--why", "re-bundle", config=w.ws.config_path
                )
            if rebundled:
                approve_deletes(w, "cfs")
            if rebundled and not (w.ws.cfs / scan).exists():
                break
        assert [b[1] for b in w.bundles()] == ["broken", "verified"], w.bundles()
        assert len(w.archive_jobs()) == 2
    finally:
        gen.close()


def test_hpss_down_submits_nothing_and_loses_nothing(prune_world: World) -> None:
    w = prune_world
    scan = write(w.ws, 1)
    w.once(ok=True)
    w.api.env["HPSS_ROOT"] = str(w.ws.root / "no-hpss")  # every hsi/htar fails
    for _ in range(4):
        w.once()
        assert (w.ws.cfs / scan).exists()
    assert w.held() == set()
    assert all(b[1] != "verified" for b in w.bundles())
    w.api.env["HPSS_ROOT"] = str(w.ws.hpss)
    w.until(verified(w), passes=10, safe=scan)
    assert len(w.tars()) == 1 and w.held() == {scan}


def test_the_command_endpoint_down_keeps_everything(prune_world: World) -> None:
    w = prune_world
    scan = write(w.ws, 1)
    w.once(ok=True)
    w.api.fail_commands("HPSS is unavailable on the login nodes")
    for _ in range(3):
        w.once()
        assert (w.ws.cfs / scan).exists()
    assert w.held() == set() and w.archive_jobs() == []
    w.api.fail_commands(None)
    w.until(verified(w), passes=10, safe=scan)
    assert len(w.archive_jobs()) == 1


def test_output_unreadable_when_the_job_ends_makes_no_duplicate_bundle(world: World) -> None:
    """The job built a good bundle, but its output cannot be read the moment it ends (the
    command endpoint is down): that is no verdict; the next pass reads it and verifies."""
    w = world
    write(w.ws, 1)
    w.once(ok=True)
    w.once()  # submit
    w.once()  # PENDING
    w.once()  # RUNNING
    w.api.fail_commands("HPSS is unavailable on the login nodes")
    w.once()  # the job ends; its output cannot be read
    w.api.fail_commands(None)
    w.until(verified(w))
    assert [b[1] for b in w.bundles()] == ["verified"], w.bundles()
    assert len(w.archive_jobs()) == 1 and w.tars() == [BUNDLE_1]


@pytest.mark.parametrize("status", [500, 503, 429])
def test_sfapi_errors_are_retried_without_a_duplicate(world: World, status: int) -> None:
    w = world
    scan = write(w.ws, 1)
    w.once(ok=True)
    for _ in range(3):
        w.api.fail_next(1, status, retry_after=0 if status == 429 else None)
        w.once()
    w.until(verified(w), passes=10, safe=scan)
    assert len(w.archive_jobs()) == 1 and w.tars() == [BUNDLE_1]


def test_a_retry_after_wait_outlives_the_process_that_was_asked(world: World) -> None:
    """SFAPI answers 429 with `Retry-After: 3600`; every `--once` pass is a new process: the
    next one must send SFAPI nothing while the wait lasts (the hold is kept in the state
    store, as Globus's are), and the scan stays where it is."""
    w = world
    scan = write(w.ws, 1)
    w.once(ok=True)
    w.api.fail_next(1, 429, retry_after=3600)
    w.once()
    asked = sum(w.api.calls.values())
    stderr = w.once()
    assert sum(w.api.calls.values()) == asked, (w.api.calls, stderr[-2000:])
    assert (w.ws.cfs / scan).exists()
    with sqlite3.connect(w.ws.state_path) as conn:
        keys = [row[0] for row in conn.execute("SELECT key FROM retry_holds")]
    assert keys == ["sfapi:hpss"], keys


def test_an_expired_client_needs_a_person_and_archives_nothing(prune_world: World) -> None:
    w = prune_world
    scan = write(w.ws, 1)
    w.once(ok=True)
    w.api.refuse_client()
    stderr = w.once()
    assert "Iris" in stderr, stderr[-2000:]
    for token in w.api.issued:
        assert token not in stderr
    assert w.api.jobs == {} and (w.ws.cfs / scan).exists()
    doc = w.audit()
    assert doc["blocked"] or doc.get("alert_details"), doc


def test_a_crash_after_submit_finds_the_job_by_name(world: World) -> None:
    """The job was created but the answer carrying its id was lost (as if the process died
    right after submitting): the next pass asks sacct by name instead of submitting again."""
    w = world
    scan = write(w.ws, 1)
    w.once(ok=True)
    w.api.lose_submit_answer()
    w.once()
    (row,) = w.bundles()
    assert row[2] and row[3] is None  # job name persisted, job id not
    assert len(w.api.jobs) == 1
    w.until(verified(w), safe=scan)
    assert len(w.archive_jobs()) == 1, "the job was submitted again"
    (row,) = w.bundles()
    assert row[3] == next(iter(w.api.jobs))


def test_a_restore_through_sfapi_returns_the_acquired_bytes(world: World) -> None:
    w = world
    data = os.urandom(40_000)
    scan = write(w.ws, 1, data)
    w.once(ok=True)
    w.until(verified(w))
    (w.ws.cfs / scan).unlink()
    done = w.run_cli("--restore", scan, "--to", "cfs", config=w.ws.config_path)
    assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    w.once()
    recalls = [a for a in w.audit()["actions"] if a["kind"] == "copy" and a["source"] == "hpss"]
    assert len(recalls) == 1 and recalls[0]["requires_approval"]
    assert w.run_cli("--approve", recalls[0]["id"], config=w.ws.config_path).returncode == 0  # type: ignore[attr-defined]
    w.until(lambda: (w.ws.cfs / scan).exists())
    assert hashlib.md5((w.ws.cfs / scan).read_bytes()).digest() == hashlib.md5(data).digest()
    assert [j.name.split("-")[1] for j in w.api.jobs.values()] == ["archive", "restore"]
    assert not list(w.ws.cfs.rglob(".bl931-staging/*/*")), "staging left behind"


def test_the_last_look_batches_its_commands_per_pass(prune_world: World) -> None:
    w = prune_world
    scans = [write(w.ws, n) for n in range(4)]
    w.once(ok=True)
    w.until(lambda: not any((w.ws.cfs / s).exists() for s in scans), passes=10)
    commands = [t.payload for t in w.api.tasks.values() if t.kind == "command"]
    tvf = [c for c in commands if "-tvf" in c]
    assert len(tvf) <= 1, tvf  # one bundle, four prunes relying on it: one look
    assert w.held() == set(scans)
