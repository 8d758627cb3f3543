"""Bearer tokens (virtual-card links, desk enrolment, later partner keys): made here, stored only
as their SHA-256, so a copy of the database opens nothing."""

from __future__ import annotations

import hashlib
import secrets


def new_token(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
