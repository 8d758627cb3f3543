"""After a load: what the exchange files held for each region against what the registry holds
from that load — organisations, members, consents by section, cards by status, positions. Every
difference is a figure to explain; right after a load there must be none."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from unioncard.i18n import N_, translate
from unioncard.issuer import domain as cd
from unioncard.issuer.models import Card
from unioncard.migration.models import MigrationLoad
from unioncard.registry import domain as rd
from unioncard.registry.models import Consent, Membership, Organisation
from unioncard.statistics.models import ActivistPosition


@dataclass
class Reconciliation:
    region_org_code: str
    region_code: str | None
    name: str
    source: dict
    loaded: dict
    differences: list[tuple[str, int, int]] = field(default_factory=list)   # (what, in the files, loaded)


def label(key: str) -> str:
    """A reconciliation figure's name in the reader's language: «cards.issued» → «билеты: выдан»."""
    group, _, item = key.partition(".")
    if group == "cards":
        return translate(N_("cards")) + ": " + translate(cd.STATUS_LABELS[cd.CardStatus(item)])
    if group == "consents":
        return translate(N_("consent")) + " " + translate(rd.CONSENT_SECTION_LABELS[rd.ConsentSection(item)])
    return translate({"organisations": N_("organisations"), "members": N_("members"),
                      "positions": N_("positions")}[group])


def _flat(counts: dict) -> dict[str, int]:
    flat = {"organisations": counts.get("organisations", 0), "members": counts.get("members", 0),
            "positions": counts.get("positions", 0)}
    for section, count in counts.get("consents", {}).items():
        flat[f"consents.{section}"] = count
    for status, count in counts.get("cards", {}).items():
        flat[f"cards.{status}"] = count
    return flat


def registry_counts(conn, load_id: int) -> dict:
    def one(model, *where):
        return conn.scalar(select(func.count()).select_from(model).where(model.migration_load_id == load_id, *where))

    return {
        "organisations": one(Organisation),
        "members": one(Membership, Membership.is_active.is_(True)),
        "consents": dict(conn.execute(select(Consent.section, func.count()).where(
            Consent.migration_load_id == load_id, Consent.withdrawn_on.is_(None)).group_by(Consent.section)).all()),
        "cards": dict(conn.execute(select(Card.status, func.count()).where(Card.migration_load_id == load_id)
                                   .group_by(Card.status)).all()),
        "positions": one(ActivistPosition),
    }


def reconcile(engine: Engine) -> list[Reconciliation]:
    result = []
    with engine.connect() as conn:
        for load in conn.execute(select(MigrationLoad.__table__).order_by(MigrationLoad.region_org_code)).all():
            name = conn.scalar(select(Organisation.name).where(Organisation.id == load.organisation_id)) or ""
            loaded = registry_counts(conn, load.id)
            item = Reconciliation(load.region_org_code, load.region_code, name, load.source_counts, loaded)
            source, found = _flat(load.source_counts), _flat(loaded)
            for key in sorted(set(source) | set(found)):
                if source.get(key, 0) != found.get(key, 0):
                    item.differences.append((key, source.get(key, 0), found.get(key, 0)))
            result.append(item)
    return result
