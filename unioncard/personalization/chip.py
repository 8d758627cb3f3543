"""Writing a card's chip in the bureau, and proving it was written right before the card counts
as made: the credential and certificate are read back byte for byte and the card must answer a
fresh challenge with the key the certificate names."""

from __future__ import annotations

import os
from dataclasses import dataclass

from unioncard.errors import ValidationError
from unioncard.hardware import cardapp
from unioncard.i18n import N_
from unioncard.issuer import card_certificate


class ReadBackFailed(ValidationError):
    code = "chip_read_back_failed"
    message = N_("The chip does not hold what was written (%(what)s): the card is spoiled")


class UidAlreadyBound(ValidationError):
    code = "chip_uid_already_bound"
    message = N_("This card's UID is already bound to another card number: use another blank card")


@dataclass(frozen=True)
class ChipResult:
    uid: str
    key_fingerprint: str | None
    apdus: int


def personalise(session, number: str, credential_record: bytes, certify) -> ChipResult:
    """Write a blank UnionCard chip: on-card key, certificate (``certify(point) -> record``),
    credential; lock it; read everything back and challenge the key."""
    state = cardapp.select(session)
    if state == cardapp.State.LOCKED:
        raise cardapp.CardNotBlank()
    uid = cardapp.uid(session).hex().upper()
    point = cardapp.generate_key(session)
    certificate = certify(point)
    cardapp.write_file(session, cardapp.FID_CREDENTIAL, credential_record)
    cardapp.write_file(session, cardapp.FID_CERTIFICATE, certificate)
    cardapp.lock(session)
    # Read-back: what the card now holds, and whether it holds the private key.
    if cardapp.select(session) != cardapp.State.LOCKED:
        raise ReadBackFailed(what="lock")
    if cardapp.read_file(session, cardapp.FID_CREDENTIAL) != credential_record:
        raise ReadBackFailed(what="credential")
    if cardapp.read_file(session, cardapp.FID_CERTIFICATE) != certificate:
        raise ReadBackFailed(what="certificate")
    if cardapp.public_key(session) != point:
        raise ReadBackFailed(what="public key")
    challenge = os.urandom(cardapp.CHALLENGE_SIZE)
    if not card_certificate.response_is_valid(point, number, challenge, cardapp.authenticate(session, challenge)):
        raise ReadBackFailed(what="challenge")
    return ChipResult(uid, card_certificate.fingerprint(point), session.apdu_count)


def read_uid(session) -> ChipResult:
    """A plain UID card: its UID is all there is (bound to the number in the database)."""
    return ChipResult(cardapp.uid(session).hex().upper(), None, session.apdu_count)
