"""Key roles, key records, the signature input and verification: plain rules that every backend
and every verifier (stations, partners) share. Verification needs only the ``cryptography``
package and a public key; no keystore.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from unioncard.errors import UnionCardError
from unioncard.i18n import N_


class KeyRole(StrEnum):
    ROOT = "root"                          # signs trust bundles only; kept in its own store
    CARD_CREDENTIAL = "card_credential"    # the signed credential printed on / encoded in a card
    CARD_CERTIFICATE = "card_certificate"  # certificates of chip keys
    EVENT_BUNDLE = "event_bundle"          # rosters and revocation lists for reader stations
    PARTNER_RESPONSE = "partner_response"  # answers of the partner API
    CARD_KEY_MASTER = "card_key_master"    # symmetric master for per-card keys (AES-CMAC)


class Algorithm(StrEnum):
    ED25519 = "Ed25519"
    P256 = "ECDSA-P256-SHA256"
    AES128 = "AES-128"


class KeyStatus(StrEnum):
    ACTIVE = "active"            # signs; the newest key of its role
    VERIFY_ONLY = "verify_only"  # rotated out: its old signatures stay valid, it signs nothing new
    RETIRED = "retired"          # private part destroyed; no longer trusted (card keys: still verify-only)


SIGNING_ALGORITHMS = (Algorithm.ED25519, Algorithm.P256)
SYMMETRIC_ROLES = (KeyRole.CARD_KEY_MASTER,)
# Roles whose signatures are carried by cards for the cards' whole life: their keys stay
# trusted (verify-only) after retirement, or every card they signed would stop verifying.
CARD_ROLES = (KeyRole.CARD_CREDENTIAL, KeyRole.CARD_CERTIFICATE)
DEFAULT_ALGORITHM = {role: Algorithm.AES128 if role in SYMMETRIC_ROLES else Algorithm.ED25519 for role in KeyRole}
# Chips verify their certificates with ECDSA P-256, which card operating systems implement.
DEFAULT_ALGORITHM[KeyRole.CARD_CERTIFICATE] = Algorithm.P256

SIGNATURE_CONTEXT = b"UNIONCARD-SIG-1\x00"


# --- errors -------------------------------------------------------------------------------------

class KeyStoreError(UnionCardError):
    code = "keystore_error"
    message = N_("Key store error")
    http_status = 500


class WrongSecret(KeyStoreError):
    code = "wrong_secret"
    message = N_("Wrong passphrase or PIN for the key store")
    http_status = 403


class KeyStoreUnavailable(KeyStoreError):
    code = "keystore_unavailable"
    message = N_("The key store is not available")
    http_status = 503


class KeyNotFound(KeyStoreError):
    code = "key_not_found"
    message = N_("No such key: %(key_id)s")
    http_status = 404


class KeyRetired(KeyStoreError):
    code = "key_retired"
    message = N_("Key %(key_id)s cannot sign: it is %(status)s")
    http_status = 409


class WrongRole(KeyStoreError):
    code = "key_wrong_role"
    message = N_("Key %(key_id)s is a %(key_role)s key and cannot be used for %(role)s")
    http_status = 409


class NoActiveKey(KeyStoreError):
    code = "no_active_key"
    message = N_("There is no active %(role)s key: run «unioncard keys rotate --role %(role)s»")
    http_status = 409


class TrustBundleError(KeyStoreError):
    code = "trust_bundle_invalid"
    message = N_("The trust bundle is not valid")
    http_status = 400


# --- records ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    role: KeyRole
    algorithm: Algorithm
    status: KeyStatus
    created_at: datetime
    public_key: bytes | None = None  # SubjectPublicKeyInfo DER; None for symmetric keys
    retired_at: datetime | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key) if self.public_key else self.key_id

    def with_status(self, status: KeyStatus, at: datetime | None = None) -> "KeyInfo":
        return replace(self, status=status, retired_at=at if status == KeyStatus.RETIRED else self.retired_at)

    def to_record(self) -> dict:
        """The key's public record as JSON-ready values (what every key store keeps beside the key)."""
        return {"key_id": self.key_id, "role": self.role.value, "algorithm": self.algorithm.value,
                "status": self.status.value, "created_at": self.created_at.isoformat(),
                "retired_at": self.retired_at.isoformat() if self.retired_at else None,
                "public_key": b64(self.public_key) if self.public_key else None}

    @classmethod
    def from_record(cls, raw: dict) -> "KeyInfo":
        return cls(key_id=raw["key_id"], role=KeyRole(raw["role"]), algorithm=Algorithm(raw["algorithm"]),
                   status=KeyStatus(raw["status"]), created_at=datetime.fromisoformat(raw["created_at"]),
                   public_key=unb64(raw["public_key"]) if raw.get("public_key") else None,
                   retired_at=datetime.fromisoformat(raw["retired_at"]) if raw.get("retired_at") else None)


@dataclass(frozen=True)
class Signature:
    key_id: str
    algorithm: Algorithm
    value: bytes


def fingerprint(public_key_der: bytes) -> str:
    """SHA-256 of the SubjectPublicKeyInfo DER, hex, in colon-separated pairs (as people read them out)."""
    digest = hashlib.sha256(public_key_der).hexdigest().upper()
    return ":".join(digest[i:i + 4] for i in range(0, len(digest), 4))


def key_id_for(public_key_der: bytes) -> str:
    """The first 16 hex digits of the SHA-256 of the public key: stable and derivable by a verifier."""
    return hashlib.sha256(public_key_der).hexdigest()[:16]


def check_role_algorithm(role: KeyRole, algorithm: Algorithm) -> None:
    if role in SYMMETRIC_ROLES:
        ok = algorithm == Algorithm.AES128
    elif role == KeyRole.ROOT:
        ok = algorithm == Algorithm.ED25519
    else:
        ok = algorithm in SIGNING_ALGORITHMS
    if not ok:
        raise KeyStoreError(N_("Algorithm %(algorithm)s cannot be used for %(role)s keys"),
                            code="algorithm_not_for_role", algorithm=algorithm, role=role)


def signing_input(role: KeyRole, payload: bytes) -> bytes:
    """What is actually signed: a fixed context, the role, then the payload. A signature made for
    one role can therefore never verify as another role's, whatever the payload bytes."""
    return SIGNATURE_CONTEXT + KeyRole(role).value.encode("ascii") + b"\x00" + payload


def load_public_key(public_key_der: bytes):
    return serialization.load_der_public_key(public_key_der)


def public_key_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def verify(public_key_der_bytes: bytes, algorithm: Algorithm, role: KeyRole, payload: bytes, signature: bytes) -> bool:
    """True if ``signature`` is the key's signature of ``payload`` for ``role``."""
    key = load_public_key(public_key_der_bytes)
    message = signing_input(role, payload)
    try:
        if algorithm == Algorithm.ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif algorithm == Algorithm.P256 and isinstance(key, ec.EllipticCurvePublicKey) \
                and isinstance(key.curve, ec.SECP256R1):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


# --- per-card key diversification (NXP AN10922, AES-128) ----------------------------------------

def diversification_input(uid: bytes, application_id: bytes, system_identifier: bytes) -> bytes:
    """The CMAC input of AN10922's AES-128 diversification: 0x01 ‖ UID ‖ AID ‖ system identifier.

    The note pads the input to 32 bytes and uses CMAC subkey K2 when it was padded, which is
    exactly what standard CMAC does for inputs of 17 to 32 bytes. Keeping the input in that
    range lets any standard CMAC (``cryptography``'s, or a token's CKM_AES_CMAC) compute it.
    """
    data = b"\x01" + bytes(uid) + bytes(application_id) + bytes(system_identifier)
    if not 17 <= len(data) <= 32:
        raise KeyStoreError(N_("Card key derivation input must be 16 to 31 bytes (UID, application and system id)"),
                            code="diversification_input_length")
    return data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5), as in trust bundles and card credentials."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a string")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
