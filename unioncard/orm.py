"""The declarative base shared by every part's tables."""

from __future__ import annotations

from sqlalchemy import MetaData, String
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def byte_ordered_string(length: int) -> String:
    """Text compared byte-wise on PostgreSQL (COLLATE "C"), so a plain btree serves both
    ``LIKE 'prefix%'`` and ``ORDER BY``; our search keys are lower case with ё folded to е,
    which makes byte order the Russian alphabetical order."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")
