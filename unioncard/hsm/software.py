"""The embedded default key store: one directory, one file per key, private keys encrypted with
a key derived from a passphrase (scrypt → AES-256-GCM). Files are mode 0600, the directory 0700.

Layout::

    DIR/keystore.json        format, scrypt parameters and salt, a check value for the passphrase
    DIR/keys/<key_id>.json   key record; "private" holds nonce + ciphertext while the key is not retired

The AES-GCM associated data binds each ciphertext to its key id, role and algorithm, so editing
a file's role (to make a card key sign event bundles, say) makes the key undecryptable.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from unioncard import clock
from unioncard.files import write_private_atomically
from unioncard.hsm.base import OPERATIONAL_ROLES, KeyStore
from unioncard.hsm.domain import (
    Algorithm, KeyInfo, KeyRole, KeyStatus, KeyStoreError, KeyStoreUnavailable, WrongSecret, b64, key_id_for,
    public_key_der, signing_input, unb64,
)
from unioncard.i18n import N_

FORMAT = "unioncard-software-keystore/1"
CHECK_PLAINTEXT = b"unioncard keystore passphrase check"
# scrypt cost: ~0.1 s and 64 MiB once per opening; a stolen directory costs an attacker the same per guess.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 16, 8, 1


class SoftwareKeyStore(KeyStore):
    fork_safe = True

    kind = "software"

    def __init__(self, directory, passphrase: str, roles=OPERATIONAL_ROLES, *, create: bool = False):
        super().__init__(roles)
        self.directory = Path(directory)
        self.keys_dir = self.directory / "keys"
        header_path = self.directory / "keystore.json"
        if not header_path.exists():
            if not create:
                raise KeyStoreUnavailable(N_("No key store in %(path)s: run «unioncard keys init» first"),
                                          code="keystore_missing", path=str(self.directory))
            self._kek = self._initialise(header_path, passphrase)
        else:
            self._kek = self._unlock(header_path, passphrase)
        self._private_cache: dict[str, object] = {}

    # --- opening ---
    def _initialise(self, header_path: Path, passphrase: str) -> bytes:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        self.keys_dir.mkdir(exist_ok=True, mode=0o700)
        salt = secrets.token_bytes(16)
        kek = self._derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        nonce = secrets.token_bytes(12)
        header = {"format": FORMAT, "kdf": {"name": "scrypt", "salt": b64(salt), "n": SCRYPT_N, "r": SCRYPT_R,
                                             "p": SCRYPT_P},
                  "check": {"nonce": b64(nonce), "ciphertext": b64(AESGCM(kek).encrypt(nonce, CHECK_PLAINTEXT, None))}}
        write_private_atomically(header_path, json.dumps(header, indent=2).encode())
        return kek

    def _unlock(self, header_path: Path, passphrase: str) -> bytes:
        try:
            header = json.loads(header_path.read_bytes())
            if header.get("format") != FORMAT:
                raise ValueError(header.get("format"))
            kdf = header["kdf"]
            kek = self._derive(passphrase, unb64(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
            check = header["check"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyStoreUnavailable(N_("The key store in %(path)s cannot be read: %(reason)s"),
                                      code="keystore_unreadable", path=str(self.directory), reason=str(exc)) from exc
        try:
            AESGCM(kek).decrypt(unb64(check["nonce"]), unb64(check["ciphertext"]), None)
        except InvalidTag:
            raise WrongSecret(N_("Wrong passphrase for the key store"), code="wrong_passphrase") from None
        return kek

    @staticmethod
    def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))

    @contextmanager
    def _exclusive(self):
        """One writer at a time across processes (two operators running a ceremony at once)."""
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # --- records ---
    def _path(self, key_id: str) -> Path:
        return self.keys_dir / f"{key_id}.json"

    def _load(self, path: Path) -> tuple[KeyInfo, dict]:
        raw = json.loads(path.read_bytes())
        return KeyInfo.from_record(raw), raw

    def _version(self):
        # Every change renames a file into keys/, which changes the folder's mtime.
        return self.keys_dir.stat().st_mtime_ns

    def _load_records(self) -> list[KeyInfo]:
        out = []
        for path in sorted(self.keys_dir.glob("*.json")):
            info, _ = self._load(path)
            if info.role in self.roles:
                out.append(info)
        return out

    @staticmethod
    def _aad(info: KeyInfo) -> bytes:
        return f"{info.key_id}|{info.role.value}|{info.algorithm.value}".encode()

    def _write(self, info: KeyInfo, private: dict | None) -> None:
        record = dict(info.to_record(), private=private)
        write_private_atomically(self._path(info.key_id), json.dumps(record, indent=2).encode())

    def _create(self, role: KeyRole, algorithm: Algorithm, secret_value: bytes | None = None) -> KeyInfo:
        if algorithm == Algorithm.ED25519:
            private = ed25519.Ed25519PrivateKey.generate()
            raw = private.private_bytes_raw()
            public = public_key_der(private.public_key())
        elif algorithm == Algorithm.P256:
            private = ec.generate_private_key(ec.SECP256R1())
            raw = private.private_numbers().private_value.to_bytes(32, "big")
            public = public_key_der(private.public_key())
        else:
            raw = secret_value if secret_value is not None else secrets.token_bytes(16)
            private, public = raw, None
        key_id = key_id_for(public) if public else "aes-" + secrets.token_hex(6)
        info = KeyInfo(key_id, role, algorithm, KeyStatus.ACTIVE, clock.now(), public)
        nonce = secrets.token_bytes(12)
        sealed = {"nonce": b64(nonce), "ciphertext": b64(AESGCM(self._kek).encrypt(nonce, raw, self._aad(info)))}
        with self._exclusive():
            self._write(info, sealed)
        self._private_cache[key_id] = private
        return info

    def _save(self, info: KeyInfo) -> None:
        with self._exclusive():
            _, raw = self._load(self._path(info.key_id))
            self._write(info, raw.get("private") if info.status != KeyStatus.RETIRED else None)

    def _destroy_private(self, info: KeyInfo) -> None:
        # _save already rewrote the record without its ciphertext; forget the cached key too.
        self._private_cache.pop(info.key_id, None)

    def _private(self, info: KeyInfo):
        cached = self._private_cache.get(info.key_id)
        if cached is not None:
            return cached
        _, raw = self._load(self._path(info.key_id))
        sealed = raw.get("private")
        if not sealed:
            raise KeyStoreError(N_("The private part of key %(key_id)s is gone"), code="key_private_missing",
                                key_id=info.key_id)
        try:
            value = AESGCM(self._kek).decrypt(unb64(sealed["nonce"]), unb64(sealed["ciphertext"]), self._aad(info))
        except InvalidTag:
            raise KeyStoreError(N_("Key %(key_id)s has been tampered with"), code="key_tampered",
                                key_id=info.key_id) from None
        if info.algorithm == Algorithm.ED25519:
            key = ed25519.Ed25519PrivateKey.from_private_bytes(value)
        elif info.algorithm == Algorithm.P256:
            key = ec.derive_private_key(int.from_bytes(value, "big"), ec.SECP256R1())
        else:
            key = value
        if info.public_key and public_key_der(key.public_key()) != info.public_key:
            raise KeyStoreError(N_("Key %(key_id)s has been tampered with"), code="key_tampered", key_id=info.key_id)
        self._private_cache[info.key_id] = key
        return key

    def _sign_raw(self, info: KeyInfo, message: bytes) -> bytes:
        key = self._private(info)
        if info.algorithm == Algorithm.ED25519:
            return key.sign(message)
        return key.sign(message, ec.ECDSA(hashes.SHA256()))

    def sign_many(self, role: KeyRole, payloads, key_id: str) -> list[bytes]:
        info = self._signing_key(role, key_id)
        if info.algorithm != Algorithm.ED25519:
            return super().sign_many(role, payloads, key_id)
        sign, prefix = self._private(info).sign, signing_input(info.role, b"")
        return [sign(prefix + payload) for payload in payloads]

    def _cmac(self, info: KeyInfo, data: bytes) -> bytes:
        mac = CMAC(algorithms.AES(self._private(info)))
        mac.update(data)
        return mac.finalize()
