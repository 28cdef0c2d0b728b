"""The context header and the pulse line: where you are, whether the engine lives, what it counts.

Both say their state in words ("stale", "read-only", "paused") so nothing rests on colour alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

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
}
TONE_GLYPH = {"ok": "✓", "busy": "⇄", "wait": "…", "bad": "✗", "hold": "⏸", "gone": "–"}


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    delta = now - moment
    if delta < timedelta(seconds=1):
        return "just now"
    return f"{humanize.naturaldelta(delta)} ago"


def engine_status(beat: Heartbeat | None, now: datetime, interval: float) -> tuple[str, str]:
    """(words, tone) for the service's liveness; "stale" once its heartbeat stops."""
    if beat is None or beat.beat_at is None:
        return "no heartbeat yet (is the service running?)", "bad"
    age = now - beat.beat_at
    in_pass = beat.pass_started_at is not None and (
        beat.pass_finished_at is None or beat.pass_started_at > beat.pass_finished_at
    )
    limit = timedelta(seconds=max(3 * interval, 120))
    if in_pass and age < timedelta(hours=1):
        return f"in a pass since {ago(beat.pass_started_at, now)}", "busy"
    if age > limit:
        return f"STALE: no heartbeat for {humanize.naturaldelta(age)}", "bad"
    return f"ok, beat {ago(beat.beat_at, now)}", "ok"


class ContextHeader(Static):
    """Beamline, mode, standing alerts, engine status, last pass, when the data was read."""

    DEFAULT_CSS = """
    ContextHeader { height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

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
    ) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"bl931 · beamline {beamline}", "bold")
        text.append(" │ ")
        # The mode comes first so a narrow terminal never truncates it away.
        text.append(
            "READ-ONLY" if read_only else f"read-write as {user}",
            "bold yellow" if read_only else "",
        )
        # Standing alerts next: they freeze deletes, so they must survive a narrow terminal too.
        alerts = alerts_summary(snapshot.alerts) if snapshot else ""
        if alerts:
            text.append(" │ ")
            text.append(alerts, "bold red")
        beat = snapshot.heartbeat if snapshot else None
        words, tone = engine_status(beat, now, interval)
        text.append(" │ engine ")
        text.append(words, TONE_STYLE[tone])
        if beat is not None and beat.pass_finished_at is not None:
            ok = beat.last_ok_pass_at is not None and beat.last_ok_pass_at >= beat.pass_finished_at
            text.append(f" │ last pass {ago(beat.pass_finished_at, now)} ")
            text.append("ok" if ok else "with errors", "green" if ok else "red")
        if paused:
            text.append(" │ ")
            text.append("PAUSED", "bold reverse")
        elif snapshot is not None:
            text.append(f" │ read {snapshot.taken_at:%H:%M:%S}")
        self.update(text)


class PulseLine(Static):
    """Scans per stage and state: `dtn ✓812 ⇄3 …12 ✗1` and what waits on people."""

    DEFAULT_CSS = """
    PulseLine { height: 1; padding: 0 1; background: $boost; }
    """

    def show(self, snapshot: Snapshot | None) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
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
        if snapshot.partial:
            text.append(f" │ newest {len(snapshot.rows):,} only; reading all…", "italic")
        text.append(" │ ", "dim")
        text.append(
            f"◷ {snapshot.awaiting_approval} awaiting approval",
            "bold yellow" if snapshot.awaiting_approval else "dim",
        )
        text.append(f" · ⏸ {snapshot.active_holds} held · ⇄ {snapshot.active_tasks} tasks")
        for endpoint, error in sorted(snapshot.endpoint_errors.items()):
            text.append(f" │ ✗ {endpoint}: {error}", "bold red")
        self.update(text)
