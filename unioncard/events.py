"""Domain events between parts, in two kinds of handler:

- *in-transaction* handlers run inside the unit of work that announced the event, just before it
  commits, so a rule that must hold together (membership ended → card revoked) commits or rolls
  back as one;
- *after-commit* subscribers (``UnitOfWork(subscribers=...)``) react only to durable changes
  (notifications, caches).

Parts register their in-transaction handlers in their ``handlers`` module, which
``unioncard.models`` imports, so they are in place whenever the database is used.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

_in_transaction: dict[type, list[Callable]] = defaultdict(list)


def in_transaction(event_type: type):
    def register(handler: Callable) -> Callable:
        if handler not in _in_transaction[event_type]:
            _in_transaction[event_type].append(handler)
        return handler

    return register


def handlers_for(event) -> list[Callable]:
    return list(_in_transaction.get(type(event), ()))
