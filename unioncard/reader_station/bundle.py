"""The signed event bundle a reader station works from, offline. Format: docs/formats.md §10.

    magic "UCEVB1\\n\\0" | u32 header length | header (canonical JSON) | sections | u8 n | signature (n bytes)

The header names the event, the bundle's version, issue and expiry times, the signing key and,
for each section (``trust``, ``roster``, ``revoked``), its length and SHA-256. The signature
(role ``event_bundle``) covers every byte before ``n``.

A station checks in a fixed order, and each step has its own stable code (formats.md §10.4 lists
them): the frame (magic, header shape, lengths, trailing bytes), the section digests, the embedded
trust bundle against the pinned root key, the signature, the signed content, and only then what
the bundle means for this station (its event, expiry, clock, version). Nothing the header says is
acted on before the signature has verified: until then it is only used to find the parts.

Plain Python and ``cryptography``: no database, no Flask, no device libraries.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property

from unioncard.errors import ValidationError
from unioncard.hsm import trust
from unioncard.hsm.domain import KeyRole, TrustBundleError
from unioncard.i18n import N_
from unioncard.reader_station import revocations

MAGIC = b"UCEVB1\n\x00"
FORMAT = "unioncard-event-bundle/2"
SECTIONS = ("trust", "roster", "revoked")
ADMISSIONS = ("roster", "members")
ROLES = ("delegate", "guest", "staff", "member")
ROSTER_ENCODING = "zlib+json/2"
# When a desk prints a person's badge: at check-in, when staff press the button, or never.
BADGE_MODES = ("auto", "button", "none")
DEFAULT_BADGES = {"delegate": "auto", "guest": "button", "staff": "button", "member": "none"}
# Russia's zones run from UTC+2 (Kaliningrad) to UTC+12 (Kamchatka); the bound is the world's.
MIN_UTC_OFFSET, MAX_UTC_OFFSET = -12 * 60, 14 * 60
MOSCOW_UTC_OFFSET = 180
# Without a list in the header, a desk takes the union's own default prefix only.
DEFAULT_CARD_PREFIX = "964301"
MAX_CARD_PREFIXES = 100
# A real header is under 1 KiB; the bound keeps a damaged length field from making us parse megabytes.
MAX_HEADER = 64 * 1024
# The roster is zlib inside a signed file: a signed bomb must still not exhaust a desk laptop's
# memory, so it is inflated with a ceiling (~270 000 entries of ~120 bytes fit).
MAX_ROSTER_BYTES = 32 * 1024 * 1024
_INFLATE_STEP = 1024 * 1024
_HEX16 = re.compile(r"[0-9a-f]{16}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class BundleError(ValidationError):
    code = "bundle_invalid"
    message = N_("The event bundle is damaged or not an event bundle (%(reason)s)")


class BundleNotABundle(BundleError):
    code = "bundle_bad_magic"
    message = N_("This file is not an event bundle (it does not start with the event bundle mark)")


class BundleTruncated(BundleError):
    code = "bundle_truncated"
    message = N_("The event bundle file is incomplete (cut off at %(length)s bytes): copy or download it again")


class BundleBadHeader(BundleError):
    code = "bundle_bad_header"
    message = N_("The event bundle's header is damaged (%(reason)s): copy or download it again")


class BundleTrailingData(BundleError):
    code = "bundle_trailing_data"
    message = N_("The event bundle file has %(count)s extra bytes after its end: copy or download it again")


class BundleSectionMismatch(BundleError):
    code = "bundle_section_mismatch"
    message = N_("The part «%(section)s» of the event bundle is damaged (its checksum differs): "
                 "copy or download it again")


class BundleTampered(BundleError):
    code = "bundle_bad_signature"
    message = N_("The event bundle's signature does not match: the file has been altered")


class BundleBadContent(BundleError):
    code = "bundle_bad_content"
    message = N_("The event bundle is signed but its content cannot be read (%(reason)s)")


class BundleTooLarge(BundleError):
    code = "bundle_roster_too_large"
    message = N_("The event bundle's list unpacks to more than %(limit)s MiB and is refused")


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


# Every refusal ``check`` can raise: its own errors, and the embedded trust bundle's.
REFUSALS = (BundleError, TrustBundleError)


@dataclass(frozen=True)
class RosterEntry:
    number: str
    name: str
    role: str
    region_code: str
    organisation: str = ""
    # The same opaque key on every card of one person (a plastic and a virtual card): a desk
    # finds a person once by name and checks them in once a day, whichever card they show.
    person: str = ""


@dataclass(frozen=True)
class SessionInfo:
    """A sitting of the event (a plenary, a section in a room) on one of its days: desks in the
    session mode record who enters and leaves it."""
    id: int
    day: date
    name: str
    room: str

    def as_json(self) -> dict:
        return {"id": self.id, "day": self.day.isoformat(), "name": self.name, "room": self.room}


MAX_SESSIONS = 500


@dataclass(frozen=True)
class EventInfo:
    id: int
    code: str
    name: str
    starts_on: date
    ends_on: date
    venue: str
    admission: str  # "roster": only those listed; "members": any valid card
    # Minutes east of UTC of the venue: where an event day begins and ends.
    utc_offset: int = MOSCOW_UTC_OFFSET
    badges: dict = field(default_factory=lambda: dict(DEFAULT_BADGES))
    sessions: tuple[SessionInfo, ...] = ()
    # The issuer prefixes a card number of this union may start with: ours, and those of the
    # earlier registry's cards that stay valid after the move (docs/migration.md).
    card_prefixes: tuple[str, ...] = (DEFAULT_CARD_PREFIX,)

    def accepts_number(self, number: str) -> bool:
        return number.startswith(self.card_prefixes)

    def as_json(self) -> dict:
        return {"id": self.id, "code": self.code, "name": self.name, "starts_on": self.starts_on.isoformat(),
                "ends_on": self.ends_on.isoformat(), "venue": self.venue, "admission": self.admission,
                "utc_offset": self.utc_offset, "badges": dict(self.badges),
                "sessions": [session.as_json() for session in self.sessions],
                "card_prefixes": list(self.card_prefixes)}

    def session(self, session_id) -> SessionInfo | None:
        return next((s for s in self.sessions if s.id == session_id), None)

    def day_of(self, moment: datetime) -> date:
        """The event day (the venue's calendar date) a moment falls on."""
        return (trust.utc(moment) + timedelta(minutes=self.utc_offset)).date()

    def day_window(self, moment: datetime) -> tuple[datetime, datetime]:
        """[start, end) in UTC of the event day ``moment`` falls on."""
        day = self.day_of(moment)
        start = datetime.combine(day, time.min, tzinfo=timezone.utc) - timedelta(minutes=self.utc_offset)
        return start, start + timedelta(days=1)

    def badge_mode(self, role: str | None) -> str:
        return self.badges.get(role or "member", "none")

    @classmethod
    def from_json(cls, value) -> "EventInfo":
        """Strict: an event id is a positive integer (0 or a string is no event), texts are texts."""
        if not isinstance(value, dict):
            raise ValueError("event")
        event_id = value.get("id")
        if not _is_int(event_id) or event_id < 1:
            raise ValueError("event.id")
        texts = [value.get(name) for name in ("code", "name", "venue", "starts_on", "ends_on")]
        if not all(isinstance(text, str) for text in texts) or value.get("admission") not in ADMISSIONS:
            raise ValueError("event")
        starts_on, ends_on = date.fromisoformat(value["starts_on"]), date.fromisoformat(value["ends_on"])
        if ends_on < starts_on:
            raise ValueError("event dates")
        offset = value.get("utc_offset")
        if not _is_int(offset) or not MIN_UTC_OFFSET <= offset <= MAX_UTC_OFFSET:
            raise ValueError("event.utc_offset")
        badges = value.get("badges")
        if not isinstance(badges, dict) or not all(k in ROLES and v in BADGE_MODES for k, v in badges.items()):
            raise ValueError("event.badges")
        sessions = value.get("sessions")
        if not isinstance(sessions, list) or len(sessions) > MAX_SESSIONS:
            raise ValueError("event.sessions")
        parsed = []
        for raw in sessions:
            if not isinstance(raw, dict) or not _is_int(raw.get("id")) or raw["id"] < 1 \
                    or not all(isinstance(raw.get(k), str) for k in ("day", "name", "room")):
                raise ValueError("event.sessions")
            day = date.fromisoformat(raw["day"])
            if not starts_on <= day <= ends_on:
                raise ValueError("event.sessions")
            parsed.append(SessionInfo(raw["id"], day, raw["name"], raw["room"]))
        if len({s.id for s in parsed}) != len(parsed):
            raise ValueError("event.sessions")
        prefixes = value.get("card_prefixes", [DEFAULT_CARD_PREFIX])
        if not isinstance(prefixes, list) or not 1 <= len(prefixes) <= MAX_CARD_PREFIXES or not all(
                isinstance(p, str) and p.isascii() and p.isdigit() and 1 <= len(p) <= 15 for p in prefixes):
            raise ValueError("event.card_prefixes")
        return cls(event_id, value["code"], value["name"], starts_on, ends_on, value["venue"], value["admission"],
                   offset, dict(badges), tuple(parsed), tuple(prefixes))


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
    # The by-name search's index (reader_station.domain), made on the first search.
    name_index: list | None = field(repr=False, compare=False, default=None)

    @property
    def valid_until(self) -> datetime:
        """The bundle is good while both it and the trust bundle inside it are."""
        return min(self.expires_at, self.trust.expires_at)

    def is_revoked(self, number: str) -> bool:
        return revocations.key(number) in self.revoked

    @cached_property
    def people(self) -> dict[str, tuple[RosterEntry, ...]]:
        """Each listed person's roster rows (one per card), by the person key."""
        grouped: dict[str, list[RosterEntry]] = {}
        for entry in self.roster.values():
            grouped.setdefault(entry.person or entry.number, []).append(entry)
        return {key: tuple(sorted(rows, key=lambda e: e.number)) for key, rows in grouped.items()}

    def cards_of(self, number: str) -> tuple[str, ...]:
        """Every card number of the person holding ``number`` (the number alone if not listed)."""
        entry = self.roster.get(number)
        if entry is None:
            return (number,)
        return tuple(e.number for e in self.people[entry.person or entry.number])

    def is_expired(self, now: datetime) -> bool:
        return trust.utc(now) >= self.valid_until


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _section_roster(entries: list[RosterEntry]) -> bytes:
    rows = [[e.number, e.name, e.role, e.region_code, e.organisation, e.person]
            for e in sorted(entries, key=lambda e: e.number)]
    raw = trust.canonical_json(rows)
    if len(raw) > MAX_ROSTER_BYTES:
        # Desks would refuse it (BundleTooLarge): say so when building, not at the door.
        raise BundleTooLarge(limit=MAX_ROSTER_BYTES // (1024 * 1024))
    return zlib.compress(raw, 9)


def build(signer, event: EventInfo, *, version: int, issued_at: datetime, expires_at: datetime,
          trust_bundle: bytes, roster: list[RosterEntry], revoked_numbers, revocation_feed_version: int) -> bytes:
    """Sign a bundle with the active event_bundle key of ``signer`` (a KeyStore)."""
    if version < 1 or expires_at <= issued_at or event.id < 1:
        raise BundleError(reason="version/expiry/event id")
    for entry in roster:
        if entry.role not in ROLES:
            raise BundleError(reason=f"role {entry.role}")
    revoked, k, count = revocations.encode(revocations.key(n) for n in revoked_numbers)
    sections = {"trust": trust_bundle, "roster": _section_roster(roster), "revoked": revoked}
    key_id = signer.active_key(KeyRole.EVENT_BUNDLE).key_id
    header = trust.canonical_json({
        "format": FORMAT, "event": event.as_json(), "version": version,
        "issued_at": trust.timestamp(issued_at), "expires_at": trust.timestamp(expires_at), "key_id": key_id,
        "roster": {"count": len(roster), "encoding": ROSTER_ENCODING},
        "revoked": {"scheme": revocations.SCHEME, "k": k, "count": count, "feed_version": revocation_feed_version},
        "sections": [{"name": name, "length": len(sections[name]),
                      "sha256": hashlib.sha256(sections[name]).hexdigest()} for name in SECTIONS],
    })
    signed = MAGIC + struct.pack(">I", len(header)) + header + b"".join(sections[name] for name in SECTIONS)
    signature = signer.sign(KeyRole.EVENT_BUNDLE, signed, key_id=key_id).value
    return signed + bytes([len(signature)]) + signature


# --- the frame: everything that can be checked without a key -----------------------------------

@dataclass(frozen=True)
class _Header:
    """The header's fields, shape-checked. Not acted on until the signature has verified."""
    raw: dict
    event: EventInfo
    version: int
    issued_at: datetime
    expires_at: datetime
    key_id: str
    roster_count: int
    revoked_k: int
    revoked_count: int
    feed_version: int
    sections: tuple[tuple[str, int, str], ...]


def _header(raw: bytes) -> _Header:
    def bad(reason: str) -> BundleBadHeader:
        return BundleBadHeader(reason=reason)

    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or absurdly nested
        raise bad("not JSON") from None
    if not isinstance(header, dict):
        raise bad("not an object")
    if header.get("format") != FORMAT:
        raise bad("format")
    sections = header.get("sections")
    if not isinstance(sections, list) or len(sections) != len(SECTIONS):
        raise bad("sections")
    declared = []
    for name, entry in zip(SECTIONS, sections):
        if not isinstance(entry, dict) or entry.get("name") != name:
            raise bad("sections")
        length, digest = entry.get("length"), entry.get("sha256")
        if not _is_int(length) or length < 0 or not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise bad(f"section {name}")
        declared.append((name, length, digest))
    key_id = header.get("key_id")
    if not isinstance(key_id, str) or not _HEX16.fullmatch(key_id):
        raise bad("key_id")
    try:
        event = EventInfo.from_json(header.get("event"))
    except ValueError as exc:
        raise bad(str(exc) if str(exc).startswith("event") else "event") from None
    version = header.get("version")
    if not _is_int(version) or version < 1:
        raise bad("version")
    try:
        issued_at = trust.parse_timestamp(header.get("issued_at"))
        expires_at = trust.parse_timestamp(header.get("expires_at"))
    except (TypeError, ValueError):
        raise bad("issued_at/expires_at") from None
    if expires_at <= issued_at:
        raise bad("expires_at")
    roster, revoked = header.get("roster"), header.get("revoked")
    if not isinstance(roster, dict) or roster.get("encoding") != ROSTER_ENCODING \
            or not _is_int(roster.get("count")) or roster["count"] < 0:
        raise bad("roster")
    if not isinstance(revoked, dict) or revoked.get("scheme") != revocations.SCHEME:
        raise bad("revoked")
    numbers = [revoked.get("k"), revoked.get("count"), revoked.get("feed_version")]
    if not all(_is_int(n) and n >= 0 for n in numbers) or revoked["k"] > revocations.MAX_K:
        raise bad("revoked")
    return _Header(header, event, version, issued_at, expires_at, key_id, roster["count"], revoked["k"],
                   revoked["count"], revoked["feed_version"], tuple(declared))


def _frame(data: bytes) -> tuple[_Header, dict[str, bytes], bytes, bytes]:
    """(header, sections, signed bytes, signature), or the first framing refusal."""
    start = len(MAGIC) + 4
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):  # a file cut inside the magic
            raise BundleTruncated(length=len(data))
        raise BundleNotABundle()
    if len(data) < start:
        raise BundleTruncated(length=len(data))
    (header_length,) = struct.unpack_from(">I", data, len(MAGIC))
    if header_length > MAX_HEADER:
        raise BundleBadHeader(reason="length")
    if len(data) < start + header_length:
        raise BundleTruncated(length=len(data))
    header = _header(data[start:start + header_length])
    position = start + header_length
    sections = {}
    for name, length, _digest in header.sections:
        if position + length > len(data):
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
        raise BundleTrailingData(count=len(signature) - signature_length)
    # The digests are redundant with the signature; checked first, they tell a copy damaged in
    # one part (and which) from a file someone altered.
    for name, _length, digest in header.sections:
        if hashlib.sha256(sections[name]).hexdigest() != digest:
            raise BundleSectionMismatch(section=name)
    return header, sections, data[:position], signature


def peek(data: bytes) -> dict:
    """The header, UNVERIFIED: for showing what a file claims to be, never for deciding anything."""
    return _frame(data)[0].raw


# --- the signed content ------------------------------------------------------------------------

def _inflate_roster(section: bytes) -> bytearray:
    """Inflate in steps of _INFLATE_STEP with the ceiling checked after each: zlib's one-shot
    ``max_length`` output is built in blocks and then joined, which would double the peak."""
    inflater = zlib.decompressobj()
    raw = bytearray()
    pending = section
    try:
        while True:
            chunk = inflater.decompress(pending, _INFLATE_STEP)
            raw += chunk
            if len(raw) > MAX_ROSTER_BYTES:
                raise BundleTooLarge(limit=MAX_ROSTER_BYTES // (1024 * 1024))
            pending = inflater.unconsumed_tail
            if inflater.eof or (not pending and len(chunk) < _INFLATE_STEP):
                break
    except zlib.error:
        raise BundleBadContent(reason="roster is not zlib") from None
    if not inflater.eof or inflater.unused_data:
        raise BundleBadContent(reason="roster stream")
    return raw


def _roster(section: bytes, count: int) -> dict[str, RosterEntry]:
    try:
        rows = json.loads(_inflate_roster(section))
    except (ValueError, RecursionError):
        raise BundleBadContent(reason="roster is not JSON") from None
    if not isinstance(rows, list) or len(rows) != count:
        raise BundleBadContent(reason="roster count")
    roster = {}
    for row in rows:
        if not (isinstance(row, list) and len(row) == 6 and all(isinstance(v, str) for v in row)
                and row[2] in ROLES):
            raise BundleBadContent(reason="roster entry")
        roster[row[0]] = RosterEntry(*row)
    return roster


def check(data: bytes, root_public_key: bytes, now: datetime, *, current_version: int = 0,
          event_id: int | None = None, current_sha256: str | None = None,
          trust_floor: tuple[int, str] | None = None) -> EventBundle:
    """Verify and open a bundle; raise one of REFUSALS saying why not.

    ``event_id``: the event the station is bound to (None: not bound yet). ``current_version`` and
    ``current_sha256``: the installed bundle of that event. ``trust_floor``: (version, payload
    SHA-256) of the newest trust bundle the station has accepted, which may not go back either."""
    now = trust.utc(now)
    header, sections, signed, signature = _frame(data)
    trusted = trust.check(sections["trust"], root_public_key, now)
    if trust_floor is not None:
        trust.check_not_older(trusted, *trust_floor)
    if not trusted.verify(KeyRole.EVENT_BUNDLE, header.key_id, signed, signature):
        raise BundleTampered()
    # From here on the header is the union's word.
    roster = _roster(sections["roster"], header.roster_count)
    try:
        revoked = revocations.decode(sections["revoked"], header.revoked_k, header.revoked_count)
    except revocations.DecodeError as exc:
        raise BundleBadContent(reason=f"revoked set: {exc}") from None
    event = header.event
    if event_id is not None and event.id != event_id:
        raise BundleOtherEvent(event=event.name, station_event=str(event_id))
    bundle = EventBundle(event, header.version, header.issued_at, header.expires_at, header.key_id, trusted, roster,
                         revoked, header.feed_version, hashlib.sha256(data).hexdigest(), len(data), header.raw)
    if bundle.is_expired(now):
        raise BundleExpired(expired=trust.timestamp(bundle.valid_until))
    if header.issued_at > now + trust.CLOCK_SKEW:
        raise BundleFromFuture(issued=trust.timestamp(header.issued_at))
    if header.version < current_version or (header.version == current_version
                                            and current_sha256 not in (None, bundle.sha256)):
        raise BundleRollback(version=header.version, current=current_version)
    return bundle


__all__ = ["REFUSALS", "BundleBadContent", "BundleBadHeader", "BundleError", "BundleExpired", "BundleFromFuture",
           "BundleNotABundle", "BundleOtherEvent", "BundleRollback", "BundleSectionMismatch", "BundleTampered",
           "BundleTooLarge", "BundleTrailingData", "BundleTruncated", "EventBundle", "EventInfo", "RosterEntry", "SessionInfo",
           "TrustBundleError", "build", "check", "peek"]
