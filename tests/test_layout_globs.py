"""Include/exclude globs against the semantics the docs promise, checked by an independent oracle.

The documented dialect (docs/watcher.md, "Include and exclude globs"): a pattern is matched
component by component against the path relative to the endpoint root; a component that is
exactly `**` spans any number of folders (zero or more before another component, one or more at
the end); elsewhere `*` matches any run of characters within one component, `?` one character,
`[...]` one character of a set (`[!...]` or `[^...]`: not in the set); none of them ever matches
`/`; a leading dot is an ordinary character; everything else is literal.

The oracle below implements exactly that over a generated token structure (it never parses a
glob string), so a difference is a difference between the library's translation and the docs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.layout import ENGINE_TEMP_PREFIX, GlobSet, ScanLayout, glob_to_regex


@dataclass(frozen=True)
class Lit:
    char: str


@dataclass(frozen=True)
class Star:
    pass


@dataclass(frozen=True)
class Quest:
    pass


@dataclass(frozen=True)
class Klass:
    members: str  # single characters
    negated: str = ""  # "", "!" or "^"


Token = Lit | Star | Quest | Klass
Component = tuple[Token, ...]

LITERALS = "ab0.^-+({"  # regex metacharacters and would-be extglob/brace openers are literal
PATH_CHARS = "ab0.^-\n"  # a newline is a legal file-name character


def render(component: Component) -> str:
    out = []
    for token in component:
        if isinstance(token, Lit):
            out.append(token.char)
        elif isinstance(token, Star):
            out.append("*")
        elif isinstance(token, Quest):
            out.append("?")
        else:
            out.append(f"[{token.negated}{token.members}]")
    return "".join(out)


def _component_matches(tokens: Component, name: str) -> bool:
    if not tokens:
        return name == ""
    head, rest = tokens[0], tokens[1:]
    if isinstance(head, Star):
        return any(_component_matches(rest, name[i:]) for i in range(len(name) + 1))
    if not name:
        return False
    char = name[0]
    if isinstance(head, Lit):
        ok = char == head.char
    elif isinstance(head, Quest):
        ok = True
    else:
        ok = (char in head.members) != bool(head.negated)
    return ok and _component_matches(rest, name[1:])


def oracle(pattern: tuple[Component, ...], parts: tuple[str, ...]) -> bool:
    """Does the documented dialect match `parts` (a path split on "/") with `pattern`?"""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if render(head) == "**":
        least = 0 if rest else 1  # a trailing `**` needs something below it
        return any(oracle(rest, parts[i:]) for i in range(least, len(parts) + 1))
    return bool(parts) and _component_matches(head, parts[0]) and oracle(rest, parts[1:])


TOKENS: st.SearchStrategy[Token] = st.one_of(
    st.builds(Lit, st.sampled_from(LITERALS)),
    st.just(Star()),
    st.just(Quest()),
    st.builds(
        Klass,
        st.text(alphabet="ab0.", min_size=1, max_size=3),
        st.sampled_from(["", "!", "^"]),
    ),
)
COMPONENTS: st.SearchStrategy[Component] = st.one_of(
    st.lists(TOKENS, min_size=1, max_size=4).map(tuple),
    st.just((Star(), Star())),  # renders as `**`
)
PATTERNS = st.lists(COMPONENTS, min_size=1, max_size=4).map(tuple)
NAMES = st.text(alphabet=PATH_CHARS, min_size=1, max_size=4).filter(lambda n: n not in {".", ".."})
PATHS = st.lists(NAMES, min_size=1, max_size=4).map(tuple)


def as_glob(pattern: tuple[Component, ...]) -> str:
    return "/".join(render(c) for c in pattern)


@settings(max_examples=600, deadline=None)
@given(PATTERNS, PATHS)
def test_a_glob_matches_exactly_what_the_documented_dialect_matches(
    pattern: tuple[Component, ...], parts: tuple[str, ...]
) -> None:
    glob = as_glob(pattern)
    path = "/".join(parts)
    expected = oracle(pattern, parts)
    assert (glob_to_regex(glob).match(path) is not None) == expected, (glob, path)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(PATTERNS, min_size=1, max_size=2),
    st.lists(PATTERNS, max_size=2),
    PATHS,
    st.sampled_from(["file", "directory"]),
)
def test_a_layout_accepts_a_file_exactly_as_the_documented_rules_say(
    include: list[tuple[Component, ...]],
    exclude: list[tuple[Component, ...]],
    parts: tuple[str, ...],
    unit: str,
) -> None:
    """Excluded if the path or any folder above it matches an exclude; else included if the path
    matches an include. Whole walks (`folders_checked`) answer the same for what they reach."""
    layout = ScanLayout(
        unit=unit,
        depth=1,
        include=tuple(as_glob(p) for p in include),
        exclude=tuple(as_glob(p) for p in exclude),
    )
    path = "/".join(parts)
    excluded = any(oracle(p, parts[:i]) for p in exclude for i in range(1, len(parts) + 1))
    accepted = not excluded and any(oracle(p, parts) for p in include)
    if not accepted:
        expected = None
    elif unit == "file":
        expected = path
    else:
        expected = parts[0] if len(parts) > 1 else None
    assert layout.scan_of(path) == expected, (layout, path)
    folders = ["/".join(parts[:i]) for i in range(1, len(parts))]
    if not any(layout.walk_prunes(folder) for folder in folders):
        assert layout.scan_of(path, folders_checked=True) == expected


# The edge cases where the library's dialect differs from the hand-written translation it
# replaced (each is listed in docs/watcher.md).


def test_a_character_class_never_matches_a_slash() -> None:
    assert not glob_to_regex("a[!x]b").match("a/b")
    assert not glob_to_regex("a[^x]b").match("a/b")
    assert glob_to_regex("a[!x]b").match("a-b")


def test_caret_negates_a_class_like_bang() -> None:
    assert glob_to_regex("scan_[^0-9].h5").match("scan_x.h5")
    assert not glob_to_regex("scan_[^0-9].h5").match("scan_7.h5")


def test_double_star_inside_a_component_is_a_plain_star() -> None:
    assert glob_to_regex("raw**/x.h5").match("raw_1/x.h5")
    assert not glob_to_regex("raw**/x.h5").match("raw/deep/x.h5")


def test_backslash_escapes_the_next_character() -> None:
    assert glob_to_regex(r"scan\*.h5").match("scan*.h5")
    assert not glob_to_regex(r"scan\*.h5").match("scan1.h5")


def test_a_name_ending_in_a_newline_is_not_a_near_match() -> None:
    assert not glob_to_regex("**/*.h5").match("a.h5\n")
    assert glob_to_regex("**/*.h5").match("a\n.h5")


@pytest.mark.parametrize("pattern", ["{a,b}.h5", "@(a).h5", "!a.h5", "+(a).h5"])
def test_braces_extglobs_and_leading_bang_are_literal(pattern: str) -> None:
    assert glob_to_regex(pattern).match(pattern)
    assert not glob_to_regex(pattern).match("a.h5")


def test_engine_temp_names_stay_out_whatever_the_globs_say() -> None:
    layout = ScanLayout(include=(f"**/{ENGINE_TEMP_PREFIX}*",), exclude=())
    assert layout.scan_of(f"{ENGINE_TEMP_PREFIX}copy") is None


@settings(max_examples=300, deadline=None)
@given(PATTERNS, PATHS)
def test_a_glob_set_answers_like_its_globs_one_by_one(
    pattern: tuple[Component, ...], parts: tuple[str, ...]
) -> None:
    """`**/NAME` globs are matched against the file name alone: the same answer, faster."""
    glob, path = as_glob(pattern), "/".join(parts)
    for globs in ((glob,), (f"**/{glob}",), (glob, "**/*.tmp")):
        expected = any(glob_to_regex(g).match(path) for g in globs)
        assert GlobSet(globs).match(path) == expected, (globs, path)


def test_a_bracket_right_after_the_opening_one_is_a_member() -> None:
    """POSIX: `[]a]` is `]` or `a` (the old translation raised on it)."""
    assert glob_to_regex("[]a]").match("]")
    assert glob_to_regex("[]a]").match("a")
    assert not glob_to_regex("[!]a]").match("]")
    assert glob_to_regex("[!]a]").match("b")


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("[$]x", "$x", True),
        ("[!$]x", "$x", False),
        ("a$b", "a$b", True),
        (r"a\$", "a$", True),
        ("**", ".\n", True),  # a name "." + newline is an ordinary name, not the folder "."
        ("*", "..\n", True),
        ("**/*.h5", "x/a.h5\n", False),
    ],
)
def test_dollar_signs_and_newlines_are_ordinary_characters(
    pattern: str, path: str, matches: bool
) -> None:
    assert (glob_to_regex(pattern).match(path) is not None) == matches
