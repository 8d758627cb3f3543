"""Key ceremony services: initialise, rotate, retire, list, export the trust bundle. Each step
writes an audit entry in the same unit of work; the key store acts first, so a refused step
(wrong PIN, retired key) leaves neither a key nor an audit entry behind."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from unioncard import clock
from unioncard.config import Settings, keystore_secret
from unioncard.db import UnitOfWork
from unioncard.errors import PermissionDenied
from unioncard.hsm import trust
from unioncard.hsm.base import OPERATIONAL_ROLES, ROOT_ROLES, KeyStore, open_keystore
from unioncard.hsm.domain import Algorithm, KeyInfo, KeyRole, KeyStatus, NoActiveKey
from unioncard.hsm.models import TrustBundleRecord
from unioncard.registry import audit
from unioncard.registry import domain as registry_domain
from unioncard.registry.actor import Actor


@dataclass
class KeyStores:
    operational: KeyStore
    root: KeyStore

    def close(self) -> None:
        self.operational.close()
        self.root.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def store_for(self, role: KeyRole) -> KeyStore:
        return self.root if KeyRole(role) == KeyRole.ROOT else self.operational

    def all_keys(self) -> list[KeyInfo]:
        return self.root.list() + self.operational.list()

    def get(self, key_id: str) -> KeyInfo:
        for key in self.all_keys():
            if key.key_id == key_id:
                return key
        return self.operational.get(key_id)  # raises KeyNotFound


def open_operational(settings: Settings, *, create: bool = False) -> KeyStore:
    """The store of the signing keys the application uses day to day (never the root)."""
    return open_keystore(settings.keystore_url, keystore_secret("KEYSTORE"), OPERATIONAL_ROLES, create=create)


def open_stores(settings: Settings, *, create: bool = False) -> KeyStores:
    operational = open_operational(settings, create=create)
    try:
        root = open_keystore(settings.root_keystore_url, keystore_secret("ROOT_KEYSTORE"), ROOT_ROLES, create=create)
    except BaseException:
        operational.close()
        raise
    return KeyStores(operational, root)


def _require(actor: Actor) -> None:
    if not actor.can(registry_domain.Permission.MANAGE_KEYS):
        raise PermissionDenied()


def _audit_key(uow: UnitOfWork, actor: Actor, action: str, key: KeyInfo, **details) -> None:
    audit.record(uow.session, actor, action, "key", key.key_id, None, role=key.role, algorithm=key.algorithm,
                 fingerprint=key.fingerprint, **details)


def init_keys(uow: UnitOfWork, actor: Actor, stores: KeyStores) -> list[KeyInfo]:
    """A root key and one active key per role, for whatever is missing. Running it again adds nothing."""
    _require(actor)
    made = []
    for role in [KeyRole.ROOT] + sorted(OPERATIONAL_ROLES):
        store = stores.store_for(role)
        try:
            store.active_key(role)
        except NoActiveKey:
            key = store.generate(role)
            _audit_key(uow, actor, "key.generate", key)
            made.append(key)
    return made


def rotate(uow: UnitOfWork, actor: Actor, stores: KeyStores, role: KeyRole,
           algorithm: Algorithm | None = None) -> tuple[KeyInfo, list[KeyInfo]]:
    """A new active key for ``role``; returns it and the keys it replaced (now verify-only)."""
    _require(actor)
    store = stores.store_for(role)
    before = [k for k in store.list() if k.role == KeyRole(role) and k.status == KeyStatus.ACTIVE]
    key = store.generate(role, algorithm)
    _audit_key(uow, actor, "key.rotate", key, replaces=[k.key_id for k in before])
    return key, before


def retire(uow: UnitOfWork, actor: Actor, stores: KeyStores, key_id: str) -> KeyInfo:
    _require(actor)
    key = stores.get(key_id)
    retired = stores.store_for(key.role).retire(key_id)
    # Card keys keep verifying the cards they signed (trust.listed_status): the audit says so.
    _audit_key(uow, actor, "key.retire", retired, previous_status=key.status,
               still_verifies=trust.listed_status(retired) is not None)
    return retired


def export_trust(uow: UnitOfWork, actor: Actor, stores: KeyStores, valid_for: timedelta,
                 now: datetime | None = None) -> tuple[bytes, TrustBundleRecord]:
    """Sign the next trust bundle version over the operational keys that are not retired."""
    _require(actor)
    session = uow.session
    now = now or clock.now()
    version = (session.scalar(select(func.max(TrustBundleRecord.version))) or 0) + 1
    data = trust.build(stores.root, stores.operational.list(), version=version, issued_at=now,
                       expires_at=now + valid_for)
    record = TrustBundleRecord(version=version, issued_at=now.replace(microsecond=0),
                               expires_at=(now + valid_for).replace(microsecond=0),
                               root_key_id=stores.root.active_key(KeyRole.ROOT).key_id,
                               sha256=hashlib.sha256(data).hexdigest(), content=data, issued_by=actor.user_id,
                               root_public_key=stores.root.active_key(KeyRole.ROOT).public_key)
    session.add(record)
    session.flush()  # a concurrent export of the same version fails here, on the primary key
    audit.record(session, actor, "trust.export", "trust_bundle", version, None, sha256=record.sha256,
                 expires_at=record.expires_at, root_key_id=record.root_key_id)
    return data, record


def latest_bundle(session) -> TrustBundleRecord | None:
    return session.scalar(select(TrustBundleRecord).order_by(TrustBundleRecord.version.desc()).limit(1))


def checked(record: TrustBundleRecord | None, now):
    """The stored trust bundle, verified against the root it was signed with, or None when there
    is none or it does not verify (expired, damaged): what the server checks card signatures with."""
    if record is None or record.root_public_key is None:
        return None
    try:
        return trust.check(record.content, record.root_public_key, now)
    except trust.TrustBundleError:
        return None
