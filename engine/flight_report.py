"""What a flight check found (engine/flight_check.py): per leg, and as a whole.

Pure data with its JSON (recorded in the state store, sent over the decision socket, printed by
`--flight-check --json`) and its Markdown (the CLI's table, a Prefect artifact).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class LegResult:
    """One leg of the chain: what was checked, how long it took, and what went wrong."""

    source: str
    target: str
    check: str  # "copy" (a disk leg) · "reachability" (a tape leg)
    ok: bool
    latency_seconds: float | None = None
    error: str | None = None
    verified_by: str | None = None  # "rehash" · "transfer checksum" · None

    @property
    def pair(self) -> str:
        return f"{self.source} → {self.target}"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "check": self.check,
            "ok": self.ok,
            "latency_seconds": self.latency_seconds,
            "error": self.error,
            "verified_by": self.verified_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LegResult:
        return cls(
            str(data["source"]),
            str(data["target"]),
            str(data["check"]),
            bool(data["ok"]),
            None if data.get("latency_seconds") is None else float(data["latency_seconds"]),
            data.get("error"),
            data.get("verified_by"),
        )


@dataclass(frozen=True, slots=True)
class FlightReport:
    """The outcome of one flight check (`ok` only if every leg passed and every canary went)."""

    beamline: str
    started_at: datetime
    canary: str  # the canary's path relative to each endpoint root
    legs: tuple[LegResult, ...] = ()
    setup_error: str | None = None  # the canary could not even be written
    cleanup_errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return (
            self.setup_error is None
            and not self.cleanup_errors
            and all(leg.ok for leg in self.legs)
        )

    @property
    def failed_legs(self) -> tuple[LegResult, ...]:
        return tuple(leg for leg in self.legs if not leg.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "beamline": self.beamline,
            "started_at": self.started_at.isoformat(),
            "ok": self.ok,
            "canary": self.canary,
            "legs": [leg.to_json() for leg in self.legs],
            "setup_error": self.setup_error,
            "cleanup_errors": list(self.cleanup_errors),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlightReport:
        return cls(
            str(data["beamline"]),
            datetime.fromisoformat(str(data["started_at"])),
            str(data["canary"]),
            tuple(LegResult.from_json(leg) for leg in data.get("legs", ())),
            data.get("setup_error"),
            tuple(str(e) for e in data.get("cleanup_errors", ())),
        )

    def to_markdown(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        lines = [
            f"# Flight check {verdict}: beamline {self.beamline}",
            "",
            f"Started {self.started_at.isoformat(timespec='seconds')}; canary `{self.canary}`.",
            "",
        ]
        if self.setup_error:
            lines += [f"**The canary could not be written:** {self.setup_error}", ""]
        if self.legs:
            lines += ["| leg | check | ok | latency (s) | detail |", "|---|---|---|---|---|"]
            for leg in self.legs:
                latency = "—" if leg.latency_seconds is None else f"{leg.latency_seconds:.3f}"
                detail = (leg.error or leg.verified_by or "").replace("|", "\\|")
                mark = "yes" if leg.ok else "**no**"
                lines.append(f"| {leg.pair} | {leg.check} | {mark} | {latency} | {detail} |")
            lines.append("")
        for error in self.cleanup_errors:
            lines.append(f"- cleanup: {error}")
        return "\n".join(lines).rstrip() + "\n"
