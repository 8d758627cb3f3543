"""The signed card credential: what a card's QR code (and chip, and virtual card) carries, and
what a reader station checks offline. Format: docs/formats.md §6.

    UC1.<base64url(payload)>.<key id>.<base64url(signature)>

The payload is compact UTF-8 JSON {"v":1,"n":number,"fn":"Surname G. P.","r":region,"iat":date};
the signature is the card_credential key's, over the payload bytes (with the role context of §1).
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from datetime import date

from unioncard.errors import ValidationError
from unioncard.hsm.domain import KeyRole, b64url, unb64url
from unioncard.i18n import N_
from unioncard.issuer import cardnumber

PREFIX = "UC1"


class CredentialError(ValidationError):
    code = "credential_invalid"
    message = N_("This is not a card credential or it is damaged")


@dataclass(frozen=True)
class Credential:
    number: str
    full_name: str
    region_code: str
    issued_on: str
    key_id: str
    payload: bytes
    signature: bytes


def short_name(surname: str, given_name: str, patronymic: str | None) -> str:
    initials = f"{given_name[:1]}." + (f" {patronymic[:1]}." if patronymic else "")
    return f"{surname} {initials}"


def payload_for(number: str, surname: str, given_name: str, patronymic: str | None, region_code: str,
                issued_on: date) -> bytes:
    body = {"v": 1, "n": cardnumber.compact(number), "fn": short_name(surname, given_name, patronymic),
            "r": region_code, "iat": issued_on.isoformat()}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def issue(signer, payload: bytes) -> str:
    """Sign with the card_credential key of ``signer`` (a KeyStore) and encode for a QR code."""
    signature = signer.sign(KeyRole.CARD_CREDENTIAL, payload)
    return f"{PREFIX}.{b64url(payload)}.{signature.key_id}.{b64url(signature.value)}"


def parse(text: str) -> Credential:
    """Decode without verifying (verification needs a trust bundle: ``verify``)."""
    try:
        prefix, payload_b64, key_id, signature_b64 = text.strip().split(".")
        if prefix != PREFIX:
            raise ValueError(prefix)
        payload = unb64url(payload_b64)
        body = json.loads(payload.decode("utf-8"))
        if body.get("v") != 1:
            raise ValueError("version")
        number = cardnumber.validate(body["n"])
        return Credential(number, body["fn"], body["r"], body["iat"], key_id, payload, unb64url(signature_b64))
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, cardnumber.ValidationError):
        raise CredentialError() from None


def verify(text: str, bundle) -> Credential:
    """Parse and check the signature against a trust bundle (unioncard.hsm.trust.TrustBundle)."""
    credential = parse(text)
    if not bundle.verify(KeyRole.CARD_CREDENTIAL, credential.key_id, credential.payload, credential.signature):
        raise CredentialError(N_("The card's signature does not match: the card is forged or damaged"),
                              code="credential_bad_signature")
    return credential


def number_from_scan(text: str) -> str:
    """A scanned code is our credential (QR) or the bare number (barcode, typed)."""
    text = text.strip()
    if text.startswith(PREFIX + "."):
        return parse(text).number
    return text
