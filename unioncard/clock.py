"""The one place the application asks for the time, so tests can move it."""

from __future__ import annotations

from datetime import date, datetime, timezone


def now() -> datetime:
    """Naive UTC, as stored in the database."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def today() -> date:
    return date.today()
