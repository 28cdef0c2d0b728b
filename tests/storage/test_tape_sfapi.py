"""The `sfapi` tape runner driving the real `sfapi_client` against a fake Superfacility API."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.clock import FakeClock
from engine.errors import ConfigError, EndpointUnavailable, TerminalError, classify
from engine.model import ErrorClass
from engine.storage.tape_runner import JobState, TapeRunner
from engine.storage.tape_sfapi import SfapiRunner
from engine.storage.tape_sfapi_settings import (
    SfapiSettings,
    load_credentials,
    xfer_script,
)
from tests.fakes.sfapi_api import FakeSfapi

CLIENT_ID = "abcdefghij123"  # Iris client ids are 13 characters


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def fake(key_pair: tuple[str, str], tmp_path: Path) -> Iterator[FakeSfapi]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # A stand-in for `hsi`: HPSS "down" when $HPSS_ROOT is missing, else lists it.
    hsi = bin_dir / "hsi"
    hsi.write_text(
        '#!/bin/bash\n[ -d "$HPSS_ROOT" ] || { echo "hsi: HPSS unavailable" >&2; exit 72; }\n'
        'ls "$HPSS_ROOT"\n'
    )
    hsi.chmod(0o755)
    (tmp_path / "hpss").mkdir()
    (tmp_path / "hpss" / "bundle-1.tar").write_text("x")
    with FakeSfapi(
        client_id=CLIENT_ID,
        public_key_pem=key_pair[1],
        extra_path=bin_dir,
        env={"HPSS_ROOT": str(tmp_path / "hpss")},
    ) as api:
        yield api


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, tzinfo=UTC))


def make_runner(
    fake: FakeSfapi, key_pair: tuple[str, str], tmp_path: Path, clock: FakeClock
) -> SfapiRunner:
    out = tmp_path / "job-output"
    out.mkdir(exist_ok=True)
    settings = SfapiSettings(
        api_base_url=fake.api_base_url,
        token_url=fake.token_url,
        output_dir=str(out),
        account="als",
    )
    creds = load_credentials(
        settings, environ={"SFAPI_CLIENT_ID": CLIENT_ID, "SFAPI_PRIVATE_KEY": key_pair[0]}
    )
    return SfapiRunner("hpss", settings, creds, clock=clock, sleep=lambda _s: None)


@pytest.fixture
def runner(
    fake: FakeSfapi, key_pair: tuple[str, str], tmp_path: Path, clock: FakeClock
) -> Iterator[SfapiRunner]:
    runner = make_runner(fake, key_pair, tmp_path, clock)
    yield runner
    runner.close()


def run_to_end(runner: SfapiRunner, job_id: str, polls: int = 10):  # type: ignore[no-untyped-def]
    for _ in range(polls):
        status = runner.status(job_id)
        if status.state.terminal:
            return status
    raise AssertionError(f"job {job_id} did not end in {polls} polls")


def test_is_a_tape_runner(runner: SfapiRunner) -> None:
    assert isinstance(runner, TapeRunner)


def test_submit_runs_on_xfer_and_completes(
    runner: SfapiRunner, fake: FakeSfapi, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    script = f"#!/bin/bash\n#SBATCH --qos=regular\necho bundled\ntouch {marker}\nhsi ls\n"
    job_id = runner.submit("bl931-hpss-2026a-part1", script)

    assert runner.status(job_id).state is JobState.PENDING
    status = run_to_end(runner, job_id)

    assert status.ok and status.state is JobState.COMPLETED and status.exit_code == 0
    assert marker.exists()
    assert "bundled" in status.output and "bundle-1.tar" in status.output  # hsi shim on PATH
    job = fake.jobs[job_id]
    assert job.directives["qos"] == "xfer"  # the script's own `--qos=regular` was replaced
    assert job.directives["job-name"] == "bl931-hpss-2026a-part1"
    assert job.directives["account"] == "als"
    assert {"time", "licenses", "output"} <= set(job.directives)


@pytest.mark.parametrize(
    "state",
    [
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "CANCELLED",
        "FAILED",
        "PREEMPTED",
    ],
)
def test_every_failure_state_ends_not_ok(runner: SfapiRunner, fake: FakeSfapi, state: str) -> None:
    fake.next_job_ends(state, exit_code=0, run=state not in ("NODE_FAIL", "BOOT_FAIL"))
    job_id = runner.submit("bl931-fail", "echo hi\n")
    status = run_to_end(runner, job_id)
    assert status.state is JobState(state)
    assert status.state.terminal and not status.ok


def test_nonzero_exit_is_not_ok(runner: SfapiRunner) -> None:
    status = run_to_end(runner, runner.submit("bl931-exit3", "exit 3\n"))
    assert status.state is JobState.FAILED and status.exit_code == 3 and not status.ok


def test_completed_with_nonzero_exit_is_not_ok(runner: SfapiRunner, fake: FakeSfapi) -> None:
    fake.next_job_ends("COMPLETED", exit_code=3)
    status = run_to_end(runner, runner.submit("bl931-odd", "true\n"))
    assert status.state is JobState.COMPLETED and status.exit_code == 3 and not status.ok


def test_a_state_it_cannot_read_is_never_success(runner: SfapiRunner, fake: FakeSfapi) -> None:
    fake.next_job_ends("NOT_A_SLURM_STATE", run=False)
    job_id = runner.submit("bl931-weird", "true\n")
    runner.status(job_id)  # PENDING
    with pytest.raises(EndpointUnavailable) as caught:
        runner.status(job_id)
    assert classify(caught.value) is ErrorClass.TRANSIENT


def test_a_running_job_stays_running_until_its_script_ends(
    runner: SfapiRunner, fake: FakeSfapi, tmp_path: Path
) -> None:
    fake.hold_jobs = True
    release = tmp_path / "release"
    script = f"while [ ! -e {release} ]; do sleep 0.05; done\necho released\n"
    job_id = runner.submit("bl931-held", script)
    states = [runner.status(job_id).state for _ in range(4)]
    assert states[0] is JobState.PENDING and states[1:] == [JobState.RUNNING] * 3
    release.touch()
    fake.hold_jobs = False
    status = runner.status(job_id)
    assert status.ok and "released" in status.output


def test_crash_after_submit_finds_the_job_by_name(
    runner: SfapiRunner,
    fake: FakeSfapi,
    key_pair: tuple[str, str],
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    job_id = runner.submit("bl931-crash", "echo one\n")
    runner.close()  # the process dies before persisting the id
    again = make_runner(fake, key_pair, tmp_path, clock)
    assert again.find("bl931-crash") == job_id
    assert again.find("bl931-never-submitted") is None
    assert run_to_end(again, job_id).ok
    assert len(fake.jobs_named("bl931-crash")) == 1
    again.close()


def test_lost_submit_answer_is_transient_and_the_job_is_found(
    runner: SfapiRunner,
    fake: FakeSfapi,
    key_pair: tuple[str, str],
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    fake.lose_submit_answer()
    with pytest.raises(EndpointUnavailable) as caught:
        runner.submit("bl931-lost", "echo lost\n")
    assert classify(caught.value) is ErrorClass.TRANSIENT
    again = make_runner(fake, key_pair, tmp_path, clock)
    found = again.find("bl931-lost")
    assert found is not None and len(fake.jobs_named("bl931-lost")) == 1
    assert run_to_end(again, found).ok
    again.close()


def test_find_that_cannot_ask_raises_instead_of_saying_none(
    runner: SfapiRunner, fake: FakeSfapi
) -> None:
    runner.submit("bl931-there", "true\n")
    fake.fail_commands("login nodes unavailable")
    with pytest.raises(EndpointUnavailable):
        runner.find("bl931-there")


def test_find_when_sacct_fails_raises_instead_of_saying_none(
    runner: SfapiRunner, fake: FakeSfapi
) -> None:
    runner.submit("bl931-there", "true\n")
    fake.sacct_error = "sacct: error: Problem talking to the database"
    with pytest.raises(EndpointUnavailable, match="Problem talking"):
        runner.find("bl931-there")


def test_find_returns_the_newest_of_several(runner: SfapiRunner) -> None:
    first = runner.submit("bl931-twice", "true\n")
    second = runner.submit("bl931-twice", "true\n")
    assert int(second) > int(first)
    assert runner.find("bl931-twice") == second


def test_command_returns_exit_code_and_output(runner: SfapiRunner, fake: FakeSfapi) -> None:
    listed = runner.command(["hsi", "ls"])
    assert listed.returncode == 0 and "bundle-1.tar" in listed.stdout
    fake.env["HPSS_ROOT"] = "/nonexistent-hpss"  # HPSS down: the hsi stand-in fails
    down = runner.command(["hsi", "ls"])
    assert down.returncode == 72 and "HPSS unavailable" in down.stderr


def test_command_endpoint_error_is_transient(runner: SfapiRunner, fake: FakeSfapi) -> None:
    fake.fail_commands("HPSS is down for maintenance")
    with pytest.raises(EndpointUnavailable) as caught:
        runner.command(["hsi", "ls"])
    assert classify(caught.value) is ErrorClass.TRANSIENT
    assert "HPSS is down" in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(runner: SfapiRunner, fake: FakeSfapi, status: int) -> None:
    fake.fail_next(1, status, route="compute/jobs")
    with pytest.raises(EndpointUnavailable) as caught:
        runner.submit("bl931-5xx", "true\n")
    assert classify(caught.value) is ErrorClass.TRANSIENT
    assert fake.calls["POST compute"] == 1  # one try only: the engine's backoff retries
    assert runner.submit("bl931-5xx", "true\n")


def test_429_holds_calls_until_retry_after(
    runner: SfapiRunner, fake: FakeSfapi, clock: FakeClock
) -> None:
    fake.fail_next(1, 429, retry_after=120, route="compute/jobs")
    with pytest.raises(EndpointUnavailable) as caught:
        runner.submit("bl931-429", "true\n")
    assert classify(caught.value) is ErrorClass.TRANSIENT
    sent = sum(fake.calls.values())
    clock.advance(seconds=60)
    with pytest.raises(EndpointUnavailable, match="Retry-After"):
        runner.submit("bl931-429", "true\n")
    assert sum(fake.calls.values()) == sent  # nothing sent while held
    clock.advance(seconds=61)
    assert run_to_end(runner, runner.submit("bl931-429", "true\n")).ok


def test_expired_client_needs_a_human(
    runner: SfapiRunner,
    fake: FakeSfapi,
    key_pair: tuple[str, str],
    tmp_path: Path,
    clock: FakeClock,
) -> None:
    job_id = runner.submit("bl931-token", "true\n")
    fake.refuse_client()
    with pytest.raises(EndpointUnavailable) as held_token:
        runner.status(job_id)  # the token it holds is refused
    assert classify(held_token.value) is ErrorClass.NEEDS_HUMAN
    fresh = make_runner(fake, key_pair, tmp_path, clock)
    with pytest.raises(EndpointUnavailable) as new_token:
        fresh.status(job_id)  # no new token is issued
    assert classify(new_token.value) is ErrorClass.NEEDS_HUMAN
    assert "Iris" in str(new_token.value)


def test_wrong_key_needs_a_human(fake: FakeSfapi, tmp_path: Path, clock: FakeClock) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    bad = make_runner(fake, (pem, ""), tmp_path, clock)
    with pytest.raises(EndpointUnavailable) as caught:
        bad.submit("bl931-badkey", "true\n")
    assert classify(caught.value) is ErrorClass.NEEDS_HUMAN


def test_rejected_sbatch_needs_a_human(runner: SfapiRunner, fake: FakeSfapi) -> None:
    fake.reject_submit("Invalid qos specification")
    with pytest.raises(EndpointUnavailable) as caught:
        runner.submit("bl931-badqos", "true\n")
    assert classify(caught.value) is ErrorClass.NEEDS_HUMAN
    assert "Invalid qos" in str(caught.value)


def test_machine_down_is_transient(runner: SfapiRunner, fake: FakeSfapi) -> None:
    fake.machine_status = "unavailable"
    with pytest.raises(EndpointUnavailable) as caught:
        runner.submit("bl931-down", "true\n")
    assert classify(caught.value) is ErrorClass.TRANSIENT
    assert not fake.jobs


def test_a_bad_job_name_is_refused_before_anything_is_sent(
    runner: SfapiRunner, fake: FakeSfapi
) -> None:
    with pytest.raises(ValueError):
        runner.submit("bad name; rm -rf ~", "true\n")
    with pytest.raises((ValueError, TerminalError)):
        runner.find("$(reboot)")
    assert not fake.jobs


def test_secrets_never_leak(
    fake: FakeSfapi,
    key_pair: tuple[str, str],
    tmp_path: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    runner = make_runner(fake, key_pair, tmp_path, clock)
    texts: list[str] = [repr(runner._credentials), str(runner.__dict__)]
    job_id = runner.submit("bl931-secret", "echo fine\n")
    texts.append(repr(run_to_end(runner, job_id)))
    fake.fail_next(1, 503, retry_after=1, route="compute/jobs")
    for action in (
        lambda: runner.submit("bl931-secret", "true\n"),  # 503
        lambda: runner.submit("bl931-secret", "true\n"),  # held by Retry-After
        lambda: (
            clock.advance(seconds=5),
            fake.reject_submit("Invalid account"),
            runner.submit("bl931-secret", "true\n"),
        ),
        lambda: runner.status(job_id),  # works: a new token after the refusal above
        lambda: (fake.refuse_client(), runner.status(job_id)),  # the token it holds is refused
        lambda: runner.status(job_id),  # a new token is refused: invalid_client
    ):
        try:
            action()
        except Exception as exc:
            texts.append("".join(traceback.format_exception(exc)))
    out, err = capfd.readouterr()
    texts += [caplog.text, out, err]
    assert len(texts) == 11  # every action above raised
    blob = "".join(texts).replace("\n", "")
    assert (
        "refused the token (HTTP 401)" in blob
        and "(invalid_client)" in blob
        and "Retry-After" in blob
    )
    key_body = "".join(key_pair[0].strip().splitlines()[1:-1])
    assert key_body[:40] not in blob and key_body[-40:] not in blob
    assert fake.issued and not any(token in blob for token in fake.issued)
    for form in fake.token_forms:
        assert form["client_assertion"][-40:] not in blob
    runner.close()


def test_credentials_from_an_owner_only_key_file(key_pair: tuple[str, str], tmp_path: Path) -> None:
    key_file = tmp_path / "sfapi.pem"
    key_file.write_text(f"{CLIENT_ID}\n{key_pair[0]}")
    key_file.chmod(0o644)
    settings = SfapiSettings(output_dir="/out", key_file=key_file)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        load_credentials(settings, environ={})
    assert key_pair[0][40:80] not in str(caught.value)
    key_file.chmod(0o600)
    creds = load_credentials(settings, environ={})
    assert creds.client_id == CLIENT_ID
    assert creds.private_key.reveal().startswith("-----BEGIN PRIVATE KEY-----")
    assert "BEGIN" not in repr(creds) and "BEGIN" not in str(creds.private_key)


def test_missing_or_malformed_credentials_name_what_and_where(tmp_path: Path) -> None:
    settings = SfapiSettings(output_dir="/out")
    with pytest.raises(ConfigError, match="SFAPI_PRIVATE_KEY"):
        load_credentials(settings, environ={})
    with pytest.raises(ConfigError, match="not a PEM"):
        load_credentials(settings, environ={"SFAPI_PRIVATE_KEY": "hunter2"})
    with pytest.raises(ConfigError, match="not found"):
        load_credentials(SfapiSettings(output_dir="/o", key_file=tmp_path / "no"), environ={})


def test_xfer_script_directives() -> None:
    settings = SfapiSettings(output_dir="/global/cfs/out", account="als", constraint=None)
    text = xfer_script(
        "bl931-x", "set -e\n#SBATCH -q debug\n#SBATCH --mail-type=END\nhtar\n", settings
    )
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "#SBATCH --qos=xfer" in lines and "#SBATCH -q debug" not in lines
    assert "#SBATCH --mail-type=END" in lines  # not an option the runner owns
    assert "#SBATCH --output=/global/cfs/out/bl931-%j.out" in lines
    assert not any("--constraint" in line for line in lines)


def _sfapi_config(tmp_path: Path, table: str):  # type: ignore[no-untyped-def]
    from engine.config import load_config

    (tmp_path / "dtn").mkdir(exist_ok=True)
    path = tmp_path / "bl931.toml"
    path.write_text(
        '[endpoints.dtn]\nkind = "local"\npath = "dtn"\n'
        '[endpoints.hpss]\nkind = "tape"\nrunner = "sfapi"\nroot = "/home/a/alsdev/9.3.1"\n'
        f'[endpoints.hpss.sfapi]\noutput_dir = "/jobs"\n{table}'
        '[[copy]]\nfrom = "dtn"\nto = "hpss"\n',
        "utf-8",
    )
    return load_config(path)


def test_build_runner_reads_the_key_file_beside_the_config(
    key_pair: tuple[str, str], tmp_path: Path
) -> None:
    from engine.storage.tape_sfapi import build_runner

    (tmp_path / "keys").mkdir()
    key_file = tmp_path / "keys" / "bl931.pem"
    key_file.write_text(f"{CLIENT_ID}\n{key_pair[0]}")
    key_file.chmod(0o600)
    config = _sfapi_config(tmp_path, 'key_file = "keys/bl931.pem"\naccount = "als"\n')
    runner = build_runner(config, "hpss", environ={})
    assert isinstance(runner, TapeRunner) and runner.endpoint == "hpss"
    assert runner.settings.account == "als"


@pytest.mark.parametrize(
    ("table", "environ", "key"),
    [
        pytest.param("", {}, "endpoints.hpss.sfapi.key_file", id="no-key"),
        pytest.param('key_file = "nowhere.pem"\n', {}, "endpoints.hpss.sfapi.key_file", id="gone"),
        pytest.param(
            "",
            {
                "SFAPI_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n"
                "-----END PRIVATE KEY-----\n",
                "SFAPI_CLIENT_ID": CLIENT_ID,
            },
            "SFAPI_PRIVATE_KEY",
            id="not-a-key",
        ),
        pytest.param(
            "", {"SFAPI_PRIVATE_KEY": "KEY"}, "endpoints.hpss.sfapi.client_id", id="no-id"
        ),
    ],
)
def test_build_runner_names_the_bad_key_never_its_content(
    key_pair: tuple[str, str], tmp_path: Path, table: str, environ: dict[str, str], key: str
) -> None:
    from engine.storage.tape_sfapi import build_runner

    environ = {k: (key_pair[0] if v == "KEY" else v) for k, v in environ.items()}
    config = _sfapi_config(tmp_path, table)
    with pytest.raises(ConfigError) as caught:
        build_runner(config, "hpss", environ=environ)
    message = str(caught.value)
    assert key in message, message
    assert "c2VjcmV0" not in message and key_pair[0][40:80] not in message


def test_cancel_ends_a_running_job_cancelled(runner: SfapiRunner, fake: FakeSfapi) -> None:
    fake.hold_jobs = True
    job_id = runner.submit("bl931-archive-slow", "#!/bin/bash\nsleep 30\n")
    runner.status(job_id)  # PENDING
    assert runner.status(job_id).state is JobState.RUNNING
    runner.cancel(job_id)
    status = runner.status(job_id)
    assert status.state is JobState.CANCELLED and not status.ok
    assert fake.calls["scancel"] == 1
    with pytest.raises(TerminalError):
        runner.cancel("41000001; rm -rf /")


def test_cancelling_a_tape_task_cancels_its_submitted_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import engine.storage.tape_cancel as tape_cancel

    asked: list[str] = []
    rows = [
        SimpleNamespace(job_id="7", state="submitted"),
        SimpleNamespace(job_id="8", state="verified"),  # judged already
        SimpleNamespace(job_id=None, state="submitting"),  # found by name at the next poll
    ]
    monkeypatch.setattr(tape_cancel.tape_store, "bundles", lambda store, name, submission_id: rows)
    endpoint = SimpleNamespace(
        name="hpss", need_store=lambda: None, runner=SimpleNamespace(cancel=asked.append)
    )
    assert tape_cancel.cancel_jobs(endpoint, "tape:abc") == ["7"]  # type: ignore[arg-type]
    assert asked == ["7"]
