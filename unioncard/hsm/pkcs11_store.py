"""Keys on a PKCS#11 token (tested on SoftHSM2): private and master keys are generated on the
token as sensitive, non-extractable objects and never leave it. Each key's record (role, status,
dates) sits beside it on the token as a data object labelled ``unioncard-key:<key_id>``.

Device errors are translated here into our own exceptions (wrong PIN, no module, no token).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from unioncard import clock
from unioncard.hsm.base import OPERATIONAL_ROLES, KeyStore
from unioncard.hsm.domain import (
    Algorithm, KeyInfo, KeyRole, KeyStatus, KeyStoreError, KeyStoreUnavailable, WrongSecret, key_id_for,
    public_key_der,
)
from unioncard.i18n import N_

ED25519_PARAMS = bytes.fromhex("06032B6570")          # id-Ed25519
P256_PARAMS = bytes.fromhex("06082A8648CE3D030107")   # prime256v1
META_PREFIX = "unioncard-key:"
APPLICATION = "unioncard"

# One loaded library per module path per process: PKCS#11 modules are initialised once.
_libraries: dict[str, object] = {}
_libraries_lock = threading.Lock()


def _library(module_path: str):
    import pkcs11

    with _libraries_lock:
        if module_path not in _libraries:
            try:
                _libraries[module_path] = pkcs11.lib(module_path)
            except Exception as exc:  # the binding raises RuntimeError/OSError variants for a bad module
                raise KeyStoreUnavailable(N_("The PKCS#11 module %(module)s cannot be loaded: %(reason)s"),
                                          code="pkcs11_module_missing", module=module_path, reason=str(exc)) from exc
        return _libraries[module_path]


def _unwrap_octet_string(data: bytes) -> bytes:
    """EC_POINT comes DER-wrapped (04 len …) from most tokens."""
    if len(data) >= 2 and data[0] == 0x04 and data[1] == len(data) - 2:
        return data[2:]
    return data


class Pkcs11KeyStore(KeyStore):
    kind = "pkcs11"

    def __init__(self, module_path: str, token_label: str, pin: str, roles=OPERATIONAL_ROLES):
        super().__init__(roles)
        import pkcs11
        from pkcs11 import exceptions as px

        self._p = pkcs11
        self.module_path, self.token_label = module_path, token_label
        lib = _library(module_path)
        try:
            token = lib.get_token(token_label=token_label)
        except (px.NoSuchToken, px.TokenNotPresent) as exc:
            raise KeyStoreUnavailable(N_("No PKCS#11 token labelled «%(token)s»"), code="token_not_found",
                                      token=token_label) from exc
        try:
            self._session = token.open(user_pin=pin, rw=True)
        except (px.PinIncorrect, px.PinLenRange, px.PinInvalid) as exc:
            raise WrongSecret(N_("Wrong PIN for the token «%(token)s»"), code="wrong_pin", token=token_label) from exc
        except px.PinLocked as exc:
            raise WrongSecret(N_("The PIN of the token «%(token)s» is locked"), code="pin_locked",
                              token=token_label) from exc
        self._handles: dict[str, object] = {}

    def close(self) -> None:
        session, self._session = getattr(self, "_session", None), None
        if session is not None:
            session.close()

    # --- records ---
    def _meta_objects(self):
        Attribute, ObjectClass = self._p.Attribute, self._p.ObjectClass
        for obj in self._session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: APPLICATION}):
            label = obj[Attribute.LABEL]
            if label.startswith(META_PREFIX):
                yield obj, json.loads(bytes(obj[Attribute.VALUE]))

    def _version(self):
        # Another process may rotate keys on the same token; look again every few seconds.
        return int(time.monotonic() // 2)

    def _load_records(self) -> list[KeyInfo]:
        with self._lock:
            newest: dict[str, dict] = {}
            for _, raw in self._meta_objects():
                if raw["key_id"] not in newest or raw["revision"] > newest[raw["key_id"]]["revision"]:
                    newest[raw["key_id"]] = raw
        infos = (KeyInfo.from_record(raw) for raw in newest.values())
        return [info for info in infos if info.role in self.roles]

    def _save(self, info: KeyInfo) -> None:
        """Write the new record first, then drop older ones: a crash in between leaves two records
        of which the higher revision wins, never none."""
        Attribute, ObjectClass = self._p.Attribute, self._p.ObjectClass
        with self._lock:
            old = [(obj, raw) for obj, raw in self._meta_objects() if raw["key_id"] == info.key_id]
            revision = max((raw["revision"] for _, raw in old), default=0) + 1
            record = dict(info.to_record(), revision=revision)
            self._session.create_object({
                Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.PRIVATE: False,
                Attribute.APPLICATION: APPLICATION, Attribute.LABEL: META_PREFIX + info.key_id,
                Attribute.VALUE: json.dumps(record).encode(),
            })
            for obj, _ in old:
                obj.destroy()

    def _create(self, role: KeyRole, algorithm: Algorithm, secret_value: bytes | None = None) -> KeyInfo:
        p = self._p
        Attribute = p.Attribute
        with self._lock:
            temp_id = secrets.token_hex(8)
            if algorithm == Algorithm.AES128:
                key_id = "aes-" + secrets.token_hex(6)
                template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
                            Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.DECRYPT: False,
                            Attribute.WRAP: False, Attribute.UNWRAP: False, Attribute.DERIVE: False}
                if secret_value is None:
                    self._session.generate_key(p.KeyType.AES, 128, label=key_id, id=key_id.encode(), store=True,
                                               template=template)
                else:
                    self._session.create_object({
                        **template, Attribute.CLASS: p.ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: p.KeyType.AES,
                        Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.LABEL: key_id,
                        Attribute.ID: key_id.encode(), Attribute.VALUE: secret_value})
                public = None
            else:
                key_type = p.KeyType.EC_EDWARDS if algorithm == Algorithm.ED25519 else p.KeyType.EC
                params = self._session.create_domain_parameters(key_type, {
                    Attribute.EC_PARAMS: ED25519_PARAMS if algorithm == Algorithm.ED25519 else P256_PARAMS},
                    local=True)
                mechanism = p.Mechanism.EC_EDWARDS_KEY_PAIR_GEN if algorithm == Algorithm.ED25519 \
                    else p.Mechanism.EC_KEY_PAIR_GEN
                pub, _priv = params.generate_keypair(
                    store=True, label=temp_id, id=temp_id.encode(), mechanism=mechanism,
                    private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
                                      Attribute.DECRYPT: False, Attribute.DERIVE: False, Attribute.UNWRAP: False},
                    public_template={Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False,
                                     Attribute.DERIVE: False})
                point = _unwrap_octet_string(bytes(pub[Attribute.EC_POINT]))
                if algorithm == Algorithm.ED25519:
                    public = public_key_der(ed25519.Ed25519PublicKey.from_public_bytes(point))
                else:
                    public = public_key_der(ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point))
                key_id = key_id_for(public)
                for obj in (pub, _priv):
                    obj[Attribute.LABEL] = key_id
                    obj[Attribute.ID] = key_id.encode()
            info = KeyInfo(key_id, role, algorithm, KeyStatus.ACTIVE, clock.now(), public)
            self._save(info)
            return info

    def _key_object(self, info: KeyInfo):
        p = self._p
        cached = self._handles.get(info.key_id)
        if cached is not None:
            return cached
        object_class = p.ObjectClass.SECRET_KEY if info.algorithm == Algorithm.AES128 else p.ObjectClass.PRIVATE_KEY
        try:
            key = self._session.get_key(object_class=object_class, id=info.key_id.encode())
        except (p.exceptions.NoSuchKey, p.exceptions.MultipleObjectsReturned) as exc:
            raise KeyStoreError(N_("The private part of key %(key_id)s is not on the token"),
                                code="key_private_missing", key_id=info.key_id) from exc
        self._handles[info.key_id] = key
        return key

    def _destroy_private(self, info: KeyInfo) -> None:
        p = self._p
        with self._lock:
            self._handles.pop(info.key_id, None)
            for object_class in (p.ObjectClass.PRIVATE_KEY, p.ObjectClass.SECRET_KEY):
                for obj in self._session.get_objects({p.Attribute.CLASS: object_class,
                                                      p.Attribute.ID: info.key_id.encode()}):
                    obj.destroy()

    def _sign_raw(self, info: KeyInfo, message: bytes) -> bytes:
        p = self._p
        with self._lock:
            key = self._key_object(info)
            if info.algorithm == Algorithm.ED25519:
                return bytes(key.sign(message, mechanism=p.Mechanism.EDDSA))
            # SoftHSM has no CKM_ECDSA_SHA256: hash here, sign the digest on the token, DER-encode r‖s.
            raw = bytes(key.sign(hashlib.sha256(message).digest(), mechanism=p.Mechanism.ECDSA))
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def _cmac(self, info: KeyInfo, data: bytes) -> bytes:
        with self._lock:
            return bytes(self._key_object(info).sign(data, mechanism=self._p.Mechanism.AES_CMAC))
