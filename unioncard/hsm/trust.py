"""The trust bundle: the root key's signed, versioned, expiring list of the public keys stations
and partners may trust, per role. Format: docs/formats.md.

Building needs the root key store; checking needs only the pinned root public key and the
``cryptography`` package (no database, no key store), so stations and partners can do it offline.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from unioncard.files import write_private_atomically
from unioncard.hsm.base import KeyStore
from unioncard.hsm.domain import (
    CARD_ROLES, SYMMETRIC_ROLES, Algorithm, KeyInfo, KeyRole, KeyStatus, TrustBundleError, b64, b64url, key_id_for,
    load_public_key, unb64, unb64url, verify,
)
from unioncard.i18n import N_

FORMAT = "unioncard-trust-bundle/1"
# Stations' clocks drift; a bundle issued a little "in the future" is still accepted.
CLOCK_SKEW = timedelta(minutes=10)


def utc(moment: datetime) -> datetime:
    """Aware UTC; naive datetimes are UTC already (as the application stores them)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def timestamp(moment: datetime) -> str:
    return utc(moment).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def canonical_json(value) -> bytes:
    """Sorted keys, no spaces, UTF-8: the payload's bytes are signed as they are, so this only
    has to be stable, not re-derivable by verifiers."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    role: KeyRole
    algorithm: Algorithm
    public_key: bytes
    status: KeyStatus


@dataclass(frozen=True)
class TrustBundle:
    version: int
    issued_at: datetime
    expires_at: datetime
    root_key_id: str
    keys: tuple[TrustedKey, ...]
    sha256: str  # of the whole file as received
    # Of the signed payload: what identifies a bundle. The envelope's whitespace is not signed,
    # so two files of one bundle may differ byte for byte and still be the same bundle.
    payload_sha256: str = ""

    def keys_for(self, role: KeyRole) -> list[TrustedKey]:
        return [k for k in self.keys if k.role == KeyRole(role)]

    def verify(self, role: KeyRole, key_id: str, payload: bytes, signature: bytes) -> bool:
        """True if a key this bundle trusts for ``role`` made ``signature`` of ``payload``. Any key
        listed for the role counts, active or verify-only, and several may be active at once."""
        for key in self.keys:
            if key.key_id == key_id and key.role == KeyRole(role):
                return verify(key.public_key, key.algorithm, key.role, payload, signature)
        return False

    def is_expired(self, now: datetime) -> bool:
        return utc(now) >= self.expires_at


def listed_status(key: KeyInfo) -> KeyStatus | None:
    """How a key appears in trust bundles, or None if it is left out.

    A retired key's private part is destroyed. Keys of most roles then leave the bundle, but a
    card carries its credential and certificate for as long as the card lives (cards do not
    expire), so a retired card key stays listed as verify-only: retiring it must not turn every
    card it signed into a forgery at the door."""
    if key.role in SYMMETRIC_ROLES or key.role == KeyRole.ROOT:
        return None
    if key.status == KeyStatus.RETIRED:
        return KeyStatus.VERIFY_ONLY if key.role in CARD_ROLES else None
    return key.status


def build(root: KeyStore, keys: list[KeyInfo], *, version: int, issued_at: datetime, expires_at: datetime) -> bytes:
    """Sign a bundle of the given keys' public parts (see ``listed_status`` for which)."""
    if version < 1 or expires_at <= issued_at:
        raise TrustBundleError(N_("A trust bundle needs a version ≥ 1 and an expiry after its issue time"),
                               code="trust_bundle_params")
    root_key = root.active_key(KeyRole.ROOT)
    listed = [(k, listed_status(k)) for k in keys]
    listed = [(k, status) for k, status in listed if status is not None]
    payload = canonical_json({
        "format": FORMAT,
        "version": version,
        "issued_at": timestamp(issued_at),
        "expires_at": timestamp(expires_at),
        "root_key_id": root_key.key_id,
        "keys": [{"key_id": k.key_id, "role": k.role.value, "algorithm": k.algorithm.value,
                  "public_key": b64(k.public_key), "status": status.value}
                 for k, status in sorted(listed, key=lambda pair: (pair[0].role, pair[0].key_id))],
    })
    signature = root.sign(KeyRole.ROOT, payload, key_id=root_key.key_id)
    envelope = {"format": FORMAT, "payload": b64url(payload),
                "signature": {"key_id": signature.key_id, "algorithm": signature.algorithm.value,
                              "value": b64url(signature.value)}}
    return json.dumps(envelope, indent=2).encode("utf-8") + b"\n"


def _malformed(reason: str) -> TrustBundleError:
    return TrustBundleError(N_("The trust bundle is damaged or not a trust bundle (%(reason)s)"),
                            code="trust_bundle_malformed", reason=reason)


def _trusted_key(entry) -> TrustedKey:
    """One entry of ``keys``, checked: the key id is the key's own and the key is of its algorithm
    (a verifier that skipped this could be pointed at one key under another's id)."""
    if not isinstance(entry, dict) or not all(isinstance(entry.get(name), str)
                                              for name in ("key_id", "role", "algorithm", "public_key", "status")):
        raise ValueError("key entry")
    key = TrustedKey(entry["key_id"], KeyRole(entry["role"]), Algorithm(entry["algorithm"]),
                     unb64(entry["public_key"]), KeyStatus(entry["status"]))
    if key.key_id != key_id_for(key.public_key) or key.status == KeyStatus.RETIRED:
        raise ValueError("key entry")
    if key.role == KeyRole.ROOT or key.role in SYMMETRIC_ROLES:  # the root is pinned, never listed
        raise ValueError("role")
    try:
        public = load_public_key(key.public_key)
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("public key") from None
    if key.algorithm == Algorithm.ED25519:
        ok = isinstance(public, ed25519.Ed25519PublicKey)
    else:
        ok = key.algorithm == Algorithm.P256 and isinstance(public, ec.EllipticCurvePublicKey) \
            and isinstance(public.curve, ec.SECP256R1)
    if not ok:
        raise ValueError("algorithm")
    return key


def _version(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError("version")
    return value


def check(data: bytes, root_public_key: bytes, now: datetime) -> TrustBundle:
    """Verify a bundle against the pinned root key and the clock; raise TrustBundleError if not good."""
    now = utc(now)
    try:
        envelope = json.loads(data)
        if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
            raise _malformed("format")
        payload = unb64url(envelope["payload"])
        sig = envelope["signature"]
        signature_value = unb64url(sig["value"])
        signer, algorithm = sig["key_id"], sig["algorithm"]
    except TrustBundleError:
        raise
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        raise _malformed(type(exc).__name__) from None
    if signer != key_id_for(root_public_key) or algorithm != Algorithm.ED25519.value:
        raise TrustBundleError(N_("The trust bundle is signed by a key other than the pinned root key"),
                               code="trust_bundle_wrong_root")
    if not verify(root_public_key, Algorithm.ED25519, KeyRole.ROOT, payload, signature_value):
        raise TrustBundleError(N_("The trust bundle's signature does not match: it has been altered"),
                               code="trust_bundle_bad_signature")
    try:
        body = json.loads(payload)
        if not isinstance(body, dict) or body.get("format") != FORMAT or body.get("root_key_id") != signer:
            raise _malformed("payload format")
        if not isinstance(body["keys"], list):
            raise ValueError("keys")
        bundle = TrustBundle(
            version=_version(body["version"]), issued_at=parse_timestamp(body["issued_at"]),
            expires_at=parse_timestamp(body["expires_at"]), root_key_id=body["root_key_id"],
            keys=tuple(_trusted_key(entry) for entry in body["keys"]),
            sha256=hashlib.sha256(data).hexdigest(), payload_sha256=hashlib.sha256(payload).hexdigest(),
        )
    except TrustBundleError:
        raise
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        raise _malformed(type(exc).__name__) from None
    if bundle.is_expired(now):
        raise TrustBundleError(N_("The trust bundle expired on %(expired)s"), code="trust_bundle_expired",
                               expired=timestamp(bundle.expires_at))
    if bundle.issued_at > now + CLOCK_SKEW:
        raise TrustBundleError(N_("The trust bundle is issued in the future (%(issued)s): check this computer's clock"),
                               code="trust_bundle_from_future", issued=timestamp(bundle.issued_at))
    return bundle


def check_not_older(bundle: TrustBundle, version: int, payload_sha256: str | None) -> None:
    """The rollback rule: refuse a bundle older than the newest one accepted, and a different
    bundle (by its signed payload) under the same version."""
    if bundle.version < version:
        raise TrustBundleError(
            N_("This trust bundle (version %(version)s) is older than the one already installed "
               "(version %(current)s) and is refused"),
            code="trust_bundle_rollback", version=bundle.version, current=version)
    if bundle.version == version and payload_sha256 and payload_sha256 != bundle.payload_sha256:
        raise TrustBundleError(N_("A different trust bundle with the same version %(version)s is already installed"),
                               code="trust_bundle_version_conflict", version=version)


def _stored_payload(raw: bytes) -> bytes:
    return unb64url(json.loads(raw)["payload"])


class TrustState:
    """What a station or partner keeps: the pinned root public key and the newest bundle it has
    accepted, in one file. Versions only go up: an older bundle is refused, and so is a
    different bundle claiming the same version."""

    def __init__(self, path: Path, root_public_key: bytes):
        self.path = Path(path)
        self.root_public_key = root_public_key

    def current_raw(self) -> bytes | None:
        return self.path.read_bytes() if self.path.exists() else None

    def current_version(self) -> int:
        raw = self.current_raw()
        if raw is None:
            return 0
        # Parse without the clock: an expired stored bundle still sets the floor for versions.
        return int(json.loads(_stored_payload(raw))["version"])

    def accept(self, data: bytes, now: datetime) -> TrustBundle:
        bundle = check(data, self.root_public_key, now)
        current = self.current_raw()
        if current is not None:
            check_not_older(bundle, self.current_version(), hashlib.sha256(_stored_payload(current)).hexdigest())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private_atomically(self.path, data)
        return bundle

    def bundle(self, now: datetime) -> TrustBundle:
        raw = self.current_raw()
        if raw is None:
            raise TrustBundleError(N_("No trust bundle is installed"), code="trust_bundle_missing")
        return check(raw, self.root_public_key, now)
