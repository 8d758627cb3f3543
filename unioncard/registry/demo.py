"""A believable union for demos and benchmarks, built from the real per-region member counts
(card_coverage_2020-05-19.csv: 37 regional organisations, 1 094 481 members at scale 1).

It streams: people are generated and written in batches (COPY on PostgreSQL, executemany on
SQLite), so memory stays flat from a thousand members to the 4 M synthetic size.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Callable, Iterator

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Engine

from unioncard import clock
from unioncard.errors import Conflict
from unioncard.i18n import N_
from unioncard.issuer import cardnumber
from unioncard.issuer.models import Card, CardEvent, CardNumberCounter
from unioncard.registry import demo_names as names
from unioncard.registry import domain as d
from unioncard.registry.models import (
    AuditEntry,
    Consent,
    Membership,
    Organisation,
    OrganisationParentHistory,
    Person,
)

# Regional codes (as on Russian vehicle plates and in OKATO order) for the regions in the data.
REGION_CODES = {
    "Сахалинская": "65", "Чувашская": "21", "Калининградская": "39", "Ямало-Ненецкая": "89", "Алтайская республ.": "04",
    "Чеченская": "20", "Ханты-Мансийская": "86", "Ставропольская": "26", "Липецкая": "48", "Пермская": "59",
    "Приморская": "25", "Кемеровская": "42", "Московская": "77", "Самарская": "63", "Нижегородская": "52",
    "Марийская": "12", "Санкт-Петербурга": "78", "Мордовская": "13", "Тюменская": "72", "Алтайская краевая": "22",
    "Башкирская": "02", "Омская": "55", "Курганская": "45", "Забайкальская": "75", "Орловская": "57", "Коми": "11",
    "Краснодарская": "23", "Саратовская": "64", "Оренбургская": "56", "Курская": "46", "Ивановская": "37",
    "Татарстанская": "16", "Пензенская": "58", "Псковская": "60", "Брянская": "32", "Хабаровская": "27",
    "Ярославская": "76",
}


# The figures are the registry «на 19.05.2020»: members joined by then, cards handed out by then.
DATA_DATE = date(2020, 5, 19)


@dataclass(frozen=True)
class RegionFigures:
    name: str
    members: int
    plastic_cards: int
    virtual_cards: int


def coverage_figures() -> list[RegionFigures]:
    text_data = resources.files("unioncard.registry").joinpath("data/card_coverage_2020-05-19.csv").read_text("utf-8")
    return [RegionFigures(r["regional_organisation"], int(r["members_in_registry"]), int(r["plastic_cards"]),
                          int(r["virtual_cards"])) for r in csv.DictReader(io.StringIO(text_data))]


def region_code(name: str) -> str:
    for key in sorted(REGION_CODES, key=len, reverse=True):
        if name.startswith(key):
            return REGION_CODES[key]
    raise KeyError(name)


def full_region_name(short: str) -> str:
    """«Чувашская республик.» → «Чувашская республиканская организация Профсоюза»."""
    expansions = {"республик.": "республиканская", "республ.": "республиканская", "окруж.": "окружная"}
    words = [expansions.get(w, w) for w in short.split()]
    text_name = " ".join(words)
    if text_name.startswith("Санкт-Петербурга"):
        return "Межрегиональная организация Санкт-Петербурга и Ленинградской области Профсоюза"
    if "(" in text_name:
        head, tail = text_name.split("(", 1)
        return f"{head.strip()} организация Профсоюза ({tail}"
    return f"{text_name} организация Профсоюза"


@dataclass
class DemoResult:
    regions: int = 0
    territorials: int = 0
    primaries: int = 0
    members: int = 0
    consents: int = 0
    plastic_cards: int = 0
    virtual_cards: int = 0


def _categories(kind: str) -> list[tuple[str, float]]:
    if kind == d.OrgKind.STUDENTS:
        return [(d.Category.STUDENT, 1.0)]
    return [(d.Category.WORKING, 0.93), (d.Category.PENSIONER, 0.05), (d.Category.UNEMPLOYED, 0.02)]


class _Writer:
    """Batched inserts with explicit ids: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, engine: Engine, batch: int = 20_000):
        self.engine, self.batch = engine, batch
        self.buffers: dict = {}
        self.is_pg = engine.dialect.name == "postgresql"

    def add(self, table, row: dict) -> None:
        buffer = self.buffers.setdefault(table, [])
        buffer.append(row)
        if len(buffer) >= self.batch:
            # Everything buffered goes together, parents first, so a child row never reaches
            # the database before the row it refers to.
            self.flush()

    def flush(self) -> None:
        order = (Organisation.__table__, OrganisationParentHistory.__table__, Person.__table__,
                 Membership.__table__, Consent.__table__, Card.__table__, CardEvent.__table__)
        with self.engine.begin() as conn:
            for t in order:
                rows = self.buffers.get(t)
                if not rows:
                    continue
                if self.is_pg:
                    columns = list(rows[0])
                    raw = conn.connection.driver_connection
                    with raw.cursor() as cursor:
                        with cursor.copy(f'COPY "{t.name}" ({", ".join(columns)}) FROM STDIN') as copy:
                            for row in rows:
                                copy.write_row([row[c] for c in columns])
                else:
                    conn.execute(insert(t), rows)
                self.buffers[t] = []


def generate(engine: Engine, *, scale: float = 1.0, seed: int = 2020, today: date | None = None,
             progress: Callable[[int], None] | None = None, total_callback: Callable[[int], None] | None = None,
             batch_size: int = 20_000) -> DemoResult:
    """Fill an empty registry. ``progress(n)`` is called with members written since the last call."""
    rng = random.Random(seed)
    today = today or clock.today()
    now = clock.now()
    with engine.connect() as conn:
        if conn.scalar(select(func.count()).select_from(Organisation)):
            raise Conflict(N_("The registry already has organisations: demo data goes only into an empty database"),
                           code="registry_not_empty")
    regions = coverage_figures()
    targets = [max(1, round(r.members * scale)) for r in regions]
    if total_callback:
        total_callback(sum(targets))
    writer = _Writer(engine, batch_size)
    result = DemoResult()
    ids = {"org": 0, "person": 0, "membership": 0, "consent": 0}

    def new_org(code, name, level, parent, kind=None, region=None, inn=None) -> tuple[int, str]:
        ids["org"] += 1
        oid = ids["org"]
        path = d.child_path(parent[1] if parent else None, oid)
        writer.add(Organisation.__table__, dict(
            id=oid, code=code, name=name, level=level, kind=kind, inn=inn, parent_id=parent[0] if parent else None,
            path=path, region_code=region, added_on=date(2019, 1, 1), removed_on=None, removal_reason=None))
        writer.add(OrganisationParentHistory.__table__, dict(
            organisation_id=oid, parent_id=parent[0] if parent else None, valid_from=now, valid_to=None))
        return oid, path

    central = new_org("0", "Общероссийский Профсоюз образования", d.Level.CENTRAL, None)
    seen_people: set[int] = set()
    pending_progress = 0
    card_rng = random.Random(seed + 1)  # its own stream: the members stay the same with or without cards
    serials: dict[str, int] = {}
    for figures, target in zip(regions, targets):
        code = region_code(figures.name)
        region = new_org(code, full_region_name(figures.name), d.Level.REGIONAL, central, region=code)
        result.regions += 1
        plastic = min(target, round(figures.plastic_cards * scale))
        virtual = min(target - plastic, round(figures.virtual_cards * scale))
        chosen = card_rng.sample(range(target), plastic + virtual)
        card_of = {index: "plastic" for index in chosen[:plastic]}
        card_of.update({index: "virtual" for index in chosen[plastic:]})
        region_index = 0
        # About 5 000 members per territorial organisation; about 45 per primary one.
        territorial_count = max(1, round(target / 5000))
        per_territorial = _split(target, territorial_count, rng)
        for t_index, t_members in enumerate(per_territorial, start=1):
            town = rng.choice(names.TOWN_STEMS)
            territorial = new_org(f"{code}-{t_index:03d}", f"{names.feminine_adjective(town)} районная организация Профсоюза",
                                  d.Level.TERRITORIAL, region, region=code)
            result.territorials += 1
            remaining, p_index = t_members, 0
            while remaining > 0:
                p_index += 1
                student = rng.random() < 0.04
                size = min(remaining, rng.randint(200, 1500) if student else rng.randint(8, 80))
                remaining -= size
                kind = d.OrgKind.STUDENTS if student else d.OrgKind.WORKERS
                school = "ФГБОУ ВО" if student else rng.choice(names.SCHOOL_KINDS)
                primary = new_org(f"{code}-{t_index:03d}-{p_index:04d}",
                                  f"ППО {school} {rng.randint(1, 120)}" if not student
                                  else f"ППО студентов и аспирантов {school} «Университет № {p_index}»",
                                  d.Level.PRIMARY, territorial, kind=kind, region=code)
                result.primaries += 1
                for _ in range(size):
                    kind_of_card = card_of.get(region_index)
                    # A card is issued only with consent to processing (section 1): its holders have it.
                    person_id, membership_id, joined = _person(writer, rng, ids, primary, kind, today, seen_people,
                                                               result, consents=bool(kind_of_card))
                    if kind_of_card:
                        _card(writer, card_rng, ids, serials, code, primary, person_id, membership_id, joined,
                              kind_of_card, result)
                    region_index += 1
                pending_progress += size
                if progress and pending_progress >= 5000:
                    progress(pending_progress)
                    pending_progress = 0
    writer.flush()
    if progress and pending_progress:
        progress(pending_progress)
    with engine.begin() as conn:
        if serials:
            conn.execute(insert(CardNumberCounter.__table__), [
                {"region_code": code, "next_serial": last + 1} for code, last in serials.items()])
        if engine.dialect.name == "postgresql":
            for table in ("organisation", "organisation_parent_history", "person", "membership", "consent", "card",
                          "card_event"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"COALESCE((SELECT max(id) FROM {table}), 1))"))
            conn.execute(text("ANALYZE"))
        conn.execute(insert(AuditEntry.__table__), [dict(
            at=clock.now(), user_id=None, actor="demo-data", action="demo.generate", object_type="registry",
            object_id=None, organisation_id=None,
            details={"scale": scale, "seed": seed, "members": result.members, "plastic_cards": result.plastic_cards,
                     "virtual_cards": result.virtual_cards})])
    if engine.dialect.name == "postgresql":
        # A bulk load leaves PostgreSQL's visibility map empty: vacuum now, as autovacuum would
        # later, so that counting a region's members reads the index alone.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) membership, person, consent, card"))
    return result


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    weights = [rng.uniform(0.5, 1.5) for _ in range(parts)]
    scale = total / sum(weights)
    shares = [int(w * scale) for w in weights]
    shares[0] += total - sum(shares)
    return shares


def _person(writer, rng, ids, primary, kind, today, seen_people, result,
            consents: bool = False) -> tuple[int, int, date]:
    category = _pick(rng, _categories(kind))
    while True:
        female = rng.random() < (0.8 if kind == d.OrgKind.WORKERS else 0.6)
        surname = rng.choice(names.SURNAMES_MALE)
        surname = names.feminine(surname) if female else surname
        given = rng.choice(names.GIVEN_FEMALE if female else names.GIVEN_MALE)
        patronymic = names.patronymic(rng.choice(names.PATRONYMIC_STEMS), female)
        if category == d.Category.STUDENT:
            age_days = rng.randint(17 * 365, 24 * 365)
        elif category == d.Category.PENSIONER:
            age_days = rng.randint(60 * 365, 80 * 365)
        else:
            age_days = rng.randint(21 * 365, 64 * 365)
        birth = today - timedelta(days=age_days)
        key = d.identity_key(surname, given, patronymic, birth)
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
        if digest not in seen_people:
            seen_people.add(digest)
            break
    ids["person"] += 1
    pid = ids["person"]
    join = birth + timedelta(days=rng.randint(17 * 365, max(17 * 365 + 1, age_days - 30)))
    join = min(join, today, DATA_DATE)
    phone = f"+79{rng.randint(0, 999999999):09d}" if rng.random() < 0.7 else None
    writer.add(Person.__table__, dict(
        id=pid, surname=surname, given_name=given, patronymic=patronymic, birth_date=birth,
        sex=d.Sex.FEMALE if female else d.Sex.MALE, phone=phone, email=None, identity_key=key, created_at=clock.now()))
    ids["membership"] += 1
    writer.add(Membership.__table__, dict(
        id=ids["membership"], person_id=pid, organisation_id=primary[0], org_path=primary[1],
        sort_name=d.sort_name(surname, given, patronymic), category=category, join_date=join, leave_date=None,
        leave_reason=None, is_active=True))
    result.members += 1
    given_on = max(join, date(2019, 3, 1))
    for section, share in ((d.ConsentSection.PROCESSING, 0.93), (d.ConsentSection.PARTNER_TRANSFER, 0.6),
                           (d.ConsentSection.MESSAGING, 0.55)):
        # The roll is made either way, so the same seed gives the same union.
        if rng.random() < share or (consents and section == d.ConsentSection.PROCESSING):
            ids["consent"] += 1
            writer.add(Consent.__table__, dict(
                id=ids["consent"], person_id=pid, section=section, given_on=given_on,
                form=d.ConsentForm.ELECTRONIC if rng.random() < 0.2 else d.ConsentForm.PAPER, withdrawn_on=None,
                recorded_at=clock.now(), recorded_by=None))
            result.consents += 1
        else:
            break  # sections 2 and 3 only after section 1 in practice
    return pid, ids["membership"], join


def _card(writer, rng, ids, serials, code, primary, person_id, membership_id, joined, kind, result) -> None:
    """A card handed out («Выдан») before the data date, with its number and one history row."""
    serial = serials.get(code, 0) + 1
    serials[code] = serial
    start = max(joined, date(2019, 9, 1))
    span = max(0, (DATA_DATE - start).days - 1)
    handed = datetime.combine(start + timedelta(days=rng.randint(0, span)), datetime.min.time()) + timedelta(hours=10)
    ids["card"] = ids.get("card", 0) + 1
    writer.add(Card.__table__, dict(
        id=ids["card"], kind=kind, status="issued",
        number=cardnumber.build(cardnumber.DEFAULT_ISSUER_PREFIX, code, serial), membership_id=membership_id,
        person_id=person_id, organisation_id=primary[0], org_path=primary[1], region_code=code, ordered_by=None,
        ordered_at=handed - timedelta(days=30), status_changed_at=handed, status_reason=None, replaces_card_id=None,
        link_token_hash=None, chip_uid=None, chip_key=None, lock_version=1))
    ids["card_event"] = ids.get("card_event", 0) + 1
    writer.add(CardEvent.__table__, dict(
        id=ids["card_event"], card_id=ids["card"], from_status=None, to_status="issued", at=handed, user_id=None,
        actor="demo-data", reason=None))
    if kind == "plastic":
        result.plastic_cards += 1
    else:
        result.virtual_cards += 1


def _pick(rng, weighted):
    roll, acc = rng.random(), 0.0
    for value, weight in weighted:
        acc += weight
        if roll < acc:
            return value
    return weighted[-1][0]


def iter_demo_users(session) -> Iterator[tuple[str, str, int, str]]:
    """(login, role, organisation id, full name) for the demo's users."""
    largest_region = session.scalar(select(Organisation).where(Organisation.code == "23")) or \
        session.scalar(select(Organisation).where(Organisation.level == d.Level.REGIONAL).order_by(Organisation.id))
    primary = session.scalars(select(Organisation).where(
        Organisation.level == d.Level.PRIMARY, Organisation.path.like(largest_region.path + "%"),
        Organisation.kind == d.OrgKind.WORKERS).order_by(Organisation.id)).first()
    central = session.scalar(select(Organisation).where(Organisation.level == d.Level.CENTRAL))
    yield "admin", d.Role.ADMIN, central.id, "Администратор системы"
    yield "region", d.Role.REGIONAL_STAFF, largest_region.id, "Специалист региональной организации"
    yield "chair", d.Role.CHAIRPERSON, primary.id, "Председатель ППО"
    yield "bureau", d.Role.BUREAU_OPERATOR, central.id, "Оператор бюро изготовления карт"
    yield "events", d.Role.EVENT_STAFF, central.id, "Организатор мероприятий"
