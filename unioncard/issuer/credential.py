"""The signed card credential: what a card's QR code, its chip and the virtual card carry, and what
a reader station or a partner checks offline. Format: docs/formats.md §6.

A compact binary record signed by a ``card_credential`` key; for a QR code it is written as

    UC1:<base45(record)>

Base45 uses only the characters of the QR alphanumeric mode, so the code stays small (version ≤ 10
at error correction M, even for the longest name allowed). The record holds only what a desk
needs to compare the card with the person in front of it: number, surname and initials, region,
date, card kind. No birth date, no organisation, no internal ids.
"""

from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, timedelta

import base45

from unioncard.errors import ValidationError
from unioncard.hsm.domain import KeyRole
from unioncard.i18n import N_
from unioncard.issuer import cardnumber

QR_PREFIX = "UC1:"
FORMAT_VERSION = 1
EPOCH = date(2000, 1, 1)
MAX_NAME_BYTES = 64
KINDS = {"plastic": 1, "virtual": 2}
KIND_NAMES = {code: name for name, code in KINDS.items()}
# version, kind, number, days since EPOCH, region (2 ASCII), key id (8 bytes), name length
_HEAD = struct.Struct(">BBQH2s8sB")


class CredentialError(ValidationError):
    code = "credential_invalid"
    message = N_("This is not a card credential or it is damaged")


@dataclass(frozen=True)
class Credential:
    number: str
    full_name: str
    region_code: str
    issued_on: date
    kind: str
    key_id: str
    payload: bytes      # the signed part of the record
    signature: bytes

    @property
    def record(self) -> bytes:
        return self.payload + self.signature

    @property
    def qr_text(self) -> str:
        return QR_PREFIX + b45encode(self.record)


def _initials(name: str | None) -> str:
    """«Мария» → «М.», and each part of a hyphenated name: «Анна-Мария» → «А.-М.»."""
    parts = [part.strip() for part in (name or "").split("-")]
    return "-".join(f"{part[0]}." for part in parts if part)


def _drop_last(text: str) -> str:
    """``text`` without its last character, and without a combining mark left dangling."""
    end = len(text)
    while end and unicodedata.combining(text[end - 1]):
        end -= 1
    return text[:max(0, end - 1)]


def short_name(surname: str, given_name: str, patronymic: str | None) -> str:
    """Surname and initials, at most MAX_NAME_BYTES of UTF-8 (formats.md §6.2).

    NFC first: the same name typed with decomposed letters (и + U+0306 for «й») must give the
    same bytes, and must not lose a mark when cut. Too long, the surname loses characters from
    its end and ends in «…»; the initials are kept, since the desk compares them with the person."""
    surname, given_name, patronymic = (unicodedata.normalize("NFC", (part or "").strip())
                                       for part in (surname, given_name, patronymic))
    initials = " ".join(part for part in (_initials(given_name), _initials(patronymic)) if part)

    def joined(head: str) -> str:
        return f"{head} {initials}" if initials else head

    name = joined(surname)
    while len(name.encode("utf-8")) > MAX_NAME_BYTES and surname:
        surname = _drop_last(surname).rstrip(" -")
        name = joined(f"{surname}…")
    while len(name.encode("utf-8")) > MAX_NAME_BYTES:  # initials alone too long: cut the whole
        name = _drop_last(name.rstrip("…")) + "…"
    return name


def payload_for(number: str, surname: str, given_name: str, patronymic: str | None, region_code: str,
                issued_on: date, key_id: str, kind: str = "plastic") -> bytes:
    return _payload(number, surname, given_name, patronymic, region_code, issued_on, bytes.fromhex(key_id), kind)


def _payload(number: str, surname: str, given_name: str, patronymic: str | None, region_code: str,
             issued_on: date, key: bytes, kind: str) -> bytes:
    name = short_name(surname, given_name, patronymic).encode("utf-8")
    region = region_code.encode("ascii")
    if len(region) != 2:
        raise ValueError(f"region code must be two ASCII characters: {region_code!r}")
    return _HEAD.pack(FORMAT_VERSION, KINDS[kind], int(cardnumber.compact(number)), (issued_on - EPOCH).days,
                      region, key, len(name)) + name


def issue(signer, number: str, surname: str, given_name: str, patronymic: str | None, region_code: str,
          issued_on: date, kind: str = "plastic") -> Credential:
    """Sign with the current card_credential key of ``signer`` (a KeyStore)."""
    key_id = signer.active_key(KeyRole.CARD_CREDENTIAL).key_id
    payload = payload_for(number, surname, given_name, patronymic, region_code, issued_on, key_id, kind)
    signature = signer.sign(KeyRole.CARD_CREDENTIAL, payload, key_id=key_id)
    return decode_record(payload + signature.value)


def issue_many(signer, rows) -> list[str]:
    """QR texts of many credentials, each the same as ``issue(signer, *row).qr_text``: the key is
    looked up once and each record is built once (a bureau run signs its whole batch so). Each row is
    (number, surname, given_name, patronymic, region_code, issued_on, kind)."""
    key_id = signer.active_key(KeyRole.CARD_CREDENTIAL).key_id
    key = bytes.fromhex(key_id)
    # The numbers are the registry's own, checked when they were made (cardnumber.build, or the
    # migration's import): unlike issue, no decode_record after signing.
    payloads = [_payload(*row[:6], key, row[6]) for row in rows]
    signatures = signer.sign_many(KeyRole.CARD_CREDENTIAL, payloads, key_id)
    return [QR_PREFIX + b45encode(payload + signature) for payload, signature in zip(payloads, signatures)]


_BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


@lru_cache(maxsize=1)
def _base45_pairs() -> tuple[str, ...]:
    """The three characters of every two-byte value (RFC 9285 §4: n = a·256 + b = c + 45·d + 45²·e)."""
    return tuple(_BASE45[n % 45] + _BASE45[n // 45 % 45] + _BASE45[n // 2025] for n in range(65536))


def b45encode(data: bytes) -> str:
    """Base45 (RFC 9285) as the ``base45`` package encodes it, by table: a bureau run encodes
    100 000 records, and the package's arithmetic per byte was more than the signature's cost."""
    pairs = _base45_pairs()
    whole = len(data) // 2
    text = "".join([pairs[n] for n in struct.unpack(f">{whole}H", data[:2 * whole])])
    if len(data) % 2:
        text += _BASE45[data[-1] % 45] + _BASE45[data[-1] // 45]
    return text


def decode_record(record: bytes) -> Credential:
    """Decode a binary record (as stored on the chip) without verifying its signature."""
    try:
        version, kind, number, days, region, key_id, name_length = _HEAD.unpack_from(record)
        if version != FORMAT_VERSION or kind not in KIND_NAMES or not 1 <= name_length <= MAX_NAME_BYTES:
            raise ValueError("version")
        end = _HEAD.size + name_length
        if len(record) <= end:
            raise ValueError("truncated")
        name = record[_HEAD.size:end].decode("utf-8")
        text_number = cardnumber.validate(f"{number:016d}")
        return Credential(text_number, name, region.decode("ascii"), EPOCH + timedelta(days=days), KIND_NAMES[kind],
                          key_id.hex(), record[:end], record[end:])
    except (struct.error, ValueError, UnicodeDecodeError, cardnumber.ValidationError, OverflowError):
        raise CredentialError() from None


def parse(text: str) -> Credential:
    """Decode a scanned QR text without verifying (verification needs a trust bundle: ``verify``)."""
    text = text.strip()
    if not text.upper().startswith(QR_PREFIX):
        raise CredentialError()
    try:
        record = base45.b45decode(text[len(QR_PREFIX):].upper())
    except (ValueError, KeyError, IndexError):
        raise CredentialError() from None
    return decode_record(record)


def check_signature(credential: Credential, bundle) -> Credential:
    if not bundle.verify(KeyRole.CARD_CREDENTIAL, credential.key_id, credential.payload, credential.signature):
        raise CredentialError(N_("The card's signature does not match: the card is forged or damaged"),
                              code="credential_bad_signature")
    return credential


def verify(text: str, bundle) -> Credential:
    """Parse a QR text and check its signature against a trust bundle (unioncard.hsm.trust.TrustBundle)."""
    return check_signature(parse(text), bundle)


def is_credential(text: str) -> bool:
    return text.strip().upper().startswith(QR_PREFIX)


def number_from_scan(text: str) -> str:
    """A scanned code is our credential (QR) or the bare number (barcode, typed)."""
    text = text.strip()
    if is_credential(text):
        return parse(text).number
    return text
