"""The chip's own key: a P-256 key pair generated on the card, whose public key the bureau
certifies with a ``card_certificate`` key. A desk checks the certificate against the trust bundle,
then challenges the card to sign a fresh random value: a copy of the credential without the
card's private key fails the challenge. Format: docs/formats.md §8.

    certificate = version (1) ‖ card number (uint64) ‖ card public key (65, uncompressed point)
                  ‖ key id (8) ‖ signature of the card_certificate key over the bytes before it
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from unioncard.errors import ValidationError
from unioncard.hsm.domain import KeyRole
from unioncard.i18n import N_
from unioncard.issuer import cardnumber

FORMAT_VERSION = 1
POINT_SIZE = 65
_HEAD = struct.Struct(">BQ65s8s")
# What the card signs: a fixed context, the card number and the desk's random challenge, hashed
# with SHA-256 by ECDSA. The context keeps the card from being used to sign anything else.
CHALLENGE_CONTEXT = b"UNIONCARD-CHALLENGE-1\x00"


class CertificateError(ValidationError):
    code = "card_certificate_invalid"
    message = N_("The card's chip certificate is damaged or not ours")


@dataclass(frozen=True)
class CardCertificate:
    number: str
    public_point: bytes
    key_id: str
    payload: bytes
    signature: bytes

    @property
    def record(self) -> bytes:
        return self.payload + self.signature


def issue(signer, number: str, public_point: bytes) -> CardCertificate:
    if len(public_point) != POINT_SIZE or public_point[0] != 4:
        raise CertificateError(N_("The card gave a public key of the wrong shape"), code="card_key_invalid")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_point)
    except ValueError:
        raise CertificateError(N_("The card gave a public key that is not on the curve"),
                               code="card_key_invalid") from None
    key_id = signer.active_key(KeyRole.CARD_CERTIFICATE).key_id
    payload = _HEAD.pack(FORMAT_VERSION, int(cardnumber.compact(number)), public_point, bytes.fromhex(key_id))
    return decode(payload + signer.sign(KeyRole.CARD_CERTIFICATE, payload, key_id=key_id).value)


def decode(record: bytes) -> CardCertificate:
    try:
        version, number, point, key_id = _HEAD.unpack_from(record)
        if version != FORMAT_VERSION or len(record) <= _HEAD.size:
            raise ValueError("version")
        return CardCertificate(cardnumber.validate(f"{number:016d}"), point, key_id.hex(), record[:_HEAD.size],
                               record[_HEAD.size:])
    except (struct.error, ValueError, cardnumber.ValidationError):
        raise CertificateError() from None


def check_signature(certificate: CardCertificate, bundle) -> CardCertificate:
    if not bundle.verify(KeyRole.CARD_CERTIFICATE, certificate.key_id, certificate.payload, certificate.signature):
        raise CertificateError(N_("The chip's certificate was not made by the union"), code="card_certificate_forged")
    return certificate


def challenge_message(number: str, challenge: bytes) -> bytes:
    return CHALLENGE_CONTEXT + int(cardnumber.compact(number)).to_bytes(8, "big") + challenge


def response_is_valid(public_point: bytes, number: str, challenge: bytes, signature_der: bytes) -> bool:
    """True if the card holding the private half of ``public_point`` signed this challenge."""
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_point)
        key.verify(signature_der, challenge_message(number, challenge), ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def fingerprint(public_point: bytes) -> str:
    return hashlib.sha256(public_point).hexdigest()[:16]
