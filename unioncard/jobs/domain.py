"""Job rules in plain Python: statuses, the lease that tells a running job from an abandoned one,
and the queue's address (a config string, as the printers' and channels' are)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


FINISHED = (Status.DONE, Status.FAILED)
# A job that has been taken up this many times and never finished is given up (a job that kills
# its worker every time must not loop forever).
MAX_ATTEMPTS = 5


def abandoned_before(now: datetime, lease_seconds: float) -> datetime:
    """A running job whose last sign of life is older than this was left by a dead worker."""
    return now - timedelta(seconds=lease_seconds)


def percent(done: int, total: int | None) -> int | None:
    if not total:
        return None
    return max(0, min(100, done * 100 // total))


class QueueAddressInvalid(ValueError):
    pass


@dataclass(frozen=True)
class InlineQueue:
    """Run the job at once, in the process that submitted it, after the submitting commit (tests)."""


@dataclass(frozen=True)
class ThreadQueue:
    """A worker thread inside the app process: the embedded demo needs no separate worker."""


@dataclass(frozen=True)
class RqQueue:
    """RQ on a Redis server; workers are ``unioncard jobs worker`` on any machine."""
    redis_url: str
    name: str = "unioncard"


def parse_queue(text: str):
    """``inline:``, ``thread:`` or ``rq+redis://host:6379/0[?queue=NAME]``."""
    text = (text or "").strip()
    if text in ("inline:", "inline"):
        return InlineQueue()
    if text in ("thread:", "thread", ""):
        return ThreadQueue()
    if text.startswith(("rq+redis://", "rq+rediss://")):
        parts = urlsplit(text[3:])
        if not parts.hostname:
            raise QueueAddressInvalid("no Redis host")
        name = parse_qs(parts.query).get("queue", ["unioncard"])[0]
        if not name.replace("-", "").replace("_", "").isalnum():
            raise QueueAddressInvalid("a queue name is letters, digits, - and _")
        return RqQueue(redis_url=parts._replace(query="").geturl(), name=name)
    raise QueueAddressInvalid("expected inline:, thread: or rq+redis://host:port/db")
