"""Writing the append-only audit log."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from unioncard import clock
from unioncard.registry.actor import Actor
from unioncard.registry.models import AuditEntry


def record(
    session: Session,
    actor: Actor,
    action: str,
    object_type: str,
    object_id=None,
    organisation_id: int | None = None,
    **details,
) -> AuditEntry:
    entry = AuditEntry(**values(actor, action, object_type, object_id, organisation_id, **details))
    session.add(entry)
    return entry


def values(actor: Actor, action: str, object_type: str, object_id=None, organisation_id: int | None = None,
           **details) -> dict:
    """One audit row as column values, for :func:`record` and for bulk writes."""
    return dict(
        at=clock.now(),
        user_id=actor.user_id,
        actor=actor.login,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        organisation_id=organisation_id,
        details={k: _jsonable(v) for k, v in details.items()} or None,
    )


def record_many(session: Session, rows: list[dict]) -> None:
    """Write many rows made by :func:`values` in one statement."""
    if rows:
        session.execute(insert(AuditEntry), rows)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
