"""Config validation: every bad config names the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError

GOOD = """
[inventory]
endpoint = "dtn"
[endpoints.dtn]
kind = "local"
path = "dtn"
[endpoints.cfs]
kind = "local"
path = "cfs"
[endpoints.hpss]
kind = "local"
path = "hpss"
tape = true
[[copy]]
from = "dtn"
to = "cfs"
[[copy]]
from = "cfs"
to = "hpss"
[retention.dtn]
keep_days = 180
delete_requires = ["cfs"]
[retention.cfs]
keep_days = 730
delete_requires = ["hpss"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bl931.toml"
    path.write_text(text, "utf-8")
    return path


def test_good_config_loads_with_paths_resolved_beside_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.endpoints["dtn"].path == tmp_path / "dtn"
    assert config.endpoint_order() == ["dtn", "cfs", "hpss"]
    assert config.retention["cfs"].delete_requires == ("hpss",)
    assert config.safety.max_missing_fraction == 0.1


def test_example_config_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "config.example.toml")
    assert config.inventory.endpoint == "dtn"


BAD = [
    pytest.param(GOOD + "\n[endpoints.dtn2\n", "is not valid TOML", id="toml-syntax"),
    pytest.param(
        GOOD.replace('kind = "local"\npath = "cfs"', 'kind = "ftp"\npath = "cfs"'),
        "endpoints.cfs.kind: Input should be 'local', 'globus' or 'tape' (got 'ftp')",
        id="endpoint-kind",
    ),
    pytest.param(
        GOOD.replace('path = "cfs"', ""),
        "endpoints.cfs: a local endpoint needs `path`",
        id="local-no-path",
    ),
    pytest.param(
        GOOD.replace('to = "cfs"', 'to = "cfz"'),
        "copy[0].to: unknown endpoint 'cfz'",
        id="copy-unknown-endpoint",
    ),
    pytest.param(
        GOOD.replace('delete_requires = ["cfs"]', 'delete_requires = ["nersc"]'),
        "retention.dtn.delete_requires: unknown endpoint 'nersc'",
        id="requires-unknown-endpoint",
    ),
    pytest.param(
        GOOD.replace('delete_requires = ["hpss"]', 'delete_requires = ["dtn"]'),
        "retention rules form a cycle",
        id="requires-cycle",
    ),
    pytest.param(
        GOOD.replace('delete_requires = ["hpss"]', "delete_requires = []"),
        "retention.cfs.delete_requires: is empty",
        id="requires-empty",
    ),
    pytest.param(
        GOOD + '[[copy]]\nfrom = "hpss"\nto = "cfs"\n',
        "copy[2].to: 'cfs' already receives copies from 'dtn'",
        id="two-sources",
    ),
    pytest.param(
        GOOD.replace('from = "dtn"\nto = "cfs"', 'from = "hpss"\nto = "cfs"'),
        "copies form a cycle",
        id="copy-cycle",
    ),
    pytest.param(
        GOOD.replace("keep_days = 180", "keep_days = -1"),
        "retention.dtn.keep_days: Input should be greater than or equal to 0",
        id="negative-retention",
    ),
    pytest.param(
        GOOD + "[safety]\nmax_missing_fraction = 1.5\n",
        "safety.max_missing_fraction: Input should be less than or equal to 1",
        id="fraction-range",
    ),
    pytest.param(
        GOOD + "[inventory2]\nendpoint = 'x'\n", "inventory2: unknown key", id="unknown-section"
    ),
    pytest.param(
        GOOD.replace('endpoint = "dtn"', 'endpoint = "dtn"\nquiet_secs = 3'),
        "inventory.quiet_secs: unknown key",
        id="typo-key",
    ),
    pytest.param(
        GOOD.replace('verify = "checksum"', "") + "[retention.hpss]\nkeep_days = 1\n"
        'delete_requires = ["cfs"]\nverify = "md5"\n',
        "retention.hpss.verify: Input should be 'size' or 'checksum'",
        id="verify-level",
    ),
    pytest.param(
        GOOD + '[approval]\nrequired_for = ["prune"]\n',
        "approval.required_for[0]: Input should be 'copy', 'delete', 'register' or "
        "'update_catalog'",
        id="approval-kind",
    ),
    pytest.param(
        GOOD.replace('[[copy]]\nfrom = "cfs"\nto = "hpss"\n', ""),
        "retention.cfs.delete_requires: 'hpss' never receives copies",
        id="requires-never-copied",
    ),
    pytest.param(
        GOOD.replace('to = "cfs"', 'to = "dtn"', 1),
        "copy[0]: copies 'dtn' onto itself",
        id="self-copy",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_config_is_rejected_with_file_key_and_expectation(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert expected in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [BAD[1].values, BAD[5].values, BAD[11].values],
    ids=["kind", "cycle", "unknown"],
)
def test_cli_exits_78_on_a_bad_config(tmp_path: Path, run_cli, text: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, text)
    for mode in (["--dry-run"], ["--reconcile", "--once"]):
        done = run_cli(*mode, config=path)
        assert done.returncode == 78, done.stderr
        assert expected in done.stderr
        assert done.stdout == ""


# ---- two endpoints are never the same storage ------------------------------------------------

GLOBUS_CFS = '[endpoints.cfs]\nkind = "globus"\ncollection = "{collection}"\nroot = "{root}"\n'
DTN_COLLECTION = "6BE3A9D2-0C8E-4D1F-9B1A-2F1E5C7A9D01"


def globus_dtn(text: str) -> str:
    return text.replace(
        '[endpoints.dtn]\nkind = "local"\npath = "dtn"',
        f'[endpoints.dtn]\nkind = "globus"\ncollection = "{DTN_COLLECTION}"\n'
        'root = "/data/bl931/raw"\npath = "dtn"',
    )


def with_cfs(text: str, cfs: str) -> str:
    return text.replace('[endpoints.cfs]\nkind = "local"\npath = "cfs"\n', cfs)


SHARED = [
    pytest.param(
        with_cfs(GOOD, '[endpoints.cfs]\nkind = "local"\npath = "./dtn/"\n'),
        "endpoints.cfs.path: is the same storage as endpoints.dtn.path",
        id="same-path",
    ),
    pytest.param(
        with_cfs(GOOD, '[endpoints.cfs]\nkind = "local"\npath = "dtn/copies"\n'),
        "endpoints.cfs.path: lies inside endpoints.dtn.path",
        id="cfs-inside-dtn",
    ),
    pytest.param(
        GOOD.replace('path = "hpss"', 'path = "."'),
        "endpoints.hpss.path: contains endpoints.dtn.path",
        id="hpss-contains-all",
    ),
    pytest.param(
        globus_dtn(
            with_cfs(
                GOOD, GLOBUS_CFS.format(collection=DTN_COLLECTION.lower(), root="/data/bl931/")
            )
        ),
        "endpoints.cfs.root: contains endpoints.dtn.root",
        id="globus-same-collection-nested",
    ),
    pytest.param(
        globus_dtn(
            with_cfs(
                GOOD, GLOBUS_CFS.format(collection=DTN_COLLECTION, root="/data/bl931/raw/../raw")
            )
        ),
        "endpoints.cfs.root: is the same storage as endpoints.dtn.root",
        id="globus-same-collection-same-root",
    ),
    pytest.param(
        globus_dtn(with_cfs(GOOD, '[endpoints.cfs]\nkind = "local"\npath = "dtn"\n')),
        "endpoints.cfs.path: is the same storage as endpoints.dtn.path",
        id="globus-mounted-path-equals-local",
    ),
]


@pytest.mark.parametrize(("text", "expected"), SHARED)
def test_endpoints_sharing_storage_are_rejected_naming_both_keys(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert expected in str(caught.value)


def test_the_same_root_on_another_collection_is_separate_storage(tmp_path: Path) -> None:
    other = "0F0E0D0C-0B0A-4909-8807-060504030201"
    text = globus_dtn(with_cfs(GOOD, GLOBUS_CFS.format(collection=other, root="/data/bl931/raw")))
    config = load_config(write(tmp_path, text))
    assert config.endpoints["cfs"].root == "/data/bl931/raw"


def test_a_symlink_to_another_root_is_the_same_storage(tmp_path: Path) -> None:
    (tmp_path / "dtn").mkdir()
    (tmp_path / "cfs").symlink_to(tmp_path / "dtn")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD))
    message = str(caught.value)
    assert "endpoints.cfs.path: is the same storage as endpoints.dtn.path" in message
    assert f"{tmp_path / 'cfs'} → {tmp_path / 'dtn'}" in message


# ---- errors a newcomer can act on: the line, TOML's words, one error per mistake -----------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            GOOD.replace("tape = true", 'tape = "yes"'),
            ":13: endpoints.hpss.tape: should be true or false (a TOML boolean, unquoted) "
            "(got 'yes')",
            id="quoted-bool",
        ),
        pytest.param(
            GOOD.replace("tape = true", "tape = 1"),
            ":13: endpoints.hpss.tape: should be true or false",
            id="number-for-bool",
        ),
        pytest.param(
            GOOD.replace('endpoint = "dtn"', 'endpoint = "dtn"\ndepth = "2"'),
            ":4: inventory.depth: should be a whole number (unquoted) (got '2')",
            id="quoted-int",
        ),
        pytest.param(
            GOOD.replace("keep_days = 180", 'keep_days = "180"'),
            ":21: retention.dtn.keep_days: should be a number (unquoted) (got '180')",
            id="quoted-float",
        ),
        pytest.param(
            GOOD.replace('delete_requires = ["cfs"]', 'delete_requires = "cfs"'),
            ':22: retention.dtn.delete_requires: should be a list, e.g. ["a", "b"] (got \'cfs\')',
            id="string-for-list",
        ),
    ],
)
def test_wrong_types_are_named_in_toml_words_with_their_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Before: `tape = "yes"` was taken for true, `depth = "2"` for 2, and a string for a list
    was "Input should be a valid tuple", all without a line."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}{expected}" in str(caught.value)
    assert "tuple" not in str(caught.value)


def test_a_misspelt_required_key_is_one_error_naming_the_key_it_stands_for(
    tmp_path: Path,
) -> None:
    """Before: two errors, `kind: Field required` and `kinf: unknown key`."""
    path = write(
        tmp_path, GOOD.replace('kind = "local"\npath = "cfs"', 'kinf = "local"\npath = "cfs"')
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}:8: endpoints.cfs.kinf: unknown key; did you mean 'kind'? (it is required)"
    )


def test_a_misspelt_endpoint_name_is_one_error_listing_its_uses(tmp_path: Path) -> None:
    """Before: one error per reference to the name (four for a renamed table)."""
    path = write(tmp_path, GOOD.replace("[endpoints.cfs]", "[endpoints.cfz]"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}:16: copy[0].to: unknown endpoint 'cfs' (defined: cfz, dtn, hpss); did you mean "
        "'cfz'?; also used at copy[1].from, retention.dtn.delete_requires, retention.cfs"
    )


def test_key_lines_follow_tables_arrays_of_tables_and_dotted_keys() -> None:
    from engine.config_errors import key_lines, line_of

    lines = key_lines(GOOD + '[catalog]\nscicat.url = "x"  # a comment\n"quoted" = 1\n')
    assert lines[("endpoints", "hpss", "tape")] == 13
    assert lines[("copy", 1, "to")] == 19
    assert lines[("catalog", "scicat", "url")] == 27
    assert lines[("catalog", "quoted")] == 28
    assert line_of(lines, ("retention", "cfs", "verify")) == 23  # missing key: its table
    assert line_of(lines, ("nowhere",)) is None


SFAPI_TAPE = GOOD.replace(
    '[endpoints.hpss]\nkind = "local"\npath = "hpss"\ntape = true\n',
    '[endpoints.hpss]\nkind = "tape"\nrunner = "sfapi"\nroot = "/home/a/alsdev/9.3.1"\n',
)


def test_an_sfapi_tape_endpoint_reads_its_sfapi_table(tmp_path: Path) -> None:
    text = SFAPI_TAPE + (
        '[endpoints.hpss.sfapi]\nkey_file = "keys/bl931.pem"\naccount = "als"\n'
        'output_dir = "/global/cfs/jobs"\n'
    )
    config = load_config(write(tmp_path, text))
    sfapi = config.endpoints["hpss"].sfapi
    assert sfapi is not None
    assert sfapi.account == "als" and sfapi.qos == "xfer"
    assert sfapi.key_file == tmp_path / "keys" / "bl931.pem"  # beside the config, like `path`


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        pytest.param(SFAPI_TAPE, "endpoints.hpss.sfapi", 'runner = "sfapi" needs', id="missing"),
        pytest.param(
            GOOD + '[endpoints.hpss.sfapi]\noutput_dir = "/jobs"\n',
            "endpoints.hpss.sfapi",
            'only for a tape endpoint with runner = "sfapi"',
            id="not-sfapi",
        ),
        pytest.param(
            SFAPI_TAPE + '[endpoints.hpss.sfapi]\naccount = "als"\n',
            "endpoints.hpss.sfapi.output_dir",
            "required",
            id="no-output-dir",
        ),
        pytest.param(
            SFAPI_TAPE + '[endpoints.hpss.sfapi]\noutput_dir = "/jobs"\nquos = "xfer"\n',
            "endpoints.hpss.sfapi.quos",
            "unknown key",
            id="typo",
        ),
    ],
)
def test_a_bad_sfapi_table_names_its_key(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert key in str(caught.value) and expected in str(caught.value), str(caught.value)
