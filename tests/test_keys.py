"""One suite for both key stores: the software keystore and PKCS#11 on a real SoftHSM2 token."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms

from tests.conftest import wipe_token
from unioncard import clock
from unioncard.hsm import trust
from unioncard.hsm.base import OPERATIONAL_ROLES, ROOT_ROLES, open_keystore
from unioncard.hsm.domain import (
    Algorithm, KeyRetired, KeyRole, KeyStatus, KeyStoreError, KeyStoreUnavailable, NoActiveKey, TrustBundleError,
    WrongRole, WrongSecret, b64url, unb64url, verify,
)

SECRET = "correct horse battery staple"


class Backend:
    """Opens the operational and root stores of one backend, as configuration strings would."""

    def __init__(self, kind, tmp_path, softhsm=None):
        self.kind, self.tmp_path, self.softhsm = kind, tmp_path, softhsm
        if kind == "pkcs11":
            for label in softhsm["tokens"]:
                wipe_token(softhsm, label)

    def url(self, which):
        if self.kind == "software":
            return f"software:{self.tmp_path / which}"
        token = {"ops": "uc-ops", "root": "uc-root"}[which]
        return f"pkcs11:module={self.softhsm['module']};token={token}"

    def secret(self):
        return SECRET if self.kind == "software" else self.softhsm["pin"]

    def open(self, which="ops", secret=None):
        roles = ROOT_ROLES if which == "root" else OPERATIONAL_ROLES
        return open_keystore(self.url(which), secret or self.secret(), roles, create=True)


@pytest.fixture(params=["software", "pkcs11"])
def backend(request, tmp_path):
    if request.param == "pkcs11":
        return Backend("pkcs11", tmp_path, request.getfixturevalue("softhsm"))
    return Backend("software", tmp_path)


@pytest.fixture
def store(backend):
    with backend.open() as s:
        yield s


@pytest.mark.parametrize("role,algorithm", [
    (KeyRole.CARD_CREDENTIAL, Algorithm.ED25519),
    (KeyRole.CARD_CERTIFICATE, Algorithm.P256),
    (KeyRole.EVENT_BUNDLE, Algorithm.ED25519),
    (KeyRole.PARTNER_RESPONSE, Algorithm.P256),
])
def test_signatures_verify_only_for_their_role_and_payload(store, role, algorithm):
    key = store.generate(role, algorithm)
    assert key.status == KeyStatus.ACTIVE and key.algorithm == algorithm and key.role == role
    signature = store.sign(role, b"card 2200 0000 0000 0007")
    assert signature.key_id == key.key_id
    assert verify(store.public_key(key.key_id), algorithm, role, b"card 2200 0000 0000 0007", signature.value)
    assert not verify(key.public_key, algorithm, role, b"card 2200 0000 0000 0008", signature.value)
    other_role = KeyRole.EVENT_BUNDLE if role != KeyRole.EVENT_BUNDLE else KeyRole.CARD_CREDENTIAL
    assert not verify(key.public_key, algorithm, other_role, b"card 2200 0000 0000 0007", signature.value)


def test_default_algorithms(store):
    assert store.generate(KeyRole.CARD_CREDENTIAL).algorithm == Algorithm.ED25519
    assert store.generate(KeyRole.CARD_CERTIFICATE).algorithm == Algorithm.P256
    assert store.generate(KeyRole.CARD_KEY_MASTER).algorithm == Algorithm.AES128


def test_a_key_signs_only_for_its_own_role(store, backend):
    credential = store.generate(KeyRole.CARD_CREDENTIAL)
    with pytest.raises(WrongRole) as info:
        store.sign(KeyRole.EVENT_BUNDLE, b"roster", key_id=credential.key_id)
    assert info.value.code == "key_wrong_role"
    with pytest.raises(NoActiveKey) as info:
        store.sign(KeyRole.EVENT_BUNDLE, b"roster")
    assert "event_bundle" in info.value.render("en")
    with pytest.raises(KeyStoreError) as info:
        store.generate(KeyRole.CARD_KEY_MASTER, Algorithm.ED25519)
    assert info.value.code == "algorithm_not_for_role"
    # The root key lives in its own store: the operational store refuses it, and the other way round.
    with pytest.raises(WrongRole) as info:
        store.generate(KeyRole.ROOT)
    assert info.value.code == "role_not_in_store"
    with backend.open("root") as root:
        with pytest.raises(WrongRole):
            root.generate(KeyRole.CARD_CREDENTIAL)
        root_key = root.generate(KeyRole.ROOT)
        assert root.list() == [root_key]
    assert [k.key_id for k in store.list()] == [credential.key_id]


def test_rotation_keeps_old_signatures_verifiable_until_retired(store, backend):
    old = store.generate(KeyRole.EVENT_BUNDLE)
    old_signature = store.sign(KeyRole.EVENT_BUNDLE, b"roster v1")
    new = store.generate(KeyRole.EVENT_BUNDLE)
    assert store.get(old.key_id).status == KeyStatus.VERIFY_ONLY
    assert store.active_key(KeyRole.EVENT_BUNDLE).key_id == new.key_id
    assert store.sign(KeyRole.EVENT_BUNDLE, b"roster v2").key_id == new.key_id
    with pytest.raises(KeyRetired) as info:
        store.sign(KeyRole.EVENT_BUNDLE, b"roster", key_id=old.key_id)
    assert info.value.code == "key_retired"

    now = clock.now()
    with backend.open("root") as root:
        root_key = root.generate(KeyRole.ROOT)
        first = trust.check(trust.build(root, store.list(), version=1, issued_at=now, expires_at=now + timedelta(days=1)),
                            root_key.public_key, now)
        assert first.verify(KeyRole.EVENT_BUNDLE, old.key_id, b"roster v1", old_signature.value)
        store.retire(old.key_id)
        second = trust.check(trust.build(root, store.list(), version=2, issued_at=now, expires_at=now + timedelta(days=1)),
                             root_key.public_key, now)
    assert {k.key_id for k in second.keys} == {new.key_id}
    assert not second.verify(KeyRole.EVENT_BUNDLE, old.key_id, b"roster v1", old_signature.value)
    assert store.get(old.key_id).status == KeyStatus.RETIRED
    # Retired is for good: a reopened store still refuses, and the private part is gone.
    store.close()
    with backend.open() as again:
        with pytest.raises(KeyRetired):
            again.sign(KeyRole.EVENT_BUNDLE, b"x", key_id=old.key_id)
        assert again.get(old.key_id).retired_at is not None


def test_keys_survive_reopening(backend):
    with backend.open() as first:
        key = first.generate(KeyRole.CARD_CREDENTIAL)
        master = first.generate(KeyRole.CARD_KEY_MASTER)
        derived = first.derive_card_key(b"\x04\x11\x22\x33\x44\x55\x66", b"\x30\x42\xf5", b"UNIONCRD")
    with backend.open() as second:
        assert [k.key_id for k in second.list()] == sorted([key.key_id, master.key_id],
                                                            key=lambda i: second.get(i).role)
        signature = second.sign(KeyRole.CARD_CREDENTIAL, b"payload")
        assert verify(key.public_key, key.algorithm, KeyRole.CARD_CREDENTIAL, b"payload", signature.value)
        assert second.derive_card_key(b"\x04\x11\x22\x33\x44\x55\x66", b"\x30\x42\xf5", b"UNIONCRD") == derived


def test_card_key_derivation_matches_an10922(store):
    """NXP AN10922 §2.2.1 example: AES-128 master 00112233…EEFF, UID 04782E21801D80,
    AID 3042F5, system identifier «NXP Abu» gives A8DD63A3B89D54B37CA802473FDA9175."""
    master = store.import_secret(KeyRole.CARD_KEY_MASTER, bytes.fromhex("00112233445566778899AABBCCDDEEFF"))
    key_id, derived = store.derive_card_key(bytes.fromhex("04782E21801D80"), bytes.fromhex("3042F5"),
                                            bytes.fromhex("4E585020416275"))
    assert key_id == master.key_id
    assert derived.hex().upper() == "A8DD63A3B89D54B37CA802473FDA9175"
    # and every card gets its own key, equal to plain AES-CMAC over 01‖UID‖AID‖SI
    uid = bytes.fromhex("04A1B2C3D4E5F6")
    mac = cmac.CMAC(algorithms.AES(bytes.fromhex("00112233445566778899AABBCCDDEEFF")))
    mac.update(b"\x01" + uid + bytes.fromhex("3042F5") + b"NXP Abu")
    assert store.derive_card_key(uid, bytes.fromhex("3042F5"), b"NXP Abu")[1] == mac.finalize() != derived
    with pytest.raises(KeyStoreError) as info:
        store.derive_card_key(b"\x04", b"\x00", b"")
    assert info.value.code == "diversification_input_length"
    with pytest.raises(WrongRole):
        store.sign(KeyRole.CARD_KEY_MASTER, b"not for signing")


def test_wrong_secret_is_refused_and_changes_nothing(backend):
    with backend.open() as first:
        key = first.generate(KeyRole.CARD_CREDENTIAL)
    before = _state(backend)
    with pytest.raises(WrongSecret) as info:
        backend.open(secret="000000" if backend.kind == "pkcs11" else "wrong passphrase")
    assert info.value.code == ("wrong_pin" if backend.kind == "pkcs11" else "wrong_passphrase")
    assert _state(backend) == before
    with backend.open() as again:
        assert [k.key_id for k in again.list()] == [key.key_id]


def _state(backend):
    if backend.kind == "software":
        root = backend.tmp_path / "ops"
        return sorted((p.name, p.read_bytes()) for p in root.rglob("*") if p.is_file() and p.name != ".lock")
    with backend.open() as s:
        return [(k.key_id, k.status) for k in s.list()]


def test_missing_store_module_or_token(backend, tmp_path):
    if backend.kind == "software":
        with pytest.raises(KeyStoreUnavailable) as info:
            open_keystore(f"software:{tmp_path / 'nowhere'}", SECRET)
        assert info.value.code == "keystore_missing"
        assert not (tmp_path / "nowhere").exists()
    else:
        with pytest.raises(KeyStoreUnavailable) as info:
            open_keystore("pkcs11:module=/usr/lib/no-such-pkcs11.so;token=uc-ops", "1234")
        assert info.value.code == "pkcs11_module_missing"
        with pytest.raises(KeyStoreUnavailable) as info:
            open_keystore(f"pkcs11:module={backend.softhsm['module']};token=no-such-token", "1234")
        assert info.value.code == "token_not_found"
    with pytest.raises(KeyStoreError) as info:
        open_keystore("vault:somewhere", "x")
    assert info.value.code == "keystore_url_invalid"
    with pytest.raises(KeyStoreError) as info:
        open_keystore(backend.url("ops"), None)
    assert info.value.code == "keystore_secret_missing"


# --- the trust bundle ------------------------------------------------------------------------------

@pytest.fixture
def signed(backend):
    """(root store, operational store, root public key, make(version, issued, expires) -> bytes)."""
    root, ops = backend.open("root"), backend.open()
    root_key = root.generate(KeyRole.ROOT)
    ops.generate(KeyRole.CARD_CREDENTIAL)
    ops.generate(KeyRole.EVENT_BUNDLE)
    ops.generate(KeyRole.CARD_KEY_MASTER)

    def make(version, issued=None, expires=None):
        issued = issued or clock.now()
        return trust.build(root, ops.list(), version=version, issued_at=issued,
                           expires_at=expires or issued + timedelta(days=30))

    yield root, ops, root_key.public_key, make
    root.close()
    ops.close()


def test_trust_bundle_lists_public_keys_per_role(signed):
    root, ops, root_public, make = signed
    bundle = trust.check(make(1), root_public, clock.now())
    assert bundle.version == 1
    assert {k.role for k in bundle.keys} == {KeyRole.CARD_CREDENTIAL, KeyRole.EVENT_BUNDLE}  # no symmetric, no root
    signature = ops.sign(KeyRole.EVENT_BUNDLE, b"roster")
    assert bundle.verify(KeyRole.EVENT_BUNDLE, signature.key_id, b"roster", signature.value)
    assert not bundle.verify(KeyRole.CARD_CREDENTIAL, signature.key_id, b"roster", signature.value)


def test_tampered_expired_future_and_foreign_bundles_are_refused(signed, backend, tmp_path):
    root, ops, root_public, make = signed
    now = clock.now()
    data = make(1)
    envelope = json.loads(data)
    payload = unb64url(envelope["payload"])
    # Swap in another public key for the card credential role, keep the signature.
    forged = payload.replace(b'"role":"card_credential"', b'"role":"event_bundle"')
    assert forged != payload
    envelope_forged = dict(envelope, payload=b64url(forged))
    cases = {
        "trust_bundle_bad_signature": json.dumps(envelope_forged).encode(),
        "trust_bundle_malformed": data[: len(data) // 2],
        "trust_bundle_expired": make(2, issued=now - timedelta(days=31), expires=now - timedelta(days=1)),
        "trust_bundle_from_future": make(3, issued=now + timedelta(hours=2), expires=now + timedelta(days=3)),
    }
    for code, bad in cases.items():
        with pytest.raises(TrustBundleError) as info:
            trust.check(bad, root_public, now)
        assert info.value.code == code, code
    # A bundle signed by some other root is refused even if well-formed.
    other = Backend("software", tmp_path / "other")
    with other.open("root") as other_root:
        other_root.generate(KeyRole.ROOT)
        foreign = trust.build(other_root, ops.list(), version=9, issued_at=now, expires_at=now + timedelta(days=1))
    with pytest.raises(TrustBundleError) as info:
        trust.check(foreign, root_public, now)
    assert info.value.code == "trust_bundle_wrong_root"
    # Only the root store can sign a bundle.
    with pytest.raises(NoActiveKey):
        trust.build(ops, ops.list(), version=1, issued_at=now, expires_at=now + timedelta(days=1))


def test_versions_only_go_up(signed, tmp_path):
    root, ops, root_public, make = signed
    state = trust.TrustState(tmp_path / "station" / "trust.json", root_public)
    v1, v2, v2_other = make(1), make(2), make(2, issued=clock.now() - timedelta(minutes=1))
    assert state.accept(v2, clock.now()).version == 2
    with pytest.raises(TrustBundleError) as info:
        state.accept(v1, clock.now())
    assert info.value.code == "trust_bundle_rollback"
    with pytest.raises(TrustBundleError) as info:
        state.accept(v2_other, clock.now())
    assert info.value.code == "trust_bundle_version_conflict"
    assert state.accept(v2, clock.now()).version == 2  # the same file again is fine
    assert state.current_raw() == v2
    assert state.accept(make(3), clock.now()).version == 3


def test_software_store_files_are_private_and_encrypted(tmp_path):
    store = open_keystore(f"software:{tmp_path / 'ks'}", SECRET, create=True)
    key = store.generate(KeyRole.CARD_CREDENTIAL)
    raw_private = store._private(key).private_bytes_raw()
    assert oct((tmp_path / "ks").stat().st_mode & 0o777) == "0o700"
    for path in (tmp_path / "ks").rglob("*.json"):
        assert oct(path.stat().st_mode & 0o777) == "0o600", path
        content = path.read_bytes()
        assert raw_private not in content and raw_private.hex().encode() not in content
        import base64

        assert base64.b64encode(raw_private) not in content
    # Editing the role in the file (to make a card key sign rosters) makes the key unusable.
    path = tmp_path / "ks" / "keys" / f"{key.key_id}.json"
    record = json.loads(path.read_text())
    record["role"] = "event_bundle"
    path.write_text(json.dumps(record))
    tampered = open_keystore(f"software:{tmp_path / 'ks'}", SECRET)
    with pytest.raises(KeyStoreError) as info:
        tampered.sign(KeyRole.EVENT_BUNDLE, b"roster")
    assert info.value.code == "key_tampered"


def test_token_keys_are_sensitive_and_not_extractable(softhsm, tmp_path):
    import pkcs11

    backend = Backend("pkcs11", tmp_path, softhsm)
    with backend.open() as store:
        master = store.generate(KeyRole.CARD_KEY_MASTER)
        signer = store.generate(KeyRole.CARD_CREDENTIAL)
        for key_id, object_class in ((master.key_id, pkcs11.ObjectClass.SECRET_KEY),
                                     (signer.key_id, pkcs11.ObjectClass.PRIVATE_KEY)):
            obj = store._session.get_key(object_class=object_class, id=key_id.encode())
            assert obj[pkcs11.Attribute.SENSITIVE] is True
            assert obj[pkcs11.Attribute.EXTRACTABLE] is False
            with pytest.raises(pkcs11.exceptions.PKCS11Error):
                obj[pkcs11.Attribute.VALUE]


def test_scrypt_cost_is_kept_in_the_header(tmp_path):
    from unioncard.hsm import software

    software.SCRYPT_N, saved = 2 ** 16, software.SCRYPT_N
    try:
        open_keystore(f"software:{tmp_path / 'ks'}", SECRET, create=True).close()
    finally:
        software.SCRYPT_N = saved
    header = json.loads((tmp_path / "ks" / "keystore.json").read_text())
    assert header["kdf"] == dict(header["kdf"], name="scrypt", n=65536, r=8, p=1)
    open_keystore(f"software:{tmp_path / 'ks'}", SECRET).close()
    assert hashlib.sha256(SECRET.encode()).hexdigest() not in json.dumps(header)
    assert os.stat(tmp_path / "ks" / "keystore.json").st_mode & 0o077 == 0
