"""The one interface every key store offers; the rules that do not depend on where keys live
(which key signs for which role, rotation, retirement) are written once, here."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

from unioncard import clock
from unioncard.hsm.domain import (
    DEFAULT_ALGORITHM, SYMMETRIC_ROLES, Algorithm, KeyInfo, KeyNotFound, KeyRetired, KeyRole, KeyStatus,
    KeyStoreError, NoActiveKey, Signature, WrongRole, check_role_algorithm, diversification_input, signing_input,
)
from unioncard.i18n import N_

OPERATIONAL_ROLES = frozenset(KeyRole) - {KeyRole.ROOT}
ROOT_ROLES = frozenset({KeyRole.ROOT})


class KeyStore(ABC):
    """Generate a key for a role, sign, give a public key, list, retire; derive per-card keys.

    ``roles`` is what this store may hold: the root key lives in a store of its own (its own
    directory or token), so the operational store never holds it and vice versa.
    """

    # Whether a forked process may sign with this store's keys (they are in its memory); a
    # PKCS#11 session must not be used across a fork.
    fork_safe = False

    kind = "abstract"

    def __init__(self, roles=OPERATIONAL_ROLES):
        self.roles = frozenset(KeyRole(r) for r in roles)
        self._lock = threading.RLock()

    # --- what backends implement ---
    @abstractmethod
    def _load_records(self) -> list[KeyInfo]: ...

    @abstractmethod
    def _version(self):
        """Changes whenever the stored records may have changed (cheap to ask)."""

    @abstractmethod
    def _create(self, role: KeyRole, algorithm: Algorithm, secret_value: bytes | None = None) -> KeyInfo: ...

    @abstractmethod
    def _save(self, info: KeyInfo) -> None: ...

    @abstractmethod
    def _destroy_private(self, info: KeyInfo) -> None: ...

    @abstractmethod
    def _sign_raw(self, info: KeyInfo, message: bytes) -> bytes: ...

    @abstractmethod
    def _cmac(self, info: KeyInfo, data: bytes) -> bytes: ...

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _records(self) -> list[KeyInfo]:
        # Signing must not re-read every record each time: cache until the store says it changed.
        version = self._version()
        cached = getattr(self, "_cache", None)
        if cached is None or cached[0] != version:
            cached = (version, self._load_records())
            self._cache = cached
        return cached[1]

    def _forget(self) -> None:
        self._cache = None

    # --- the interface ---
    def list(self) -> list[KeyInfo]:
        return sorted(self._records(), key=lambda k: (k.role, k.created_at, k.key_id))

    def get(self, key_id: str) -> KeyInfo:
        for info in self._records():
            if info.key_id == key_id:
                return info
        raise KeyNotFound(key_id=key_id)

    def active_key(self, role: KeyRole) -> KeyInfo:
        role = KeyRole(role)
        active = [k for k in self._records() if k.role == role and k.status == KeyStatus.ACTIVE]
        if not active:
            raise NoActiveKey(role=role.value)
        return max(active, key=lambda k: (k.created_at, k.key_id))

    def public_key(self, key_id: str) -> bytes:
        info = self.get(key_id)
        if info.public_key is None:
            raise KeyStoreError(N_("Key %(key_id)s is symmetric and has no public key"), code="key_symmetric",
                                key_id=key_id)
        return info.public_key

    def generate(self, role: KeyRole, algorithm: Algorithm | None = None) -> KeyInfo:
        """A new key for ``role``; it becomes the role's active key and the previous active key
        is kept for verification only (rotation)."""
        return self._add(role, algorithm, None)

    def import_secret(self, role: KeyRole, value: bytes) -> KeyInfo:
        """Bring an existing AES-128 master (e.g. from the card supplier's ceremony) into the store."""
        if KeyRole(role) not in SYMMETRIC_ROLES or len(value) != 16:
            raise KeyStoreError(N_("Only a 16-byte AES master key can be imported"), code="import_not_allowed")
        return self._add(role, Algorithm.AES128, bytes(value))

    def _add(self, role, algorithm, secret_value) -> KeyInfo:
        role = KeyRole(role)
        if role not in self.roles:
            raise WrongRole(N_("This key store does not hold %(role)s keys"), code="role_not_in_store",
                            role=role.value)
        algorithm = Algorithm(algorithm or DEFAULT_ALGORITHM[role])
        check_role_algorithm(role, algorithm)
        with self._lock:
            previous = [k for k in self._records() if k.role == role and k.status == KeyStatus.ACTIVE]
            info = self._create(role, algorithm, secret_value)
            try:
                for old in previous:
                    self._save(old.with_status(KeyStatus.VERIFY_ONLY))
            finally:
                self._forget()
            return info

    def retire(self, key_id: str) -> KeyInfo:
        """Destroy the private part; the key stops being trusted (and leaves the trust bundle)."""
        with self._lock:
            info = self.get(key_id)
            if info.status == KeyStatus.RETIRED:
                return info
            retired = info.with_status(KeyStatus.RETIRED, clock.now())
            try:
                self._save(retired)
                self._destroy_private(info)
            finally:
                self._forget()
            return retired

    def _signing_key(self, role: KeyRole, key_id: str | None) -> KeyInfo:
        role = KeyRole(role)
        info = self.active_key(role) if key_id is None else self.get(key_id)
        if info.role != role:
            raise WrongRole(key_id=info.key_id, key_role=info.role.value, role=role.value)
        if info.status != KeyStatus.ACTIVE:
            raise KeyRetired(key_id=info.key_id, status=info.status.value)
        return info

    def sign(self, role: KeyRole, payload: bytes, key_id: str | None = None) -> Signature:
        """Sign ``payload`` for ``role`` with the role's active key (or the given one, which must
        be an active key of that role)."""
        info = self._signing_key(role, key_id)
        if info.role in SYMMETRIC_ROLES:
            raise WrongRole(key_id=info.key_id, key_role=info.role.value, role=KeyRole(role).value)
        return Signature(info.key_id, info.algorithm, self._sign_raw(info, signing_input(info.role, payload)))

    def sign_many(self, role: KeyRole, payloads, key_id: str) -> list[bytes]:
        """Raw signatures of many payloads with one active key of ``role``, checked once: a bureau
        batch signs 100 000 credentials, and looking the key up per payload cost more than Ed25519."""
        info = self._signing_key(role, key_id)
        if info.role in SYMMETRIC_ROLES:
            raise WrongRole(key_id=info.key_id, key_role=info.role.value, role=KeyRole(role).value)
        prefix = signing_input(info.role, b"")
        return [self._sign_raw(info, prefix + payload) for payload in payloads]

    def derive_card_key(self, uid: bytes, application_id: bytes, system_identifier: bytes,
                        key_id: str | None = None) -> tuple[str, bytes]:
        """Per-card AES-128 key, AN10922 style, from the active card master; returns (master id, key)."""
        info = self._signing_key(KeyRole.CARD_KEY_MASTER, key_id)
        return info.key_id, self._cmac(info, diversification_input(uid, application_id, system_identifier))


def open_keystore(url: str, secret: str | None, roles=OPERATIONAL_ROLES, *, create: bool = False) -> KeyStore:
    """A key store from a configuration string:

    ``software:/path/to/dir`` — the embedded software keystore (``secret`` is its passphrase);
    ``pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=unioncard`` — a PKCS#11 token (``secret`` is the user PIN).
    """
    scheme, _, rest = url.partition(":")
    if secret is None or secret == "":
        raise KeyStoreUnavailableSecret(url=url)
    if scheme == "software":
        from unioncard.hsm.software import SoftwareKeyStore

        return SoftwareKeyStore(rest, secret, roles=roles, create=create)
    if scheme == "pkcs11":
        from unioncard.hsm.pkcs11_store import Pkcs11KeyStore

        options = dict(part.split("=", 1) for part in rest.split(";") if "=" in part)
        if "module" not in options or "token" not in options:
            raise KeyStoreError(N_("A PKCS#11 key store needs module=… and token=…: %(url)s"),
                                code="keystore_url_invalid", url=url)
        return Pkcs11KeyStore(options["module"], options["token"], secret, roles=roles)
    raise KeyStoreError(N_("Unknown key store «%(url)s»: use software:DIR or pkcs11:module=…;token=…"),
                        code="keystore_url_invalid", url=url)


class KeyStoreUnavailableSecret(KeyStoreError):
    code = "keystore_secret_missing"
    message = N_("No passphrase or PIN is configured for the key store %(url)s. Set UNIONCARD_KEYSTORE_SECRET "
                 "(or UNIONCARD_KEYSTORE_SECRET_FILE; for the root store UNIONCARD_ROOT_KEYSTORE_SECRET), or run "
                 "`unioncard demo` once in this folder for the demo's keys")
    http_status = 503
