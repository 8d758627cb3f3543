"""Local time across Russia's eleven time zones: each region's zone (data/region_time_zones.csv,
by the region's two-digit code), and times written as people read them, «15:30 (МСК+2)».
The database keeps naive UTC; only what is shown to people is local."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

DATA = Path(__file__).parent / "data" / "region_time_zones.csv"
MOSCOW = "Europe/Moscow"


@lru_cache(maxsize=1)
def region_zones() -> dict[str, str]:
    with DATA.open(encoding="utf-8") as handle:
        return {row["region_code"]: row["time_zone"] for row in csv.DictReader(handle)}


def zone_of_region(region_code: str | None) -> str:
    """The region's IANA zone; Moscow time for the central organisation or an unknown code."""
    return region_zones().get(region_code or "", MOSCOW)


def local(moment: datetime, zone: str) -> datetime:
    """A stored (naive UTC) or aware moment in the given zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(ZoneInfo(zone))


def msk_offset(moment: datetime, zone: str) -> str:
    """«МСК», «МСК+2», «МСК−1»: how Russians name a zone, by its difference from Moscow time."""
    here = local(moment, zone).utcoffset() or timedelta(0)
    moscow = local(moment, MOSCOW).utcoffset() or timedelta(0)
    hours = round((here - moscow).total_seconds() / 3600)
    return "МСК" if hours == 0 else f"МСК{'+' if hours > 0 else '−'}{abs(hours)}"


def shown(moment: datetime, zone: str) -> str:
    """«01.12.2026 15:30 (МСК+2)» — local time with its zone named."""
    return f"{local(moment, zone):%d.%m.%Y %H:%M} ({msk_offset(moment, zone)})"
