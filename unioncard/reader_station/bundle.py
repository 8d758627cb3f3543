"""The signed event bundle a reader station works from, offline. Format: docs/formats.md §10.

    magic "UCEVB1\\n\\0" | u32 header length | header (canonical JSON) | sections | u8 n | signature (n bytes)

The header names the event, the bundle's version, issue and expiry times, the signing key and,
for each section (``trust``, ``roster``, ``revoked``), its length and SHA-256. The signature
(role ``event_bundle``, Ed25519) covers every byte before ``n``. A station checks, in this order:
shape and lengths (a truncated file), the embedded trust bundle against its pinned root key,
the signature with the event_bundle key that trust bundle lists, the section digests, the
expiry, and that the version is above the one it already has (rollback, TUF's lesson).

Plain Python and ``cryptography``: no database, no Flask, no device libraries.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime

from unioncard.errors import ValidationError
from unioncard.hsm import trust
from unioncard.hsm.domain import KeyRole, TrustBundleError
from unioncard.i18n import N_
from unioncard.reader_station import revocations

MAGIC = b"UCEVB1\n\x00"
FORMAT = "unioncard-event-bundle/1"
SECTIONS = ("trust", "roster", "revoked")
ADMISSIONS = ("roster", "members")
ROLES = ("delegate", "guest", "staff", "member")


class BundleError(ValidationError):
    code = "bundle_invalid"
    message = N_("The event bundle is damaged or not an event bundle (%(reason)s)")


class BundleTruncated(BundleError):
    code = "bundle_truncated"
    message = N_("The event bundle file is incomplete (cut off at %(length)s bytes): copy or download it again")


class BundleTampered(BundleError):
    code = "bundle_bad_signature"
    message = N_("The event bundle's signature does not match: the file has been altered")


class BundleExpired(BundleError):
    code = "bundle_expired"
    message = N_("The event bundle expired on %(expired)s: synchronise the station or load a newer bundle")


class BundleFromFuture(BundleError):
    code = "bundle_from_future"
    message = N_("The event bundle is issued in the future (%(issued)s): this computer's clock is wrong")


class BundleRollback(BundleError):
    code = "bundle_rollback"
    message = N_("This event bundle (version %(version)s) is older than the one the station has "
                 "(version %(current)s) and is refused")


class BundleOtherEvent(BundleError):
    code = "bundle_other_event"
    message = N_("This bundle is for another event («%(event)s»); this station works for «%(station_event)s»")


@dataclass(frozen=True)
class RosterEntry:
    number: str
    name: str
    role: str
    region_code: str


@dataclass(frozen=True)
class EventInfo:
    id: int
    code: str
    name: str
    starts_on: date
    ends_on: date
    venue: str
    admission: str  # "roster": only those listed; "members": any valid card

    def as_json(self) -> dict:
        return {"id": self.id, "code": self.code, "name": self.name, "starts_on": self.starts_on.isoformat(),
                "ends_on": self.ends_on.isoformat(), "venue": self.venue, "admission": self.admission}

    @classmethod
    def from_json(cls, value: dict) -> "EventInfo":
        admission = value["admission"]
        if admission not in ADMISSIONS:
            raise ValueError("admission")
        return cls(int(value["id"]), str(value["code"]), str(value["name"]), date.fromisoformat(value["starts_on"]),
                   date.fromisoformat(value["ends_on"]), str(value["venue"]), admission)


@dataclass
class EventBundle:
    event: EventInfo
    version: int
    issued_at: datetime
    expires_at: datetime
    key_id: str
    trust: trust.TrustBundle
    roster: dict[str, RosterEntry]
    revoked: set[int]
    revocation_feed_version: int
    sha256: str
    size: int
    header: dict = field(repr=False, default_factory=dict)

    def is_revoked(self, number: str) -> bool:
        return revocations.key(number) in self.revoked

    def is_expired(self, now: datetime) -> bool:
        return trust.utc(now) >= self.expires_at


def _section_roster(entries: list[RosterEntry]) -> bytes:
    rows = [[e.number, e.name, e.role, e.region_code] for e in sorted(entries, key=lambda e: e.number)]
    return zlib.compress(trust.canonical_json(rows), 9)


def build(signer, event: EventInfo, *, version: int, issued_at: datetime, expires_at: datetime,
          trust_bundle: bytes, roster: list[RosterEntry], revoked_numbers, revocation_feed_version: int) -> bytes:
    """Sign a bundle with the active event_bundle key of ``signer`` (a KeyStore)."""
    if version < 1 or expires_at <= issued_at:
        raise BundleError(reason="version/expiry")
    for entry in roster:
        if entry.role not in ROLES:
            raise BundleError(reason=f"role {entry.role}")
    revoked, k, count = revocations.encode(revocations.key(n) for n in revoked_numbers)
    sections = {"trust": trust_bundle, "roster": _section_roster(roster), "revoked": revoked}
    key_id = signer.active_key(KeyRole.EVENT_BUNDLE).key_id
    header = trust.canonical_json({
        "format": FORMAT, "event": event.as_json(), "version": version,
        "issued_at": trust.timestamp(issued_at), "expires_at": trust.timestamp(expires_at), "key_id": key_id,
        "roster": {"count": len(roster), "encoding": "zlib+json"},
        "revoked": {"scheme": revocations.SCHEME, "k": k, "count": count, "feed_version": revocation_feed_version},
        "sections": [{"name": name, "length": len(sections[name]),
                      "sha256": hashlib.sha256(sections[name]).hexdigest()} for name in SECTIONS],
    })
    signed = MAGIC + struct.pack(">I", len(header)) + header + b"".join(sections[name] for name in SECTIONS)
    signature = signer.sign(KeyRole.EVENT_BUNDLE, signed, key_id=key_id).value
    return signed + bytes([len(signature)]) + signature


def _split(data: bytes) -> tuple[dict, dict[str, bytes], bytes, bytes]:
    if len(data) < len(MAGIC) + 4 or not data.startswith(MAGIC):
        if MAGIC.startswith(data[:len(MAGIC)]) and len(data) < len(MAGIC) + 4:
            raise BundleTruncated(length=len(data))
        raise BundleError(reason="not an event bundle")
    (header_length,) = struct.unpack_from(">I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if len(data) < start + header_length:
        raise BundleTruncated(length=len(data))
    try:
        header = json.loads(data[start:start + header_length])
        if header.get("format") != FORMAT:
            raise BundleError(reason="format")
        declared = [(s["name"], int(s["length"]), s["sha256"]) for s in header["sections"]]
    except BundleError:
        raise
    except (ValueError, KeyError, TypeError):
        raise BundleError(reason="header") from None
    if [name for name, _, _ in declared] != list(SECTIONS):
        raise BundleError(reason="sections")
    position = start + header_length
    sections = {}
    for name, length, _digest in declared:
        if length < 0 or position + length > len(data):
            raise BundleTruncated(length=len(data))
        sections[name] = data[position:position + length]
        position += length
    if position >= len(data):
        raise BundleTruncated(length=len(data))
    signature_length = data[position]
    signature = data[position + 1:]
    if len(signature) < signature_length:
        raise BundleTruncated(length=len(data))
    if len(signature) > signature_length:
        raise BundleError(reason="trailing data")
    for name, _length, digest in declared:
        if hashlib.sha256(sections[name]).hexdigest() != digest:
            raise BundleTampered()
    return header, sections, data[:position], signature


def peek(data: bytes) -> dict:
    """The header, unverified (to show what a file claims to be, or the version floor)."""
    return _split(data)[0]


def check(data: bytes, root_public_key: bytes, now: datetime, *, current_version: int = 0,
          event_id: int | None = None, current_sha256: str | None = None) -> EventBundle:
    """Verify and open a bundle; raise a BundleError (or TrustBundleError) saying why not."""
    now = trust.utc(now)
    header, sections, signed, signature = _split(data)
    trusted = trust.check(sections["trust"], root_public_key, now)
    if not trusted.verify(KeyRole.EVENT_BUNDLE, str(header.get("key_id")), signed, signature):
        raise BundleTampered()
    try:
        event = EventInfo.from_json(header["event"])
        version = int(header["version"])
        issued_at = trust.parse_timestamp(header["issued_at"])
        expires_at = trust.parse_timestamp(header["expires_at"])
        revoked_meta = header["revoked"]
        if revoked_meta["scheme"] != revocations.SCHEME:
            raise BundleError(reason="revocation scheme")
        revoked = revocations.decode(sections["revoked"], int(revoked_meta["k"]), int(revoked_meta["count"]))
        rows = json.loads(zlib.decompress(sections["roster"]))
        roster = {row[0]: RosterEntry(*map(str, row)) for row in rows}
    except BundleError:
        raise
    except (ValueError, KeyError, TypeError, zlib.error, revocations.DecodeError):
        raise BundleError(reason="content") from None
    if event_id is not None and event.id != event_id:
        raise BundleOtherEvent(event=event.name, station_event=str(event_id))
    if now >= expires_at:
        raise BundleExpired(expired=trust.timestamp(expires_at))
    if issued_at > now + trust.CLOCK_SKEW:
        raise BundleFromFuture(issued=trust.timestamp(issued_at))
    sha256 = hashlib.sha256(data).hexdigest()
    if version < current_version or (version == current_version and current_sha256 not in (None, sha256)):
        raise BundleRollback(version=version, current=current_version)
    return EventBundle(event, version, issued_at, expires_at, str(header["key_id"]), trusted, roster, revoked,
                       int(revoked_meta.get("feed_version", 0)), sha256, len(data), header)


__all__ = ["BundleError", "BundleExpired", "BundleFromFuture", "BundleOtherEvent", "BundleRollback",
           "BundleTampered", "BundleTruncated", "EventBundle", "EventInfo", "RosterEntry", "TrustBundleError",
           "build", "check", "peek"]
