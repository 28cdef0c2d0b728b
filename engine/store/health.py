"""Health: each endpoint's last success and run of failures, and the service's heartbeat (read
by the TUI). Typed alerts and their acknowledgements are `engine.alert_log`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from engine.store.connection import StoreBase, iso, parse_time


class HealthStore(StoreBase):
    """The endpoints and heartbeat tables."""

    def endpoint_ok(self, name: str, now: datetime) -> None:
        with self.transaction() as conn:
            conn.execute(
                """INSERT INTO endpoints(name, last_ok_at, consecutive_failures) VALUES (?,?,0)
                   ON CONFLICT(name) DO UPDATE SET last_ok_at=excluded.last_ok_at,
                     consecutive_failures=0""",
                (name, iso(now)),
            )

    def endpoint_failed(self, name: str, message: str, now: datetime) -> int:
        with self.transaction() as conn:
            conn.execute(
                """INSERT INTO endpoints(name, last_error, last_error_at, consecutive_failures)
                   VALUES (?,?,?,1)
                   ON CONFLICT(name) DO UPDATE SET last_error=excluded.last_error,
                     last_error_at=excluded.last_error_at,
                     consecutive_failures=endpoints.consecutive_failures + 1""",
                (name, message, iso(now)),
            )
            row = conn.execute(
                "SELECT consecutive_failures FROM endpoints WHERE name = ?", (name,)
            ).fetchone()
        return int(row[0])

    def endpoint_health(self) -> dict[str, dict[str, Any]]:
        return {
            row["name"]: {
                "last_ok_at": parse_time(row["last_ok_at"]),
                "last_error": row["last_error"],
                "last_error_at": parse_time(row["last_error_at"]),
                "consecutive_failures": row["consecutive_failures"],
            }
            for row in self._conn().execute("SELECT * FROM endpoints")
        }

    def beat(self, now: datetime, **fields: Any) -> None:
        allowed = {
            "pid",
            "host",
            "mode",
            "pass_started_at",
            "pass_finished_at",
            "last_ok_pass_at",
            "summary",
            "stopped_at",  # the owner exited cleanly (a later pass start supersedes it)
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown heartbeat fields: {sorted(unknown)}")
        values = {
            k: (iso(v) if isinstance(v, datetime) else json.dumps(v) if k == "summary" else v)
            for k, v in fields.items()
        }
        cols = ["beat_at", *values]
        with self.transaction() as conn:
            conn.execute(
                f"""INSERT INTO heartbeat(id, {", ".join(cols)}) VALUES (1, {", ".join("?" * len(cols))})
                    ON CONFLICT(id) DO UPDATE SET {", ".join(f"{c}=excluded.{c}" for c in cols)}""",
                (iso(now), *values.values()),
            )

    def heartbeat(self) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT * FROM heartbeat WHERE id = 1").fetchone()
        if row is None:
            return None
        out = dict(row)
        for key in ("beat_at", "pass_started_at", "pass_finished_at", "last_ok_pass_at"):
            out[key] = parse_time(out[key])
        out["stopped_at"] = parse_time(out.get("stopped_at"))  # absent before schema 7
        out["summary"] = json.loads(out["summary"]) if out["summary"] else None
        return out
