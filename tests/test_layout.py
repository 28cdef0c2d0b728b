"""Glob semantics of scan layouts: which files form which scans, identically on every endpoint."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.layout import ENGINE_TEMP_PREFIX, ScanLayout, glob_to_regex

DEFAULT_EXCLUDE = ("**/.*", "**/*.tmp", "**/*.part")


@pytest.mark.parametrize(
    "path",
    ["a.h5", "2026/a.h5", "2026/11/25/deep/scan.h5", ".h5"],
)
def test_double_star_slash_matches_at_any_depth_including_the_root(path: str) -> None:
    assert glob_to_regex("**/*.h5").match(path)


@pytest.mark.parametrize("path", ["a.h5x", "a.h5/frame.tif", "2026/a.h", "a_h5"])
def test_double_star_slash_needs_the_suffix_on_the_last_component(path: str) -> None:
    assert not glob_to_regex("**/*.h5").match(path)


def test_single_star_and_question_mark_stay_within_one_component() -> None:
    assert glob_to_regex("*.h5").match("a.h5")
    assert not glob_to_regex("*.h5").match("2026/a.h5")
    assert glob_to_regex("scan_?.h5").match("scan_1.h5")
    assert not glob_to_regex("scan_?.h5").match("scan_12.h5")
    assert not glob_to_regex("scan_?.h5").match("scan_/.h5")


def test_character_classes_and_negation() -> None:
    assert glob_to_regex("scan_[0-9].h5").match("scan_7.h5")
    assert not glob_to_regex("scan_[0-9].h5").match("scan_x.h5")
    assert glob_to_regex("scan_[!0-9].h5").match("scan_x.h5")
    assert not glob_to_regex("scan_[!0-9].h5").match("scan_7.h5")


def test_regex_metacharacters_in_patterns_are_literal() -> None:
    assert glob_to_regex("run(1)+.h5").match("run(1)+.h5")
    assert not glob_to_regex("run(1)+.h5").match("run11.h5")


@pytest.mark.parametrize(
    "path",
    [".hidden", ".cache/a.h5", "2026/.cache/sub/b.h5", "2026/11/.partial.h5", "a.tmp", "x/y.part"],
)
def test_default_excludes_hide_dot_files_dot_folders_contents_and_partials(path: str) -> None:
    layout = ScanLayout(exclude=DEFAULT_EXCLUDE)
    assert layout.excluded(path)
    assert layout.scan_of(path) is None


@pytest.mark.parametrize("path", ["a.h5", "2026/11/scan_0001.h5", "2026/not.hidden/x.h5"])
def test_ordinary_files_are_their_own_scans(path: str) -> None:
    assert ScanLayout(exclude=DEFAULT_EXCLUDE).scan_of(path) == path


def test_engine_temp_files_belong_to_no_scan_even_without_excludes() -> None:
    layout = ScanLayout()
    assert layout.scan_of(f"2026/{ENGINE_TEMP_PREFIX}x1y2.tmp") is None
    assert layout.scan_of(f"2026/{ENGINE_TEMP_PREFIX}dir/a.h5") is None
    assert layout.scan_of(f"2026/{ENGINE_TEMP_PREFIX}x1y2.tmp", folders_checked=True) is None


def test_include_limits_which_files_form_scans() -> None:
    layout = ScanLayout(include=("**/*.h5",))
    assert layout.scan_of("2026/a.h5") == "2026/a.h5"
    assert layout.scan_of("2026/a.txt") is None


def test_directory_units_at_depth_two() -> None:
    layout = ScanLayout(unit="directory", depth=2, exclude=DEFAULT_EXCLUDE)
    assert layout.scan_of("2026/scan_0001/frame_000.tif") == "2026/scan_0001"
    assert layout.scan_of("2026/scan_0001/sub/frame_001.tif") == "2026/scan_0001"
    assert layout.scan_of("2026/notes.txt") is None  # above the scan depth
    assert layout.scan_of("top.h5") is None
    assert layout.scan_of("2026/scan_0001/.lock") is None


def test_walk_prunes_excluded_folders_but_never_the_root() -> None:
    layout = ScanLayout(exclude=DEFAULT_EXCLUDE)
    assert not layout.walk_prunes("")
    assert layout.walk_prunes(".snapshot")
    assert layout.walk_prunes("2026/.cache")
    assert not layout.walk_prunes("2026/11")


COMPONENTS = st.sampled_from(
    ["2026", "11", ".cache", "scan_1.h5", "a.tmp", "b.part", ".x.h5", "x y", "ü", "[a]"]
)


@given(st.lists(COMPONENTS, min_size=1, max_size=5))
def test_folders_checked_answers_like_a_full_check_for_walked_paths(parts: list[str]) -> None:
    """A walk that pruned every excluded folder may skip re-checking them for each file."""
    path = "/".join(parts)
    for layout in (
        ScanLayout(exclude=DEFAULT_EXCLUDE),
        ScanLayout(unit="directory", depth=2, include=("**/*.h5",), exclude=DEFAULT_EXCLUDE),
    ):
        folders = ["/".join(parts[:i]) for i in range(1, len(parts))]
        if any(layout.walk_prunes(folder) for folder in folders):
            continue  # a walk never reaches this file
        assert layout.scan_of(path, folders_checked=True) == layout.scan_of(path)
