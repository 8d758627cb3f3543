"""Login sessions kept on the server. The browser holds a random token; the database holds its
hash, when it started, when it was last used and when (and why) it ended. A session is good
only while it has not ended, its idle time is under the idle timeout and its age is under the
absolute lifetime, so a copied cookie dies with logout, a password change, the user being
disabled, or simply with time, however often it is replayed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from unioncard import clock
from unioncard.db import UnitOfWork
from unioncard.registry.models import UserSession
from unioncard.tokens import new_token, token_hash

# Writing last_seen_at on every request would make each page a write; a minute of slack in
# an idle timeout of half an hour is not worth that.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionRules:
    idle: timedelta
    absolute: timedelta


def start(uow: UnitOfWork, user_id: int, address: str | None) -> str:
    """A new session for a user who has just proved who they are; returns the token for the cookie."""
    token = new_token(32)
    now = clock.now()
    uow.session.add(UserSession(token_hash=token_hash(token), user_id=user_id, created_at=now, last_seen_at=now,
                                address=(address or "")[:45] or None))
    return token


def resume(session, user_id: int, token: str, rules: SessionRules) -> bool:
    """Whether a cookie's (user, token) is a live session; keeps it alive if so. ``session`` is a
    plain database session: this commits its own small update."""
    if not token:
        return False
    row = session.scalar(select(UserSession).where(UserSession.token_hash == token_hash(token)))
    now = clock.now()
    if row is None or row.user_id != user_id or row.ended_at is not None:
        return False
    reason = None
    if now - row.created_at > rules.absolute:
        reason = "lifetime"
    elif now - row.last_seen_at > rules.idle:
        reason = "idle"
    if reason:
        row.ended_at, row.end_reason = now, reason
        session.commit()
        return False
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        session.commit()
    return True


def end(uow: UnitOfWork, token: str, reason: str = "logout") -> None:
    uow.session.execute(update(UserSession).where(UserSession.token_hash == token_hash(token or ""),
                                                  UserSession.ended_at.is_(None))
                        .values(ended_at=clock.now(), end_reason=reason))


def end_all(uow: UnitOfWork, user_id: int, reason: str) -> int:
    """End every live session of a user (password changed, user disabled, role changed)."""
    result = uow.session.execute(update(UserSession).where(UserSession.user_id == user_id,
                                                           UserSession.ended_at.is_(None))
                                 .values(ended_at=clock.now(), end_reason=reason))
    return result.rowcount or 0
