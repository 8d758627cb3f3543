"""A union with keys, issued cards and an event, for the reader-station tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from tests.support import approved_cards
from unioncard import clock
from unioncard.checkin import services as checkin
from unioncard.clock import today as union_today
from unioncard.hsm import ceremony
from unioncard.hsm.domain import KeyRole
from unioncard.issuer import services as cards
from unioncard.issuer.domain import CardStatus
from unioncard.issuer.models import Card
from unioncard.registry.actor import Actor

HELD_PATH = (CardStatus.IN_PRODUCTION, CardStatus.PRODUCED, CardStatus.SHIPPED, CardStatus.DELIVERED,
             CardStatus.ISSUED)


def export_trust(make_uow, stores, days: int = 30) -> bytes:
    with make_uow() as uow:
        data, _record = ceremony.export_trust(uow, Actor.system("test"), stores, timedelta(days=days))
        uow.commit()
    return data


def issued_cards(make_uow, tree, count: int, signer, organisation: str = "primary_a",
                 prefix: str = "Делегатова") -> list["HeldCard"]:
    """``count`` members with a plastic card handed out («Выдан») and its signed credential."""
    ids = approved_cards(make_uow, tree, count, organisation, prefix)
    system = Actor.system("test")
    with make_uow() as uow:
        rows = list(uow.session.scalars(select(Card).where(Card.id.in_(ids)).order_by(Card.id)))
        for status in HELD_PATH:
            rows = cards.transition_many(uow, system, rows, status)
        cards.ensure_credentials(uow, rows, signer)
        uow.commit()
    with make_uow() as uow:
        return [HeldCard(c.id, c.number, c.credential, c.person_id)
                for c in uow.session.scalars(select(Card).where(Card.id.in_(ids)).order_by(Card.id))]


@dataclass(frozen=True)
class HeldCard:
    id: int
    number: str
    credential: str
    person_id: int


def block(make_uow, card_ids: list[int]) -> None:
    system = Actor.system("test")
    with make_uow() as uow:
        rows = list(uow.session.scalars(select(Card).where(Card.id.in_(card_ids))))
        rows = cards.transition_many(uow, system, rows, CardStatus.LOST)
        cards.transition_many(uow, system, rows, CardStatus.BLOCKED)
        uow.commit()


@dataclass
class EventSetup:
    event_id: int
    stores: ceremony.KeyStores
    root_public_key: bytes


def make_event(make_uow, tree, stores, *, admission: str = "roster", roster: list[str] = (), code: str = "S1",
               role: str = "делегат") -> int:
    actor = Actor.system("test")
    with make_uow() as uow:
        event = checkin.create_event(uow, actor, code=code, name="XI съезд Профсоюза", kind="congress",
                                     organisation_id=tree.central, starts_on=union_today(),
                                     ends_on=union_today() + timedelta(days=1), venue="Москва, Ленинский пр., 42",
                                     admission=admission)
        if roster:
            result = checkin.import_roster(uow, actor, event.id, [(i, n, role) for i, n in enumerate(roster, 2)])
            assert not result.problems, result.problems
        uow.commit()
        return event.id


def publish(make_uow, event_id: int, stores, **kw):
    with make_uow() as uow:
        record = checkin.publish_bundle(uow, Actor.system("test"), event_id, stores.operational, **kw)
        uow.commit()
        return record.content


def enrol(make_uow, event_id: int, desk: str) -> tuple[int, str]:
    with make_uow() as uow:
        station, token = checkin.enrol_station(uow, Actor.system("test"), event_id, desk)
        uow.commit()
        return station.id, token


def root_public_key(stores) -> bytes:
    return stores.root.active_key(KeyRole.ROOT).public_key


def now():
    return clock.now()


def resign(data: bytes, signer, change_header=None, **sections: bytes) -> bytes:
    """``data`` rebuilt with sections replaced and the header changed, then signed again with the
    union's own event_bundle key: a bundle only the union could have made, for testing what a desk
    does with content no honest builder writes (a header without an event, event 0, a zlib bomb)."""
    import hashlib
    import json
    import struct

    from unioncard.reader_station import bundle as eb

    start = len(eb.MAGIC) + 4
    (length,) = struct.unpack_from(">I", data, len(eb.MAGIC))
    header = json.loads(data[start:start + length])
    position = start + length
    parts = {}
    for entry in header["sections"]:
        parts[entry["name"]] = data[position:position + entry["length"]]
        position += entry["length"]
    parts.update(sections)
    header["sections"] = [{"name": name, "length": len(parts[name]), "sha256": hashlib.sha256(parts[name]).hexdigest()}
                          for name in eb.SECTIONS]
    header["key_id"] = signer.active_key(KeyRole.EVENT_BUNDLE).key_id
    if change_header is not None:
        change_header(header)
    raw = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    signed = eb.MAGIC + struct.pack(">I", len(raw)) + raw + b"".join(parts[name] for name in eb.SECTIONS)
    signature = signer.sign(KeyRole.EVENT_BUNDLE, signed).value
    return signed + bytes([len(signature)]) + signature


def root_pem(stores, path) -> str:
    """The root public key as the PEM file an operator passes with --root-key."""
    from cryptography.hazmat.primitives import serialization

    from unioncard.hsm.domain import load_public_key

    path.write_bytes(load_public_key(root_public_key(stores)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(path)
