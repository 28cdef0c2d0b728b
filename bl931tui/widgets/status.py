"""The context header and the pulse line: where you are, whether the engine lives, what it counts.

Both say their state in words ("stale", "read-only", "paused") so nothing rests on colour alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import humanize
from rich.text import Text
from textual.widgets import Static

from bl931tui.alerts import alerts_summary
from bl931tui.readmodel import CATALOG, Heartbeat, Snapshot

TONE_STYLE = {
    "ok": "green",
    "busy": "cyan",
    "wait": "yellow",
    "bad": "bold red",
    "hold": "magenta",
    "gone": "dim",
    "none": "dim",
    "unknown": "yellow",
}
TONE_GLYPH = {
    "ok": "✓",
    "busy": "⇄",
    "wait": "…",
    "bad": "✗",
    "hold": "⏸",
    "gone": "–",
    "unknown": "?",
}


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    delta = now - moment
    if delta < timedelta(seconds=1):
        return "just now"
    return f"{humanize.naturaldelta(delta)} ago"


def short_delta(delta: timedelta) -> str:
    """`20s`, `5m`, `3h`, `2d`: a duration for a narrow header."""
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def stale_after(interval: float) -> timedelta:
    """How long without a heartbeat before the service counts as silent: one pass interval
    and a margin (a pass beats when it starts and when it ends)."""
    return timedelta(seconds=interval + max(30.0, interval / 2))


def engine_status(
    beat: Heartbeat | None, now: datetime, interval: float, alive: bool | None = None
) -> tuple[str, str, str]:
    """(words, short words, tone) for the service's liveness.

    `alive` is whether the heartbeat's process still runs, when this host can tell (the
    service runs here): a service that died is then shown stopped at once. A clean stop is
    recorded by the service itself. Otherwise a service silent for more than one interval is
    STALE.
    """
    if beat is None or beat.beat_at is None:
        return "no heartbeat yet: no service has run on this store", "not started", "bad"
    if beat.stopped:
        return f"stopped {ago(beat.stopped_at, now)}", "stopped", "bad"
    if alive is False:
        return f"stopped (pid {beat.pid} is gone)", "stopped", "bad"
    age = now - beat.beat_at
    in_pass = beat.pass_started_at is not None and (
        beat.pass_finished_at is None or beat.pass_started_at > beat.pass_finished_at
    )
    if in_pass and (alive or age < timedelta(hours=1)):
        return f"in a pass since {ago(beat.pass_started_at, now)}", "in a pass", "busy"
    if age > stale_after(interval):
        return f"STALE: no heartbeat for {humanize.naturaldelta(age)}", "STALE", "bad"
    return f"ok, beat {ago(beat.beat_at, now)}", "ok", "ok"


class ContextHeader(Static):
    """Beamline, mode, standing alerts, engine status, last pass, when the data was read.

    When the terminal is too narrow for the full line (80 columns), a short form keeps every
    part, "last pass" included, in fewer words.
    """

    DEFAULT_CSS = """
    ContextHeader { height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._args: dict[str, Any] | None = None

    def show(
        self,
        *,
        beamline: str,
        snapshot: Snapshot | None,
        now: datetime,
        interval: float,
        read_only: bool,
        user: str,
        paused: bool,
        alive: bool | None = None,
        read_at: datetime | None = None,
    ) -> None:
        self._args = {
            "beamline": beamline,
            "snapshot": snapshot,
            "now": now,
            "interval": interval,
            "read_only": read_only,
            "user": user,
            "paused": paused,
            "alive": alive,
            "read_at": read_at,
        }
        self._paint()

    def on_resize(self) -> None:
        self._paint()

    def _paint(self) -> None:
        if self._args is None:
            return
        full = self._line(short=False, **self._args)
        width = self.content_region.width
        if width and full.cell_len > width:
            full = self._line(short=True, **self._args)
        self.update(full)

    @staticmethod
    def _line(
        *,
        short: bool,
        beamline: str,
        snapshot: Snapshot | None,
        now: datetime,
        interval: float,
        read_only: bool,
        user: str,
        paused: bool,
        alive: bool | None,
        read_at: datetime | None,
    ) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(beamline if short else f"bl931 · beamline {beamline}", "bold")
        text.append(" │ ")
        # The mode comes first so a narrow terminal never truncates it away.
        mode = "READ-ONLY" if read_only else f"{'rw' if short else 'read-write as'} {user}"
        text.append(mode, "bold yellow" if read_only else "")
        # Standing alerts next: they freeze deletes, so they must survive a narrow terminal too.
        alerts = alerts_summary(snapshot.alerts) if snapshot else ""
        if alerts:
            text.append(" │ ")
            text.append(alerts, "bold red")
        beat = snapshot.heartbeat if snapshot else None
        words, brief, tone = engine_status(beat, now, interval, alive)
        text.append(" │ engine ")
        text.append(brief if short else words, TONE_STYLE[tone])
        if beat is not None and beat.pass_finished_at is not None:
            ok = beat.last_ok_pass_at is not None and beat.last_ok_pass_at >= beat.pass_finished_at
            when = (
                f"{short_delta(now - beat.pass_finished_at)} ago"
                if short
                else ago(beat.pass_finished_at, now)
            )
            text.append(f" │ last pass {when} ")
            text.append("ok" if ok else "with errors", "green" if ok else "red")
        if paused:
            text.append(" │ ")
            text.append("PAUSED", "bold reverse")
        elif read_at is not None and not short:
            text.append(f" │ read {read_at:%H:%M:%S}")
        return text


class PulseLine(Static):
    """Scans per stage and state: `dtn ✓812 ⇄3 …12 ✗1` and what waits on people."""

    DEFAULT_CSS = """
    PulseLine { height: 1; padding: 0 1; background: $boost; }
    """

    def show(self, snapshot: Snapshot | None, *, missing: str | None = None) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        if missing is not None:
            text.append(f"no state store yet at {missing}", "bold yellow")
            text.append(": see below")
            self.update(text)
            return
        if snapshot is None:
            text.append("reading the state store…", "dim")
            self.update(text)
            return
        for index, stage in enumerate(snapshot.stages):
            if index:
                text.append(" │ ", "dim")
            text.append(stage if stage != CATALOG else "catalog", "bold")
            counts = snapshot.pulse.get(stage, {})
            for tone, glyph in TONE_GLYPH.items():
                if counts.get(tone):
                    text.append(f" {glyph}{counts[tone]}", TONE_STYLE[tone])
        # Errors before the counts of what waits: a narrow terminal cuts the end of the line.
        for endpoint, error in sorted(snapshot.endpoint_errors.items()):
            text.append(f" │ ✗ {endpoint}: {error}", "bold red")
        if snapshot.partial:
            text.append(f" │ newest {len(snapshot.rows):,} only; reading all…", "italic")
        text.append(" │ ", "dim")
        text.append(
            f"◷ {snapshot.awaiting_approval} awaiting approval",
            "bold yellow" if snapshot.awaiting_approval else "dim",
        )
        text.append(f" · ⏸ {snapshot.active_holds} held · ⇄ {snapshot.active_tasks} tasks")
        self.update(text)
