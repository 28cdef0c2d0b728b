"""`NO_COLOR=1` turns every colour into a shade of grey, as docs/tui.md now says.

Before, the page said "a monochrome screen" and was read as "no colour codes"; the real TUI
(Textual's `Monochrome` filter) keeps writing colour codes, all of them greys, so that the cursor
row and dialogs stay visible. Checked on the bytes the real TUI writes to a pseudo-terminal:
every SGR colour it sets under `NO_COLOR` is a grey, while the same screen without it has hues
(so the check can tell them apart), and the states still read as words.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.tui.conftest import MakeScenario
from tests.tui.test_pty import Terminal, _env

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs a Linux pty")

SGR = re.compile(r"\x1b\[([0-9;:]*)m")


def colour_parameters(output: str) -> list[str]:
    """The colour-setting parameters of every SGR sequence in `output`."""
    found = []
    for match in SGR.finditer(output):
        params = [p for p in re.split("[;:]", match.group(1)) if p]
        i = 0
        while i < len(params):
            p = int(params[i])
            if p in (38, 48, 58):  # extended colour: 5;N or 2;R;G;B follow
                found.append(";".join(params[i : i + 5]))
                i += 3 if i + 1 < len(params) and params[i + 1] == "5" else 5
                continue
            if 30 <= p <= 37 or 40 <= p <= 47 or 90 <= p <= 97 or 100 <= p <= 107:
                found.append(str(p))
            i += 1
    return found


GREY_BASIC = {30, 37, 90, 97, 40, 47, 100, 107}


def is_grey(parameter: str) -> bool:
    """Whether one colour parameter (`37`, `38;5;N`, `48;2;R;G;B`) sets a grey."""
    parts = [int(p) for p in parameter.split(";")]
    if len(parts) == 1:
        return parts[0] in GREY_BASIC
    if parts[1] == 5:  # the 256-colour palette
        n = parts[2]
        if n in (0, 7, 8, 15) or 232 <= n <= 255:
            return True
        if 16 <= n <= 231:
            r, g, b = (n - 16) // 36, (n - 16) // 6 % 6, (n - 16) % 6
            return r == g == b
        return False
    r, g, b = parts[2:5]
    return max(r, g, b) - min(r, g, b) <= 2


def screen(make_scenario: MakeScenario, tmp_path: Path, **env: str) -> str:
    scenario = make_scenario("awaiting_approval")
    config = scenario.store_path.parent.parent / "bl931.toml"
    term = Terminal(
        [sys.executable, "-m", "bl931tui", "--config", str(config), "--no-mouse"],
        env=_env(tmp_path, **env),
        size=(120, 30),
    )
    try:
        assert term.read_until("showing 8 of 8 scans"), term.output[-2000:]
        term.send("q")
        assert term.wait() == 0
        return term.output
    finally:
        term.close()


def test_no_color_leaves_only_greys(make_scenario: MakeScenario, tmp_path: Path) -> None:
    plain = screen(make_scenario, tmp_path, NO_COLOR="1")
    colours = colour_parameters(plain)
    assert colours, "expected greys (the cursor row is a grey background)"
    assert [c for c in colours if not is_grey(c)] == []
    assert "awaiting approval" in plain


def test_without_no_color_the_same_screen_is_in_colour(
    make_scenario: MakeScenario, tmp_path: Path
) -> None:
    coloured = screen(make_scenario, tmp_path)
    assert [c for c in colour_parameters(coloured) if not is_grey(c)] != []
