"""Does JavaScript's `new Date(s)` accept `s`? A port of V8's date-string parser, for the fake SciCat.

The SciCat backend (scicat-backend-next, `src/common/pipes/filter.pipe.ts`, `WherePipe`, since
v4.27) replaces every leaf *string* of a `where` filter by `new Date(s)` when that is a valid date.
V8 (Node) first tries the ES5 ISO format and then a lenient legacy parser (V8
`src/date/dateparser-inl.h`, `DateParser::Parse`, and `src/date/dateparser.cc`, the Day/Time/
TimeZone composers). This module ports the legacy rules that decide *whether* a string is a date:

- words are runs of characters >= "A" (so `_`, `^`, letters); words are ignored before the first
  number, illegal after it, and a word glued to a following number (`a1`, `scan_0001`, `BL931`) is
  illegal; a word whose first three letters name a month is a month; `am`/`pm`, time-zone names
  (`utc`, `gmt`, `z`, `pst`, ...) are understood; parenthesised text is skipped;
- numbers followed by `:` are time fields; other numbers are day fields (at most three), with `-`
  after them skipped; missing month/day default to 1; a year 0-49 means 20xx and 50-99 19xx;
- everything else (`/`, `.`, `,`, spaces) separates.

So `"/ALS/9.3.1"` and `"ALS 9.3.1"` are 2001-09-03, `"scan 1"` is 2001-01-01, `"0001"` is the year 1,
`"/data/2026-04-03"` is 2026-04-03, while `"/ALS/BL931"`, `"2026/11/scan_0001.txt"` and
`"bl931/abc-123"` stay strings. `tests/catalog/test_v8_date.py` compares this with the real
`node` where one is installed. Only validity (and the day fields) matter to the fake; time zones are
parsed for validity but not applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_ZONES = {"ut", "utc", "z", "gmt", "cdt", "cst", "edt", "est", "mdt", "mst", "pdt", "pst"}
_SYMBOLS = ":-+.)"

# ES5 date-time string (ECMA-262 §21.4.1.32): YYYY[-MM[-DD]][THH:mm[:ss[.sss]][Z|±HH:mm]]
_ES5 = re.compile(
    r"(?P<y>\d{4}|[+-]\d{6})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2}))?)?"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?\Z"
)


@dataclass
class _Token:
    kind: str  # "number" | "word" | "symbol" | "space" | "unknown" | "end"
    text: str = ""
    number: int = 0


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isdigit() and ch.isascii():
            j = i
            while j < n and text[j].isdigit() and text[j].isascii():
                j += 1
            out.append(_Token("number", text[i:j], int(text[i:j])))
            i = j
        elif ch in _SYMBOLS:
            out.append(_Token("symbol", ch))
            i += 1
        elif ch.isspace():
            while i < n and text[i].isspace():
                i += 1
            out.append(_Token("space"))
        elif ch == "(":
            depth = 0
            while i < n:
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
                if depth == 0:
                    break
            out.append(_Token("unknown"))
        elif ch >= "A":
            j = i
            while j < n and text[j] >= "A" and not text[j].isspace():
                j += 1
            out.append(_Token("word", text[i:j].lower()))
            i = j
        else:
            out.append(_Token("unknown", ch))
            i += 1
    out.append(_Token("end"))
    return out


def _keyword(word: str) -> tuple[str, int]:
    if len(word) >= 3 and word[:3] in _MONTHS:
        return "month", _MONTHS.index(word[:3]) + 1
    if word in ("am", "pm"):
        return "ampm", 0 if word == "am" else 12
    if word in _ZONES:
        return "zone", 0
    return "other", 0


def _es5(text: str) -> bool | None:
    match = _ES5.match(text)
    if match is None:
        return None
    month, day = int(match["m"] or 1), int(match["d"] or 1)
    try:
        date(2000, month, min(day, 29) if month == 2 else day)
    except ValueError:
        return False
    hour, minute, second = int(match["H"] or 0), int(match["M"] or 0), int(match["S"] or 0)
    return (hour < 24 or (hour == 24 and minute == second == 0)) and minute < 60 and second < 60


def _legacy(text: str) -> bool:
    tokens = _tokens(text)
    day: list[int] = []
    named_month: int | None = None
    time: list[int] = []
    hour_offset: int | None = None
    zone_set = False
    read_number = False
    i = 0

    def peek() -> _Token:
        return tokens[i]

    def skip(symbol: str) -> bool:
        nonlocal i
        if tokens[i].kind == "symbol" and tokens[i].text == symbol:
            i += 1
            return True
        return False

    def time_expecting(n: int) -> bool:
        k = len(time)
        return (k == 1 and 0 <= n < 60) or (k == 2 and 0 <= n < 60) or (k == 3 and 0 <= n < 1000)

    while tokens[i].kind != "end":
        token = tokens[i]
        i += 1
        if token.kind == "number":
            read_number = True
            n = token.number
            if skip(":"):
                if skip(":"):
                    if time:
                        return False
                    time += [n, 0]
                else:
                    if len(time) >= 4:
                        return False
                    time.append(n)
                    skip(".")
            elif skip(".") and time_expecting(n):
                time.append(n)
                if peek().kind != "number":
                    return False
                i += 1
                time += [0] * (4 - len(time))
            elif time_expecting(n):
                time.append(n)
                time += [0] * (4 - len(time))
                nxt = peek()
                if not (
                    nxt.kind in ("end", "space")
                    or (nxt.kind == "word" and nxt.text == "z")
                    or (nxt.kind == "symbol" and nxt.text in "+-")
                ):
                    return False
            else:
                if len(day) == 3:
                    return False
                day.append(n)
                skip("-")
        elif token.kind == "word":
            kind, value = _keyword(token.text)
            if kind == "ampm" and time:
                hour_offset = value
            elif kind == "month":
                named_month = value
                skip("-")
            elif kind == "zone" and read_number:
                zone_set = True
            else:
                if read_number or peek().kind == "number":
                    return False
        elif token.kind == "symbol" and token.text in "+-" and (zone_set or time):
            read_number = True
            length = 0
            if peek().kind == "number":
                length = len(peek().text)
                i += 1
            if not (peek().kind == "symbol" and peek().text == ":") and length not in (1, 2, 3, 4):
                return False
        elif token.kind == "symbol" and token.text in "+-)" and read_number:
            return False
    return _write_day(day, named_month) and _write_time(time, hour_offset)


def _write_day(day: list[int], named_month: int | None) -> bool:
    # V8 pads the day fields with 1 *before* choosing the order, so "2026/11" is year-month.
    if not day:
        return False
    comp = day + [1] * (3 - len(day))
    year = 0
    if named_month is None:
        if not 1 <= comp[0] <= 31:
            year, month, dom = comp
        else:
            month, dom, year = comp
    else:
        month = named_month
        if not 1 <= comp[0] <= 31:
            year, dom = comp[0], comp[1]
        else:
            dom, year = comp[0], comp[1]
    if 0 <= year <= 49:
        year += 2000
    elif 50 <= year <= 99:
        year += 1900
    return 1 <= month <= 12 and 1 <= dom <= 31 and year <= 275_760


def _write_time(time: list[int], hour_offset: int | None) -> bool:
    hour, minute, second, ms = [*time, 0, 0, 0, 0][:4]
    if hour_offset is not None:
        if not 0 <= hour <= 12:
            return False
        hour = hour % 12 + hour_offset
    if hour < 24 and minute < 60 and second < 60 and ms < 1000:
        return True
    return hour == 24 and minute == second == ms == 0


def js_date_accepts(text: str) -> bool:
    """True when V8's `new Date(text)` is a valid date (so SciCat's WherePipe converts it)."""
    iso = _es5(text)
    if iso is not None:
        return iso
    return _legacy(text)
