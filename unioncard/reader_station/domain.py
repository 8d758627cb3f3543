"""What a desk decides about a scan, offline: plain rules over an event bundle and the journal.

A scan is a QR text, a barcode or typed number, or what a chip gave (credential, certificate,
and whether the card answered a challenge with the certified key). The verdict is green (let in,
recorded), amber (look again: already in, or only a typed number to check by eye) or red (refused),
with a stable code, the Russian reason from the catalogue, and the name and role when known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from unioncard.hsm.trust import utc
from unioncard.i18n import N_
from unioncard.issuer import card_certificate, cardnumber, credential
from unioncard.partner.domain import normalise_name


class Colour(StrEnum):
    GREEN = "green"
    AMBER = "amber"
    RED = "red"


class Source(StrEnum):
    WEDGE = "wedge"      # a keyboard-wedge scanner typing into the page
    TYPED = "typed"      # a person typing the number
    SERIAL = "serial"    # a serial scanner
    CHIP = "chip"        # a PC/SC reader
    DOCUMENT = "document"  # found by name on the list, identity checked from a document: no card


ROLE_LABELS = {"delegate": N_("Delegate"), "guest": N_("Guest"), "staff": N_("Staff"), "member": N_("Union member")}

REASONS = {
    "admitted": N_("Welcome"),
    "admitted_number_only": N_("Number accepted without a signature: check the card and the face by eye"),
    "admitted_by_document": N_("Checked in by an identity document, without the card"),
    "already_checked_in": N_("Already checked in today at %(time)s, at «%(desk)s»"),
    "revoked": N_("The card is blocked or void: do not admit, send to the help desk"),
    "not_on_roster": N_("Not on the list for this event"),
    "forged": N_("The card's signature does not match: the card is forged or damaged"),
    "clone": N_("The chip did not prove its key: the card is a copy"),
    "chip_mismatch": N_("The chip's certificate belongs to another card"),
    "not_our_card": N_("This is not a card of our union"),
    "foreign_code": N_("This code is not from a union card"),
    "number_typo": N_("The number has a typing error: check digit does not match"),
    "number_incomplete": N_("Incomplete number: %(digits)s of 16 digits. Scan or type it again"),
    "unreadable": N_("The scanner sent unreadable data. Scan again"),
    "partial_scan": N_("The scan was cut off. Scan again"),
    "card_removed": N_("The card was taken away too early. Hold it on the reader until the beep"),
    "not_a_union_chip": N_("This card has no union chip. Scan the QR code or type the number"),
    "chip_error": N_("The chip could not be read. Try again or scan the QR code"),
    "session_in": N_("Entrance recorded: %(session)s"),
    "session_out": N_("Exit recorded: %(session)s"),
    "already_in_session": N_("Already inside since %(time)s: %(session)s"),
    "no_such_session": N_("This desk's session is not in the event data: choose the session again"),
    "session_not_today": N_("The session «%(session)s» is held on %(day)s, not today: switch the desk to today's session"),
    "no_bundle": N_("The station has no event data: synchronise or load a bundle"),
    "bundle_expired": N_("The event data have expired: synchronise the station"),
}


@dataclass(frozen=True)
class ChipRead:
    """What a chip gave: its credential record, certificate record, the challenge and answer."""
    credential_record: bytes
    certificate_record: bytes
    challenge: bytes
    response: bytes


@dataclass(frozen=True)
class Scan:
    source: Source
    text: str = ""
    chip: ChipRead | None = None
    problem: str | None = None   # set by an input that already knows the scan is bad


@dataclass(frozen=True)
class PreviousCheckIn:
    at: datetime
    desk: str


@dataclass
class Verdict:
    colour: Colour
    code: str
    number: str | None = None
    name: str | None = None
    role: str | None = None
    region_code: str | None = None
    params: dict = field(default_factory=dict)
    # The card's signed credential (QR text form) when its signature verified here: the journal
    # sends it to the server, which may then show the name it carries, and no other.
    credential: str | None = None

    @property
    def records_check_in(self) -> bool:
        return self.code in ADMITTING

    @property
    def records_session(self) -> bool:
        return self.code in SESSION_CODES


ADMITTING = ("admitted", "admitted_number_only", "admitted_by_document")


_DIGITS = re.compile(r"^[\d\s\-.]+$")


def _red(code: str, number: str | None = None, **params) -> Verdict:
    return Verdict(Colour.RED, code, number=number, params=params)


def identify(scan: Scan, bundle) -> tuple[str | None, str | None, Verdict | None]:
    """(number, name from a signed credential, or a red verdict) for a scan."""
    if scan.problem:
        return None, None, Verdict(Colour.AMBER if scan.problem in ("partial_scan", "card_removed") else Colour.RED,
                                   scan.problem)
    if scan.chip is not None:
        return _identify_chip(scan.chip, bundle)
    text = scan.text.strip()
    if not text or not text.isprintable():
        return None, None, _red("unreadable")
    if credential.is_credential(text):
        try:
            made = credential.verify(text, bundle.trust)
        except credential.CredentialError as exc:
            return None, None, _red("forged" if exc.code == "credential_bad_signature" else "foreign_code")
        return made.number, made.full_name, None
    if not _DIGITS.match(text):
        return None, None, _red("foreign_code")
    digits = cardnumber.compact(text)
    if len(digits) < cardnumber.LENGTH:
        return None, None, Verdict(Colour.AMBER, "number_incomplete", params={"digits": len(digits)})
    try:
        number = cardnumber.validate(digits)
    except cardnumber.InvalidLength:
        return None, None, _red("not_our_card")
    except cardnumber.ValidationError:
        return None, None, _red("number_typo")
    return number, None, None


def _identify_chip(chip: ChipRead, bundle) -> tuple[str | None, str | None, Verdict | None]:
    try:
        made = credential.check_signature(credential.decode_record(chip.credential_record), bundle.trust)
    except credential.CredentialError as exc:
        return None, None, _red("forged" if exc.code == "credential_bad_signature" else "not_a_union_chip")
    try:
        certificate = card_certificate.check_signature(card_certificate.decode(chip.certificate_record),
                                                       bundle.trust)
    except card_certificate.CertificateError:
        return made.number, None, _red("forged", made.number)
    if certificate.number != made.number:
        return made.number, None, _red("chip_mismatch", made.number)
    if not card_certificate.response_is_valid(certificate.public_point, made.number, chip.challenge, chip.response):
        return made.number, None, _red("clone", made.number)
    return made.number, made.full_name, None


def venue_time(bundle, moment: datetime) -> str:
    """«09:41» on the venue's clock (the event's UTC offset), whatever the laptop's zone."""
    return (utc(moment) + timedelta(minutes=bundle.event.utc_offset)).strftime("%H:%M")


def _no_previous(numbers, since, until):
    return None


def _unusable(bundle, now: datetime) -> Verdict | None:
    if bundle is None:
        return _red("no_bundle")
    if bundle.is_expired(now):
        return _red("bundle_expired")
    return None


def decide(scan: Scan, bundle, now: datetime, previous=_no_previous) -> Verdict:
    """The verdict for one scan. ``previous(numbers, since, until)`` gives the earliest live
    check-in between ``since`` and ``until`` of any of the numbers (the person's cards) that the
    station knows of (its own or synced from other desks), a PreviousCheckIn or None. The window
    is the event day ``now`` falls on: a delegate checked in yesterday is welcome again today."""
    refusal = _unusable(bundle, now)
    if refusal is not None:
        return refusal
    number, signed_name, refusal = identify(scan, bundle)
    if refusal is not None:
        return refusal
    verdict = _decide(number, signed_name, bundle, now, previous, check_prefix=True)
    if signed_name is not None and verdict.records_check_in:
        verdict.credential = _verified_credential(scan)
    return verdict


def _verified_credential(scan: Scan) -> str | None:
    """The QR text of the credential that ``identify`` verified for this scan."""
    if scan.chip is not None:
        return credential.decode_record(scan.chip.credential_record).qr_text
    return credential.parse(scan.text.strip()).qr_text


def decide_by_document(person: str, bundle, now: datetime, previous=_no_previous) -> Verdict:
    """A person found by name on the list, whose identity the staff checked from a document:
    the same rules as for their card (blocked, already in today), recorded as «by document».
    Of a person's cards the lowest-numbered one not blocked stands for them, so two desks
    checking the same person in by name offline record the same number (one wins at sync)."""
    refusal = _unusable(bundle, now)
    if refusal is not None:
        return refusal
    entries = bundle.people.get(person) if bundle.event.admission == "roster" else None
    if not entries:
        return _red("not_on_roster")
    usable = [e for e in entries if not bundle.is_revoked(e.number)]
    verdict = _decide((usable or entries)[0].number, None, bundle, now, previous, check_prefix=False)
    if verdict.code == "admitted":
        verdict.code = "admitted_by_document"
    return verdict


def _decide(number: str, signed_name: str | None, bundle, now: datetime, previous, check_prefix: bool) -> Verdict:
    # Our own numbers and the earlier registry's (the bundle's prefixes): a legacy plastic card
    # has no signed credential, so it is judged as a typed number is (amber unless listed).
    if check_prefix and not bundle.event.accepts_number(number):
        return _red("not_our_card", number)
    entry = bundle.roster.get(number)
    name = entry.name if entry else signed_name
    role = entry.role if entry else "member"
    # Our own numbers name their region; a legacy number's digits do not.
    own = number.startswith(bundle.event.card_prefixes[0])
    region = entry.region_code if entry else (cardnumber.region_of(number) if own else None)
    if bundle.is_revoked(number):
        return Verdict(Colour.RED, "revoked", number, name, role, region)
    if bundle.event.admission == "roster" and entry is None:
        return Verdict(Colour.RED, "not_on_roster", number, name, None, region)
    earlier = previous(bundle.cards_of(number), *bundle.event.day_window(now))
    if earlier is not None:
        return Verdict(Colour.AMBER, "already_checked_in", number, name, role, region,
                       {"time": venue_time(bundle, earlier.at), "desk": earlier.desk})
    signed = signed_name is not None
    if not signed and entry is None:
        return Verdict(Colour.AMBER, "admitted_number_only", number, None, role, region)
    return Verdict(Colour.GREEN, "admitted", number, name, role, region)


# --- sessions: who enters and leaves a sitting --------------------------------------------------

DIRECTIONS = ("in", "out")
SESSION_CODES = ("session_in", "session_out")


def _no_last(numbers, session_id):
    return None


def decide_session(scan: Scan, bundle, now: datetime, session_id: int, direction: str, last=_no_last) -> Verdict:
    """A scan at a session's door. The card is judged as at the registration desk (blocked, not on
    the list, forged: the same refusals); then ``last(numbers, session_id)`` — the person's latest
    entry for this session that the desk knows, a (direction, moment) pair or None — tells an
    entry from a second entry without leaving (amber). Leaving is always recorded."""
    refusal = _unusable(bundle, now)
    if refusal is not None:
        return refusal
    session = bundle.event.session(session_id)
    if session is None or direction not in DIRECTIONS:
        return _red("no_such_session")
    if session.day != bundle.event.day_of(now):
        return _red("session_not_today", day=session.day.strftime("%d.%m.%Y"), session=session.name)
    verdict = decide(scan, bundle, now)
    if not verdict.records_check_in:
        return verdict
    params = {"session": session.name}
    previous = last(bundle.cards_of(verdict.number), session.id)
    if direction == "in" and previous is not None and previous[0] == "in":
        verdict.colour, verdict.code = Colour.AMBER, "already_in_session"
        verdict.params = {**params, "time": venue_time(bundle, previous[1])}
        return verdict
    # A typed number stays amber (check by eye), but is recorded like a signed card.
    verdict.colour = Colour.GREEN if verdict.colour == Colour.GREEN else Colour.AMBER
    verdict.code = "session_in" if direction == "in" else "session_out"
    verdict.params = params
    return verdict


# --- finding a person on the list by name, offline ------------------------------------------------

NAME_SEARCH_MIN = 3
NAME_SEARCH_LIMIT = 20


@dataclass(frozen=True)
class PersonMatch:
    person: str
    name: str
    organisation: str
    role: str
    masked_number: str   # the card number with all but its last four digits hidden
    blocked: bool        # every card the person holds is blocked or void


@dataclass(frozen=True)
class NameSearch:
    state: str           # "ok", "too_short" (fewer than 3 letters), "no_list" (an «any member» event)
    matches: tuple[PersonMatch, ...] = ()
    more: bool = False   # more people match than are shown: type more letters


def mask_number(number: str) -> str:
    return "•••• •••• •••• " + number[-4:]


def _name_words(name: str) -> tuple[str, ...]:
    """The normalised name, then every word and every part of a double surname («Римская-Корсакова»)."""
    whole = normalise_name(name)
    words = whole.split(" ")
    return (whole, *words, *(part for word in words if "-" in word for part in word.split("-")))


def find_by_name(bundle, text: str, limit: int = NAME_SEARCH_LIMIT) -> NameSearch:
    """People on the event's list whose name, or a word of it, starts with ``text``, compared as
    the partner API compares names (case, ё/е, hyphens). An «any member» event carries no names
    of the registry on the desk, so it has nothing to search."""
    if bundle is None or bundle.event.admission != "roster":
        return NameSearch("no_list")
    query = normalise_name(text)
    if sum(c.isalpha() for c in query) < NAME_SEARCH_MIN:
        return NameSearch("too_short")
    index = _name_index(bundle)
    found = [person for person, words in index if any(word.startswith(query) for word in words)]
    matches = []
    for person in found[:limit]:
        entries = bundle.people[person]
        usable = [e for e in entries if not bundle.is_revoked(e.number)]
        shown = (usable or list(entries))[0]
        matches.append(PersonMatch(person, shown.name, shown.organisation, shown.role, mask_number(shown.number),
                                   not usable))
    return NameSearch("ok", tuple(matches), len(found) > limit)


def _name_index(bundle) -> list[tuple[str, tuple[str, ...]]]:
    """(person, name words) sorted by name; built once per bundle."""
    if bundle.name_index is None:
        people = sorted(bundle.people.items(), key=lambda item: (normalise_name(item[1][0].name), item[0]))
        bundle.name_index = [(person, _name_words(entries[0].name)) for person, entries in people]
    return bundle.name_index
