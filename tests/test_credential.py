"""The signed card credential and the chip certificate (docs/formats.md §6, §8)."""

from __future__ import annotations

from datetime import date

import base45
import pytest
import qrcode
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings, strategies as st

from tests.support import signing_keys
from unioncard.hsm.domain import KeyRole
from unioncard.issuer import card_certificate, cardnumber, credential

NUMBER = cardnumber.build("964301", "23", 17)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return signing_keys(tmp_path_factory.mktemp("cred"))


def test_round_trip_and_signature(keys):
    store, bundle = keys
    made = credential.issue(store, NUMBER, "Иванова", "Мария", "Петровна", "23", date(2026, 11, 22))
    text = made.qr_text
    assert text.startswith("UC1:")
    # Only QR alphanumeric characters: the code is made in alphanumeric mode.
    assert set(text) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    parsed = credential.verify(text, bundle)
    assert (parsed.number, parsed.full_name, parsed.region_code, parsed.issued_on, parsed.kind) == (
        NUMBER, "Иванова М. П.", "23", date(2026, 11, 22), "plastic")
    assert credential.verify(text.lower(), bundle).number == NUMBER  # scanners that lower-case
    assert credential.number_from_scan(" " + text + "\r\n") == NUMBER


def test_longest_name_fits_qr_version_10_at_m(keys):
    store, bundle = keys
    made = credential.issue(store, NUMBER, "Бла" * 40, "Ж" * 10, "Щ" * 10, "77", date(2049, 12, 31), "virtual")
    assert len(made.full_name.encode()) <= credential.MAX_NAME_BYTES and made.full_name.endswith("Ж. Щ.")
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(qrcode.util.QRData(made.qr_text, mode=qrcode.util.MODE_ALPHA_NUM))
    code.make(fit=True)
    assert code.version <= 10
    assert credential.verify(made.qr_text, bundle).kind == "virtual"


def test_tampering_is_refused(keys):
    store, bundle = keys
    made = credential.issue(store, NUMBER, "Иванов", "Иван", None, "23", date(2026, 1, 2))
    forged = made.payload.replace("Иванов".encode(), "Петров".encode()) + made.signature
    with pytest.raises(credential.CredentialError) as info:
        credential.verify(credential.QR_PREFIX + base45.b45encode(forged).decode(), bundle)
    assert info.value.code == "credential_bad_signature"
    for junk in ["", "UC1:", "UC1:!!", "UC1:" + base45.b45encode(made.record[:20]).decode(), "HC1:6BFOXN", "12345"]:
        with pytest.raises(credential.CredentialError):
            credential.verify(junk, bundle)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_records_never_crash(record):
    try:
        credential.decode_record(record)
    except credential.CredentialError:
        pass


def test_chip_certificate_and_challenge(keys):
    store, bundle = keys
    card_key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import hashes, serialization

    point = card_key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    cert = card_certificate.issue(store, NUMBER, point)
    checked = card_certificate.check_signature(card_certificate.decode(cert.record), bundle)
    assert checked.number == NUMBER and checked.public_point == point
    challenge = b"\x01" * 16
    answer = card_key.sign(card_certificate.challenge_message(NUMBER, challenge), ec.ECDSA(hashes.SHA256()))
    assert card_certificate.response_is_valid(point, NUMBER, challenge, answer)
    assert not card_certificate.response_is_valid(point, NUMBER, b"\x02" * 16, answer)
    other = ec.generate_private_key(ec.SECP256R1())
    assert not card_certificate.response_is_valid(
        point, NUMBER, challenge, other.sign(card_certificate.challenge_message(NUMBER, challenge),
                                             ec.ECDSA(hashes.SHA256())))
    with pytest.raises(card_certificate.CertificateError):
        card_certificate.check_signature(card_certificate.decode(cert.payload + bytes(len(cert.signature))), bundle)
    with pytest.raises(card_certificate.CertificateError):
        card_certificate.issue(store, NUMBER, b"\x04" + b"\x00" * 64)  # not on the curve


def test_the_verifier_printed_in_formats_md_works(keys):
    """docs/formats.md §6 shows how a partner verifies a card with `cryptography` alone: run it."""
    import re
    from pathlib import Path

    store, _ = keys
    doc = (Path(__file__).parent.parent / "docs" / "formats.md").read_text(encoding="utf-8")
    section = doc[doc.index("## 6. Card credential"):doc.index("## 7. Card number")]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - our own documentation
    made = credential.issue(store, NUMBER, "Иванова", "Мария", "Петровна", "23", date(2026, 11, 22))
    keys_by_id = {k.key_id: k.public_key for k in store.list() if k.role == KeyRole.CARD_CREDENTIAL}
    assert namespace["verify_card"](made.qr_text, keys_by_id) == {
        "number": NUMBER, "name": "Иванова М. П.", "region": "23", "issued_on": date(2026, 11, 22)}
    forged = credential.QR_PREFIX + base45.b45encode(made.payload[:-1] + b"X" + made.signature).decode()
    from cryptography.exceptions import InvalidSignature

    with pytest.raises(InvalidSignature):
        namespace["verify_card"](forged, keys_by_id)


def test_our_base45_is_the_rfc_9285_encoding_of_the_base45_package():
    import os

    import base45

    from unioncard.issuer.credential import b45encode

    assert b45encode(b"AB") == "BB8" and b45encode(b"Hello!!") == "%69 VD92EX0" and b45encode(b"") == ""  # RFC 9285 §4.3
    for length in list(range(0, 40)) + [150, 151, 255]:
        data = os.urandom(length)
        assert b45encode(data) == base45.b45encode(data).decode("ascii"), data.hex()


def test_a_batch_signed_at_once_gives_the_records_of_single_issues(tmp_path):
    """issue_many looks the key up once and skips the decode: the texts must still be exactly
    issue()'s (Ed25519 is deterministic), for short, hyphenated, cut and virtual cases."""
    signer, bundle = signing_keys(tmp_path)
    rows = [(NUMBER, "Иванова", "Мария", "Петровна", "23", date(2026, 11, 22), "plastic"),
            (NUMBER, "Римский-Корсаков", "Анна-Мария", None, "77", date(2000, 1, 1), "virtual"),
            (NUMBER, "Я" * 70, "Ёж", "Й", "01", date(2031, 5, 6), "plastic")]
    assert credential.issue_many(signer, rows) == [credential.issue(signer, *row).qr_text for row in rows]
    assert credential.issue_many(signer, []) == []
    assert credential.verify(credential.issue_many(signer, rows[1:2])[0], bundle).full_name == "Римский-Корсаков А.-М."


def test_a_bureau_batch_signs_on_two_cores_and_stores_every_credential(make_uow, tree, session_factory, tmp_path,
                                                                       monkeypatch):
    """ensure_credentials(workers=2): forked signers working while the next chunk is read and the
    last one stored (COPY on PostgreSQL; chunks of 500 here, so five overlap); every stored
    credential verifies and names its own card and holder."""
    from sqlalchemy import select

    from unioncard.issuer import services as cards
    from unioncard.issuer.models import Card
    from tests.support import approved_cards

    monkeypatch.setattr(cards, "CREDENTIAL_CHUNK", 500)
    signer, bundle = signing_keys(tmp_path)
    ids = approved_cards(make_uow, tree, 2100, prefix="Подписанова")
    with make_uow() as uow:
        loaded = cards._load_cards(uow.session, ids)
        made = cards.ensure_credentials(uow, loaded, signer, workers=2)
        uow.commit()
    with session_factory() as s:
        stored = {card.id: card for card in s.scalars(select(Card).where(Card.id.in_(ids)))}
        assert len(stored) == 2100
        for card_id, text in made.items():
            card = stored[card_id]
            assert card.credential == text
            checked = credential.verify(text, bundle)
            assert checked.number == card.number and checked.full_name.startswith(card.person.surname)
