"""Config errors a person can act on: one error per mistake, in TOML's words, with its line.

`engine.config` validates with pydantic and cross-key checks; this module turns what they
report into the lines an operator reads:

- *where*: `file:line: key` — the line of the key in the TOML text (or of its table header when
  the key is missing), found by `key_lines`, a small line scanner (tomllib keeps no positions);
- *in TOML's words*: "a list" rather than "a valid tuple", "true or false" rather than "a valid
  boolean", and the value that was given;
- *one error per mistake*: a misspelt key is one error naming the key it probably meant (not
  "unknown key" plus "field required" for the key it replaced); a misspelt endpoint name is one
  error listing every place that uses it (not one per reference).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*="""
)
_PART = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*""")

Loc = tuple[str | int, ...]


def _split(dotted: str) -> list[str]:
    return [p.strip("\"'") for p in _PART.findall(dotted)]


def key_lines(text: str) -> dict[Loc, int]:
    """(table, …, key) → 1-based line of its definition; tables map to their header's line.

    Arrays of tables (`[[copy]]`) are numbered in order: `("copy", 0, "to")`. Multi-line
    values are not followed: a line inside a multi-line string that looks like `key =` could be
    taken for a key, which only moves an error's line number, never what is validated.
    """
    lines: dict[Loc, int] = {}
    table: Loc = ()
    arrays: dict[Loc, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            path: Loc = tuple(_split(header.group(2)))
            if header.group(1) == "[[":
                index = arrays.get(path, -1) + 1
                arrays[path] = index
                path = (*path, index)
            table = path
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*table, *_split(key.group(1))), number)
    return lines


def line_of(lines: Mapping[Loc, int], loc: Loc) -> int | None:
    """The line of `loc`, else of the nearest enclosing table that appears in the text."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def parse_key(key: str) -> Loc:
    """`copy[0].to` → ("copy", 0, "to")."""
    out: list[str | int] = []
    for part in key.split("."):
        name, *indexes = part.split("[")
        if name:
            out.append(name)
        out.extend(int(i.rstrip("]")) for i in indexes)
    return tuple(out)


def format_key(loc: Loc) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item).rstrip("_"))
    return "".join(parts) or "(top level)"


_TYPE_WORDS = {
    "tuple_type": 'should be a list, e.g. ["a", "b"]',
    "list_type": 'should be a list, e.g. ["a", "b"]',
    "bool_type": "should be true or false (a TOML boolean, unquoted)",
    "bool_parsing": "should be true or false (a TOML boolean, unquoted)",
    "int_type": "should be a whole number (unquoted)",
    "int_parsing": "should be a whole number (unquoted)",
    "int_from_float": "should be a whole number (unquoted)",
    "float_type": "should be a number (unquoted)",
    "float_parsing": "should be a number (unquoted)",
    "string_type": "should be a string (in quotes)",
    "dict_type": "should be a table ([section] or { key = value })",
    "model_type": "should be a table ([section] or { key = value })",
    "missing": "is required but missing",
}


def _message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    message = _TYPE_WORDS.get(kind) or str(err["msg"])
    if kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
    given = err.get("input")
    if kind != "missing" and "input" in err and not isinstance(given, dict):
        message += f" (got {given!r})"
    return message


def pydantic_problems(errors: Sequence[Mapping[str, Any]]) -> list[tuple[Loc, str]]:
    """(key, message) per mistake: a misspelt key and the required key it stands for are one."""
    errs = [
        dict(e, loc=tuple(str(p).rstrip("_") if isinstance(p, str) else p for p in e["loc"]))
        for e in errors
    ]
    unknown = [e for e in errs if e["type"] == "extra_forbidden"]
    missing = [e for e in errs if e["type"] == "missing"]
    merged: set[int] = set()
    out: list[tuple[Loc, str]] = []
    for e in unknown:
        table, name = e["loc"][:-1], str(e["loc"][-1])
        wanted = [str(m["loc"][-1]) for m in missing if m["loc"][:-1] == table]
        guess = difflib.get_close_matches(name, wanted, n=1)
        if guess:
            merged.add(next(i for i, m in enumerate(missing) if m["loc"] == (*table, guess[0])))
            out.append((e["loc"], f"unknown key; did you mean {guess[0]!r}? (it is required)"))
        else:
            out.append((e["loc"], "unknown key (a typo? see config.example.toml)"))
    for i, m in enumerate(missing):
        if i not in merged:
            out.append((m["loc"], _message(m)))
    out += [
        (e["loc"], _message(e)) for e in errs if e["type"] not in ("extra_forbidden", "missing")
    ]
    return sorted(out, key=lambda p: [str(x) for x in p[0]])


def unknown_endpoint(name: str, defined: Iterable[str], others: Sequence[str]) -> str:
    """The one error for a misspelt endpoint name: what is defined, the likely name, and every
    other key that uses it."""
    listed = sorted(defined)
    text = f"unknown endpoint {name!r} (defined: {', '.join(listed)})"
    guess = difflib.get_close_matches(name, listed, n=1)
    if guess:
        text += f"; did you mean {guess[0]!r}?"
    if others:
        text += f"; also used at {', '.join(others)}"
    return text


def render(where: str, lines: Mapping[Loc, int] | None, problems: Iterable[tuple[Loc, str]]) -> str:
    """`file:line: key: message`, one per problem."""
    out = []
    for loc, message in problems:
        number = line_of(lines, loc) if lines else None
        place = f"{where}:{number}" if number else where
        out.append(f"{place}: {format_key(loc)}: {message}")
    return "\n".join(out)
