"""Settings, credentials and Slurm directives for the `sfapi` tape runner.

`SfapiSettings` is the `[endpoints.<name>.sfapi]` table of a `kind = "tape"` endpoint with
`runner = "sfapi"` (the tape endpoint's config embeds it). Credentials never live in that table:
the client id may (it names the client, it grants nothing), the private key comes from the
environment (`SFAPI_PRIVATE_KEY`, the PEM text) or from an owner-only file (`key_file`, the PEM
Iris offers for download, optionally preceded by a line holding the client id — the layout
`sfapi_client` itself reads, `_sync/client.py::_read_client_secret_from_file`).

`xfer_script` puts the Slurm directives NERSC asks of HPSS jobs at the top of a job script:
the `xfer` QOS (runs on a login node, free, at most 15 running per user — the 15 concurrent HPSS
sessions), a job name, a walltime, and a file-system license so Slurm holds the job while the
file system it reads is down (docs.nersc.gov, "Xfer transfer job" example: `--qos=xfer`,
`--time`, `--job-name`, `--licenses`; splash_flows PR #62 adds `-A als -C cron --mem=2GB`).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import ConfigError
from engine.secrets import Secret

CLIENT_ID_VAR = "SFAPI_CLIENT_ID"
PRIVATE_KEY_VAR = "SFAPI_PRIVATE_KEY"
# sfapi_client's defaults (`_sync/client.py`: SFAPI_BASE_URL, SFAPI_TOKEN_URL).
SFAPI_BASE_URL = "https://api.nersc.gov/api/v1.2"
SFAPI_TOKEN_URL = "https://oidc.nersc.gov/c2id/token"
# Slurm job names bl931 submits: safe in a shell word and in `sacct --name`.
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Options the runner owns: a script's own directive for one of these is replaced.
_OWNED = {
    "-q": "qos",
    "--qos": "qos",
    "-J": "job-name",
    "--job-name": "job-name",
    "-t": "time",
    "--time": "time",
    "-L": "licenses",
    "--licenses": "licenses",
    "-A": "account",
    "--account": "account",
    "-C": "constraint",
    "--constraint": "constraint",
    "--mem": "mem",
    "-o": "output",
    "--output": "output",
    "-e": "error",
    "--error": "error",
}


class SfapiSettings(BaseModel):
    """How the `sfapi` runner reaches NERSC and what its Slurm jobs ask for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str | None = None  # else $SFAPI_CLIENT_ID, else the key file's first line
    key_file: Path | None = None  # owner-only PEM; else $SFAPI_PRIVATE_KEY
    api_base_url: str = SFAPI_BASE_URL
    token_url: str = SFAPI_TOKEN_URL
    machine: str = "perlmutter"
    qos: str = "xfer"
    account: str | None = None  # -A (e.g. "als"); None: the user's default project
    constraint: str | None = "cron"  # -C, as splash_flows' xfer jobs use; None leaves it out
    time_limit: str = "12:00:00"  # -t; xfer allows up to 48 h
    licenses: str | None = "cfs"  # -L: the file systems the job reads
    mem: str | None = "2GB"  # xfer jobs get 2 GB by default
    output_dir: str = Field(min_length=1)  # where job output files go (on the NERSC side)
    find_days: int = Field(default=14, ge=1)  # how far back `find` looks in sacct
    command_timeout_seconds: float = Field(default=300, gt=0)
    poll_seconds: float = Field(default=2, gt=0)  # between polls of an SFAPI task

    def output_path(self, job_id: str) -> str:
        """The file holding a job's stdout and stderr."""
        return f"{self.output_dir.rstrip('/')}/bl931-{job_id}.out"


@dataclass(frozen=True, slots=True)
class SfapiCredentials:
    """An SFAPI client's id and private key (the key is a `Secret`: never shown)."""

    client_id: str
    private_key: Secret

    def __repr__(self) -> str:
        return f"SfapiCredentials(client_id={self.client_id!r}, private_key=***)"


def load_credentials(
    settings: SfapiSettings, *, environ: Mapping[str, str] | None = None, where: str = "sfapi"
) -> SfapiCredentials:
    """The client id and private key, from the environment or the owner-only key file.

    Raises:
        ConfigError: no key, a key file others can read, or no client id; names what is
            missing and where it was looked for, never the key's content.
    """
    env = os.environ if environ is None else environ
    key_text: str | None = env.get(PRIVATE_KEY_VAR) or None
    first_line_id: str | None = None
    if key_text is None and settings.key_file is not None:
        key_text = _read_owner_only(settings.key_file, f"{where}.key_file")
    if key_text is None:
        raise ConfigError(
            f"no SFAPI private key: set ${PRIVATE_KEY_VAR} or `key_file` (an owner-only PEM file)",
            key=f"{where}.key_file",
        )
    head, _, rest = key_text.lstrip().partition("\n")
    if not head.startswith("-----BEGIN"):
        first_line_id, key_text = head.strip(), rest
    key_name = f"${PRIVATE_KEY_VAR}" if env.get(PRIVATE_KEY_VAR) else f"{where}.key_file"
    if "-----BEGIN" not in key_text or "PRIVATE KEY-----" not in key_text:
        raise ConfigError(
            "the SFAPI private key is not a PEM private key (expected '-----BEGIN … PRIVATE KEY')",
            key=key_name,
        )
    if not _is_private_key(key_text):
        # Found now, not at the first token request of a pass (where the library's error
        # would be a bare ValueError).
        raise ConfigError(
            "the SFAPI private key cannot be read as a private key (damaged, or encrypted "
            "with a passphrase); download it from Iris again",
            key=key_name,
        )
    client_id = settings.client_id or env.get(CLIENT_ID_VAR) or first_line_id
    if not client_id:
        raise ConfigError(
            f"no SFAPI client id: set `client_id`, ${CLIENT_ID_VAR}, or put it on the key "
            "file's first line",
            key=f"{where}.client_id",
        )
    return SfapiCredentials(client_id.strip(), Secret(key_text.strip() + "\n"))


def _is_private_key(pem: str) -> bool:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(pem.strip().encode("utf-8"), password=None)
    except (ValueError, TypeError):
        return False
    return True


def _read_owner_only(path: Path, key: str) -> str:
    """A key file's text, refused when anyone but its owner may read it (as `engine.secrets`)."""
    path = path.expanduser()
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"SFAPI key file is readable by others (mode {stat.filemode(info.st_mode)}); "
                "run `chmod 600` on it",
                path=str(path),
                key=key,
            )
        return path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError("SFAPI key file not found", path=str(path), key=key) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"SFAPI key file cannot be read ({type(exc).__name__})", path=str(path), key=key
        ) from None


def check_job_name(name: str) -> str:
    """`name` if it is a job name bl931 submits (a shell-safe word), else ValueError."""
    if not JOB_NAME.match(name):
        raise ValueError(f"job name {name!r} must match {JOB_NAME.pattern}")
    return name


def xfer_script(name: str, script: str, settings: SfapiSettings) -> str:
    """`script` with the runner's `#SBATCH` directives at its top.

    The directives go right after the shebang (a `#!/bin/bash` is added when the script has
    none: `submit_job` treats text without one as a *path*, `_sync/compute.py`); a directive of
    the script's own for an option the runner owns (QOS, name, walltime, licenses, account,
    constraint, memory, output) is dropped, so the job always runs where and as configured.
    """
    check_job_name(name)
    lines = script.splitlines()
    if lines and lines[0].startswith("#!"):
        shebang, body = lines[0], lines[1:]
    else:
        shebang, body = "#!/bin/bash", lines
    kept = [line for line in body if not _is_owned_directive(line)]
    directives = [
        f"#SBATCH --qos={settings.qos}",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --time={settings.time_limit}",
        f"#SBATCH --output={settings.output_path('%j')}",
    ]
    if settings.licenses:
        directives.append(f"#SBATCH --licenses={settings.licenses}")
    if settings.account:
        directives.append(f"#SBATCH --account={settings.account}")
    if settings.constraint:
        directives.append(f"#SBATCH --constraint={settings.constraint}")
    if settings.mem:
        directives.append(f"#SBATCH --mem={settings.mem}")
    return "\n".join([shebang, *directives, *kept]) + "\n"


def _is_owned_directive(line: str) -> bool:
    text = line.strip()
    if not text.startswith("#SBATCH"):
        return False
    option = text[len("#SBATCH") :].strip().split("=", 1)[0].split()[0:1]
    return bool(option) and option[0] in _OWNED
