"""The moment an `--as-of`, `--since` or `--until` flag names."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from engine.errors import UsageError


def parse_as_of(text: str, flag: str = "--as-of") -> datetime:
    """An ISO 8601 time with its UTC offset, or a bare date (midnight UTC), given to `flag`."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time(), tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{flag} {text!r} is not a date (2027-12-01, taken as midnight UTC) or an ISO 8601 "
            "time with its offset (2027-12-01T08:00:00+00:00)"
        ) from None
    if moment.tzinfo is None:
        raise UsageError(f"{flag} {text!r} needs a UTC offset, e.g. {moment.isoformat()}+00:00")
    return moment
