"""The registry written out in the exchange format (docs/migration.md), streamed table by table.

It is the round trip's first half (the demo union out, then loaded into an empty database) and
the generator of the 4 M-member exchange folder the benchmark checks and loads: demo data at
any scale, exported. Members are the open memberships; consents the ones not withdrawn; cards
every card that has a number; positions the activists' positions and the chairpersons' terms.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine

from unioncard.errors import ValidationError
from unioncard.i18n import N_
from unioncard.issuer.models import Card
from unioncard.migration import domain as md
from unioncard.registry.models import ChairpersonTerm, Consent, Membership, Organisation, Person
from unioncard.statistics.domain import PositionKind
from unioncard.statistics.models import ActivistPosition

SECTION_NUMBERS = {value: key for key, value in md.SECTION_WORDS.items()}


@dataclass
class ExportResult:
    rows: dict = field(default_factory=dict)   # file name -> data rows


def _iso(value) -> str:
    return value.isoformat() if value is not None else ""


def export(engine: Engine, folder: Path, progress=None) -> ExportResult:
    existing = [spec.name for spec in md.FILES.values() if (folder / spec.name).exists()]
    if existing:
        # Never over another export (the earlier registry's own, waiting to be loaded).
        raise ValidationError(N_("The folder %(path)s already holds %(files)s: give an empty or new folder"),
                              code="export_folder_not_empty", path=str(folder), files=", ".join(existing))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    result = ExportResult()

    def write(kind: str, rows) -> None:
        spec = md.FILES[kind]
        count = 0
        path = folder / spec.name
        # The members' personal data: readable by this account only, whatever the umask.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.chmod(path, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(spec.columns)
            for row in rows:
                writer.writerow(row)
                count += 1
                if progress and count % 100_000 == 0:
                    progress(spec.name, 100_000)
        if progress:
            progress(spec.name, count % 100_000)
        result.rows[spec.name] = count

    with engine.connect() as conn:
        conn = conn.execution_options(yield_per=50_000)
        orgs = {row.id: row for row in conn.execute(select(
            Organisation.id, Organisation.code, Organisation.parent_id, Organisation.level, Organisation.name,
            Organisation.kind, Organisation.region_code, Organisation.inn, Organisation.added_on)
            .where(Organisation.removed_on.is_(None)).order_by(Organisation.path))}
        write(md.ORGANISATIONS, ([o.code, orgs[o.parent_id].code if o.parent_id in orgs else "", o.level, o.name,
                                  o.kind or "", o.region_code or "", o.inn or "", _iso(o.added_on)]
                                 for o in orgs.values()))
        live = and_(Membership.is_active.is_(True), Membership.organisation_id.in_(select(Organisation.id).where(
            Organisation.removed_on.is_(None))))
        write(md.MEMBERS, ([r.id, orgs[r.organisation_id].code, r.surname, r.given_name, r.patronymic or "",
                            _iso(r.birth_date), r.sex or "", r.category, _iso(r.join_date), r.phone or "",
                            r.email or ""]
                           for r in conn.execute(select(
                               Membership.organisation_id, Membership.category, Membership.join_date, Person.id,
                               Person.surname, Person.given_name, Person.patronymic, Person.birth_date, Person.sex,
                               Person.phone, Person.email)
                               .join(Person, Person.id == Membership.person_id).where(live)
                               .order_by(Membership.id))))
        members = select(Membership.person_id).where(live)
        write(md.CONSENTS, ([c.person_id, SECTION_NUMBERS[c.section], _iso(c.given_on), c.form]
                            for c in conn.execute(select(Consent.person_id, Consent.section, Consent.given_on,
                                                         Consent.form)
                                                  .where(Consent.withdrawn_on.is_(None),
                                                         Consent.person_id.in_(members)).order_by(Consent.id))))
        write(md.CARDS, ([c.number, c.person_id, c.kind, c.status, _iso(c.ordered_at.date()),
                          _iso(c.status_changed_at.date())]
                         for c in conn.execute(select(Card.number, Card.person_id, Card.kind, Card.status,
                                                      Card.ordered_at, Card.status_changed_at)
                                               .where(Card.number.is_not(None), Card.person_id.in_(members))
                                               .order_by(Card.id))))
        positions = list(conn.execute(select(ActivistPosition.organisation_id, ActivistPosition.person_id,
                                             ActivistPosition.kind, ActivistPosition.starts_on,
                                             ActivistPosition.ends_on)
                                      .where(ActivistPosition.person_id.in_(members)).order_by(ActivistPosition.id)))
        chaired = {(p.organisation_id, p.person_id) for p in positions if p.kind == PositionKind.CHAIRPERSON}
        terms = [t for t in conn.execute(select(ChairpersonTerm.organisation_id, ChairpersonTerm.person_id,
                                                ChairpersonTerm.starts_on, ChairpersonTerm.ends_on)
                                         .where(ChairpersonTerm.person_id.in_(members)).order_by(ChairpersonTerm.id))
                 if (t.organisation_id, t.person_id) not in chaired]
        write(md.POSITIONS, [*([orgs[p.organisation_id].code, p.person_id, p.kind, _iso(p.starts_on), _iso(p.ends_on)]
                               for p in positions if p.organisation_id in orgs),
                             *([orgs[t.organisation_id].code, t.person_id, PositionKind.CHAIRPERSON,
                                _iso(t.starts_on), _iso(t.ends_on)] for t in terms if t.organisation_id in orgs)])
    return result

