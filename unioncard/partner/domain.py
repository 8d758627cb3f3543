"""Partner verification rules in plain Python: how names are compared and when a card counts as a
valid current card of that person for that partner. No Flask, no SQLAlchemy.

The rule (docs/partner-api.md): a card is valid for a partner when

* its number is known, its status is «Выдан» (issued; plastic or virtual),
* the member's membership is current (not left),
* the surname matches, and so do the given name and the patronymic if the partner sent them,
* and, for a bonus-programme partner only, the member's consent section 2 (transfer to the
  bonus-programme partner) is in force on the day of the query.

Everything else is one answer, «not valid», whatever the cause, so that the answer tells nobody
whether a number exists.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from unioncard.i18n import N_
from unioncard.issuer.domain import CardStatus


class PartnerKind(StrEnum):
    GENERAL = "general"                 # e.g. a credit cooperative: card validity only
    BONUS_PROGRAMME = "bonus_programme"  # needs the member's consent section 2


KIND_LABELS = {
    PartnerKind.GENERAL: N_("Partner (card validity only)"),
    PartnerKind.BONUS_PROGRAMME: N_("Bonus-programme partner (needs consent section 2)"),
}


class Outcome(StrEnum):
    """Why an answer was what it was: kept in the union's audit, never told to the partner."""

    VALID = "valid"
    UNKNOWN_NUMBER = "unknown_number"
    NAME_MISMATCH = "name_mismatch"
    CARD_NOT_ISSUED = "card_not_issued"
    MEMBERSHIP_ENDED = "membership_ended"
    NO_PARTNER_CONSENT = "no_partner_consent"
    BAD_CHECK_DIGIT = "bad_check_digit"
    BAD_CREDENTIAL = "bad_credential"
    FORGED_CREDENTIAL = "forged_credential"


OUTCOME_LABELS = {
    Outcome.VALID: N_("valid"),
    Outcome.UNKNOWN_NUMBER: N_("unknown number"),
    Outcome.NAME_MISMATCH: N_("name does not match"),
    Outcome.CARD_NOT_ISSUED: N_("card not handed out or no longer valid"),
    Outcome.MEMBERSHIP_ENDED: N_("membership ended"),
    Outcome.NO_PARTNER_CONSENT: N_("no consent to transfer to the partner"),
    Outcome.BAD_CHECK_DIGIT: N_("number with a wrong check digit"),
    Outcome.BAD_CREDENTIAL: N_("not a card code"),
    Outcome.FORGED_CREDENTIAL: N_("card code with a wrong signature"),
}

# Every dash a keyboard, a phone or a word processor may produce for the hyphen in «Римский-Корсаков».
_DASHES = re.compile("[\u002d\u00ad\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d]")
_SPACES_AROUND_DASH = re.compile(r"\s*-\s*")
_SPACES = re.compile(r"\s+")


def normalise_name(text: str | None) -> str:
    """The form names are compared in: case folded, ё as е, one plain hyphen without spaces
    around it, inner runs of spaces as one, no surrounding spaces."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text).casefold().replace("ё", "е")
    text = _DASHES.sub("-", text)
    text = _SPACES.sub(" ", text).strip()
    return _SPACES_AROUND_DASH.sub("-", text)


@dataclass(frozen=True)
class NameQuery:
    surname: str
    given_name: str | None = None
    patronymic: str | None = None


@dataclass(frozen=True)
class CardFacts:
    """What the registry knows of the card with the asked number."""

    status: str
    surname: str
    given_name: str
    patronymic: str | None
    membership_current: bool
    partner_consent: bool


def names_match(query: NameQuery, facts: CardFacts) -> bool:
    if normalise_name(query.surname) != normalise_name(facts.surname):
        return False
    if query.given_name is not None and normalise_name(query.given_name) != normalise_name(facts.given_name):
        return False
    if query.patronymic is not None and normalise_name(query.patronymic) != normalise_name(facts.patronymic):
        return False
    return True


def judge(facts: CardFacts | None, kind: PartnerKind, name: NameQuery | None = None) -> Outcome:
    """The outcome for one query. ``name`` is None when the card was shown as its signed QR code,
    whose signature already binds the card to its holder's name."""
    if facts is None:
        return Outcome.UNKNOWN_NUMBER
    if name is not None and not names_match(name, facts):
        return Outcome.NAME_MISMATCH
    if facts.status != CardStatus.ISSUED:
        return Outcome.CARD_NOT_ISSUED
    if not facts.membership_current:
        return Outcome.MEMBERSHIP_ENDED
    if PartnerKind(kind) == PartnerKind.BONUS_PROGRAMME and not facts.partner_consent:
        return Outcome.NO_PARTNER_CONSENT
    return Outcome.VALID

