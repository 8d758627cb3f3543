"""The one place the application asks for the time, so tests can move it."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

# The union keeps its calendar in Moscow time: a date typed or defaulted anywhere (a join date,
# a report date, an event's day) is Moscow's, whatever zone the server's clock is set to. Between
# 21:00 and 24:00 UTC the two differ by a day.
UNION_ZONE = ZoneInfo("Europe/Moscow")


def now() -> datetime:
    """Naive UTC, as stored in the database."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def today(at: datetime | None = None) -> date:
    """Today's date in Moscow (at the moment ``at``, aware or naive UTC; now if None), not the
    server's local date."""
    if at is None:
        return datetime.now(UNION_ZONE).date()
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(UNION_ZONE).date()
