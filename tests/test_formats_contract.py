"""docs/formats.md is a contract: a partner must be able to write a verifier from it alone. The
sample code printed there is extracted and run against what UnionCard really makes (Ed25519 and
P-256 keys, a key of the wrong role, garbage), and the rules and codes it states are checked
against the code."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import base45
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from tests.station_support import export_trust, issued_cards, make_event, publish, resign, root_public_key
from tests.support import union_keys
from unioncard import clock
from unioncard.hsm import ceremony, trust
from unioncard.hsm.domain import Algorithm, KeyRole, KeyStatus, load_public_key, signing_input
from unioncard.issuer import cardnumber, credential
from unioncard.reader_station import bundle as eb
from unioncard.registry.actor import Actor

DOC = (Path(__file__).parent.parent / "docs" / "formats.md").read_text(encoding="utf-8")
NUMBER = cardnumber.build("964301", "23", 17)


def section(start: str, end: str) -> str:
    return DOC[DOC.index(start):DOC.index(end)]


def sample(start: str, end: str) -> dict:
    """Run the ```python block of a section of formats.md; its names, as a verifier would have them."""
    code = re.search(r"```python\n(.*?)```", section(start, end), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, f"formats.md {start}", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


def trust_sample() -> dict:
    return sample("### 2.3 Verifying", "## 3. Rotation")


def card_sample() -> dict:
    return sample("## 6. Card credential", "## 7. Card number")


def pem(public_der: bytes) -> bytes:
    return load_public_key(public_der).public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def union(tmp_path_factory):
    """Card keys of both algorithms (an Ed25519 key rotated out to verify-only, a P-256 one active),
    a partner_response key, and the root."""
    folder = tmp_path_factory.mktemp("contract")
    stores = union_keys(folder / "union")
    ed_card = stores.operational.active_key(KeyRole.CARD_CREDENTIAL)
    ed_made = credential.issue(stores.operational, NUMBER, "Иванова", "Мария", "Петровна", "23", date(2026, 11, 22))
    stores.operational.generate(KeyRole.CARD_CREDENTIAL, Algorithm.P256)
    p256_made = credential.issue(stores.operational, NUMBER, "Салтыков-Щедрин", "Анна-Мария", "Евграфовна", "23",
                                 date(2027, 3, 1), "virtual")
    partner = stores.operational.generate(KeyRole.PARTNER_RESPONSE)
    return stores, ed_card, ed_made, p256_made, partner, folder


def build_trust(stores, version: int, now: datetime, days: int = 1) -> bytes:
    return trust.build(stores.root, stores.operational.list(), version=version, issued_at=now,
                       expires_at=now + timedelta(days=days))


# --- §2: the trust bundle verifier --------------------------------------------------------------

def test_the_trust_bundle_verifier_in_formats_md_accepts_ours_and_refuses_the_rest(union):
    stores, *_, folder = union
    ns = trust_sample()
    check_bundle, refused = ns["check_bundle"], ns["Refused"]
    now = datetime.now(timezone.utc)
    root = pem(root_public_key(stores))
    first = build_trust(stores, 1, now)
    body = check_bundle(first, root, now)
    assert body["version"] == 1 and {k["role"] for k in body["keys"]} >= {"card_credential", "event_bundle"}

    def reason(*args, **kw):
        with pytest.raises(refused) as info:
            check_bundle(*args, **kw)
        return info.value.args[0]

    # The envelope is not signed: the same bundle re-indented is the same bundle.
    envelope = json.loads(first)
    compact = json.dumps(envelope, separators=(",", ":")).encode()
    assert check_bundle(compact, root, now, 1, body["_payload"])["version"] == 1
    again = build_trust(stores, 1, now + timedelta(seconds=5))  # another payload under version 1
    assert reason(again, root, now + timedelta(seconds=5), 1, body["_payload"]) == "version_conflict"
    second = build_trust(stores, 2, now)
    assert check_bundle(second, root, now, 1, body["_payload"])["version"] == 2
    assert reason(first, root, now, 2) == "rollback"
    assert reason(first, root, now + timedelta(days=2)) == "expired"
    assert reason(first, root, now - timedelta(hours=1)) == "from_future"
    other_root = union_keys(folder / "another-union").root
    assert reason(first, pem(other_root.active_key(KeyRole.ROOT).public_key), now) == "wrong_root"
    forged = dict(envelope, payload=base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(envelope["payload"] + "==").replace(b'"version":1', b'"version":9')).decode().rstrip("="))
    assert reason(json.dumps(forged).encode(), root, now) == "bad_signature"
    for garbage in (b"", b"[]", b"{}", b"null", b"\xff\xfe", b'{"format": "unioncard-trust-bundle/1"}',
                    json.dumps(dict(envelope, payload=7)).encode(), json.dumps(dict(envelope, signature=[])).encode(),
                    first[:len(first) // 2]):
        assert reason(garbage, root, now) == "malformed", garbage

    # And UnionCard's own rule agrees: the re-indented file is no version conflict.
    state = trust.TrustState(folder / "trust.json", root_public_key(stores))
    state.accept(first, now)
    assert state.accept(compact, now).version == 1
    with pytest.raises(trust.TrustBundleError) as info:
        state.accept(again, now + timedelta(seconds=5))
    assert info.value.code == "trust_bundle_version_conflict"


# --- §6: the card verifier ----------------------------------------------------------------------

def test_the_card_verifier_in_formats_md_handles_both_algorithms_wrong_roles_and_garbage(union):
    stores, ed_card, ed_made, p256_made, partner, _folder = union
    ns_trust, ns_card = trust_sample(), card_sample()
    now = datetime.now(timezone.utc)
    body = ns_trust["check_bundle"](build_trust(stores, 1, now), pem(root_public_key(stores)), now)
    keys = ns_card["card_keys"](body)
    assert {k["status"] for k in body["keys"] if k["key_id"] == ed_card.key_id} == {"verify_only"}
    verify_card = ns_card["verify_card"]

    assert verify_card(ed_made.qr_text, keys) == {"number": NUMBER, "name": "Иванова М. П.", "region": "23",
                                                  "issued_on": date(2026, 11, 22)}
    assert p256_made.signature[0] == 0x30  # DER: the P-256 key really signed this one
    assert verify_card(p256_made.qr_text.lower(), keys) == {
        "number": NUMBER, "name": "Салтыков-Щедрин А.-М. Е.", "region": "23", "issued_on": date(2027, 3, 1)}

    # A key of another role, listed in the same trust bundle, signing a well-formed credential
    # with the card_credential context: a valid signature, by a key not trusted for cards.
    payload = credential.payload_for(NUMBER, "Подделкин", "Пётр", None, "23", date(2026, 1, 1), partner.key_id)
    signature = stores.operational._sign_raw(stores.operational.get(partner.key_id),
                                             signing_input(KeyRole.CARD_CREDENTIAL, payload))
    load_public_key(partner.public_key).verify(signature, signing_input(KeyRole.CARD_CREDENTIAL, payload))
    wrong_role = credential.QR_PREFIX + base45.b45encode(payload + signature).decode()
    with pytest.raises(InvalidSignature):
        verify_card(wrong_role, keys)
    with pytest.raises(credential.CredentialError):  # and UnionCard's own verifier agrees
        credential.verify(wrong_role, trust.check(build_trust(stores, 1, now), root_public_key(stores), now))
    forged = credential.QR_PREFIX + base45.b45encode(ed_made.payload.replace("Иванова".encode(), "Петрова".encode())
                                                     + ed_made.signature).decode()
    with pytest.raises(InvalidSignature):
        verify_card(forged, keys)
    record = ed_made.record
    garbage = ["", "   ", "hello", "UC1:", "UC1:!!!", "UC1:AB", "HC1:6BFOXN%TS3DH", "9643012300000014",
               "UC1:" + base45.b45encode(record[:10]).decode(), "UC1:" + base45.b45encode(record[:23]).decode(),
               "UC1:" + base45.b45encode(b"\x01\x01" + b"\xff" * 8 + record[10:]).decode(),  # number ≥ 10¹⁶
               "UC1:" + base45.b45encode(record[:22] + b"\x05" + b"\xff\xfe\xfd\xfc\xfb" + record[28:]).decode(),
               "UC1:" + base45.b45encode(bytes([2]) + record[1:]).decode(), "ГС1ЖФИС"]
    for text in garbage:
        assert verify_card(text, keys) is None, text


# --- §3: retiring card keys ---------------------------------------------------------------------

def test_a_retired_card_key_stays_verify_only_and_its_cards_still_verify(make_uow, tmp_path):
    stores = union_keys(tmp_path)
    system = Actor.system("test")
    old_card = stores.operational.active_key(KeyRole.CARD_CREDENTIAL)
    old_cert = stores.operational.active_key(KeyRole.CARD_CERTIFICATE)
    old_event = stores.operational.active_key(KeyRole.EVENT_BUNDLE)
    made = credential.issue(stores.operational, NUMBER, "Иванова", "Мария", "Петровна", "23", date(2026, 11, 22))
    with make_uow() as uow:
        for role in (KeyRole.CARD_CREDENTIAL, KeyRole.CARD_CERTIFICATE, KeyRole.EVENT_BUNDLE):
            ceremony.rotate(uow, system, stores, role)
        for key in (old_card, old_cert, old_event):
            ceremony.retire(uow, system, stores, key.key_id)
        uow.commit()
    data = export_trust(make_uow, stores)
    bundle = trust.check(data, root_public_key(stores), clock.now())
    listed = {k.key_id: k.status for k in bundle.keys}
    assert listed[old_card.key_id] == listed[old_cert.key_id] == KeyStatus.VERIFY_ONLY
    assert old_event.key_id not in listed
    assert credential.verify(made.qr_text, bundle).number == NUMBER  # the printed card still passes
    assert stores.operational.get(old_card.key_id).status == KeyStatus.RETIRED  # and can never sign again
    assert "verify_only" in section("## 3. Rotation", "## 4. Per-card") and "card_credential" in section(
        "## 3. Rotation", "## 4. Per-card")


# --- §6: the name, the day, the region, the QR version ---------------------------------------------

def test_the_name_rules_stated_in_formats_md():
    rules = section("**The name.**", "**The day.**")
    assert "`А.-М.`" in rules and credential.short_name("Х", "Анна-Мария", None) == "Х А.-М."
    assert "`Салтыков-Щедрин А.-М. Е.`" in rules
    assert credential.short_name("Салтыков-Щедрин", "Анна-Мария", "Евграфовна") == "Салтыков-Щедрин А.-М. Е."
    cut = credential.short_name("Бла" * 40, "Ж" * 10, "Щ" * 10)
    assert f"`{cut}` ({len(cut.encode())} bytes)" in rules and len(cut.encode()) <= 64
    # NFC: a decomposed «й» gives the same bytes as the composed one, and a cut never strands a mark.
    decomposed = "Йошкар-Олинскии\u0306" * 4
    assert credential.short_name(decomposed, "Йосиф", None) == credential.short_name(
        "Йошкар-Олинский" * 4, "Йосиф", None)
    assert credential.short_name("и\u0306" * 40, "А", None).endswith("й… А.")
    stressed = credential.short_name("ы\u0301" * 30, "А", None)  # no precomposed form: base and mark stay together
    head = stressed.split("…")[0]
    assert head == "ы\u0301" * (len(head) // 2) and head and len(stressed.encode()) <= 64
    assert credential.short_name("Иванов", "Иван", "") == "Иванов И."


def test_the_issue_day_is_utc_and_the_region_is_the_numbers(make_uow, tree, tmp_path):
    from sqlalchemy import func, select

    from unioncard.issuer.domain import CardStatus
    from unioncard.issuer.models import CardEvent

    stores = union_keys(tmp_path)
    held = issued_cards(make_uow, tree, 2, stores.operational)
    for card in held:
        made = credential.parse(card.credential)
        with make_uow() as uow:
            approved = uow.session.scalar(select(func.min(CardEvent.at)).where(
                CardEvent.card_id == card.id, CardEvent.to_status == CardStatus.APPROVED.value))
        assert made.issued_on == approved.date()  # naive UTC in the database: the UTC day
        assert made.region_code == cardnumber.region_of(made.number)


def test_the_qr_versions_table_is_what_the_card_printer_makes(union):
    from unioncard.card_layouts.render import qr_matrix

    stores, *_, folder = union
    table = section("| credential | bytes | characters | QR version at M |", "So every UnionCard code")
    rows = re.findall(r"^\| (.+?) \| (\d+) \| (\d+) \| (\d+) \|$", table, re.M)
    assert len(rows) == 4
    ed = union_keys(folder / "ed25519").operational
    longest = "Римский-" + "Корсаков" * 8  # the hyphen makes the byte count odd: the cut lands on 64
    names = [("Ю", "Иван", None, ed), ("Иванова", "Мария", "Петровна", ed), (longest, "Ж", "Щ", ed),
             (longest, "Ж", "Щ", stores.operational)]
    for (label, size, characters, version), (surname, given, patronymic, signer) in zip(rows, names):
        while True:  # ECDSA signatures vary in length: the row is for the longest, 72 bytes
            made = credential.issue(signer, NUMBER, surname, given, patronymic, "23", date(2026, 1, 1))
            if signer is ed or len(made.signature) == 72:
                break
        assert (len(made.record), len(made.qr_text)) == (int(size), int(characters)), label
        modules = len(qr_matrix(made.qr_text))
        assert (modules - 17) // 4 == int(version), label


# --- §10: validity, and the codes in the documented order -----------------------------------------

def test_the_validity_formula_in_formats_md_is_the_servers(make_uow, tree, tmp_path):
    assert "max(issued_at + 36 h,  end of ends_on in UTC+2 + 24 h)" in section("### 10.5", "### 10.6")
    stores = union_keys(tmp_path)
    for days in (1, 30):  # a trust bundle that outlives the event, and one that does not
        export_trust(make_uow, stores, days=days)
        held = issued_cards(make_uow, tree, 1, stores.operational, prefix="Срокова" + ("Д" if days == 1 else "М"))
        event_id = make_event(make_uow, tree, stores, roster=[held[0].number], code=f"V{days}")
        opened = eb.check(publish(make_uow, event_id, stores), root_public_key(stores), clock.now())
        end_of_last_day = datetime.combine(opened.event.ends_on + timedelta(days=1), datetime.min.time(),
                                           tzinfo=timezone.utc) - timedelta(hours=2)
        expected = min(max(opened.issued_at + timedelta(hours=36), end_of_last_day + timedelta(hours=24)),
                       opened.trust.expires_at)
        assert opened.expires_at == expected, days


# --- §10: event bundle codes, in the documented order -----------------------------------------------

def documented_order() -> list[list[str]]:
    table = section("| step | check | code |", "(Inside steps 10–11")
    rows = re.findall(r"^\| (\d+) \| .+ \| (.+) \|$", table, re.M)
    return [re.findall(r"`([a-z_]+)`", codes) for _step, codes in rows]


def _section_offset(data: bytes, name: str) -> int:
    (length,) = struct.unpack_from(">I", data, len(eb.MAGIC))
    position = len(eb.MAGIC) + 4 + length
    for entry in json.loads(data[len(eb.MAGIC) + 4:position])["sections"]:
        if entry["name"] == name:
            return position
        position += entry["length"]
    raise KeyError(name)


_BOMB = None


def zlib_bomb() -> bytes:
    global _BOMB
    if _BOMB is None:
        inflater = zlib.compressobj(9)
        chunk = b" " * (1024 * 1024)
        parts = [inflater.compress(b"[")]
        parts += [inflater.compress(chunk) for _ in range(eb.MAX_ROSTER_BYTES // len(chunk) + 1)]
        _BOMB = b"".join(parts) + inflater.compress(b"]") + inflater.flush()
    return _BOMB


def test_each_refusal_has_its_documented_code_in_the_documented_order(make_uow, tree, tmp_path):
    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    held = issued_cards(make_uow, tree, 2, stores.operational)
    event_id = make_event(make_uow, tree, stores, roster=[held[0].number])
    data = publish(make_uow, event_id, stores)
    root = root_public_key(stores)
    now = clock.now()
    signer = stores.operational
    trust_bytes = data[_section_offset(data, "trust"):_section_offset(data, "roster")]
    envelope = json.loads(trust_bytes)
    bad_trust = json.dumps(dict(envelope, signature=dict(envelope["signature"], value="A" * 86))).encode()

    def flip(name):
        def apply(blob):
            blob = bytearray(blob)
            blob[_section_offset(bytes(blob), name) + 1] ^= 0x10
            return bytes(blob)
        return apply

    def flip_signature(blob):
        return blob[:-1] + bytes([blob[-1] ^ 0x01])

    # Each defect: (header changes, replaced sections, byte change, check() arguments), in doc order.
    defects = {
        "bundle_bad_magic": ({}, {}, lambda b: b"X" + b[1:], {}),
        "bundle_truncated": ({}, {}, lambda b: b[:10], {}),
        "bundle_bad_header": ({"version": None}, {}, None, {}),
        "bundle_trailing_data": ({}, {}, lambda b: b + b"\x00", {}),
        "bundle_section_mismatch": ({}, {}, flip("roster"), {}),
        "trust_bundle_bad_signature": ({}, {"trust": bad_trust}, None, {}),
        "trust_bundle_rollback": ({}, {}, None, {"trust_floor": (99, "")}),
        "bundle_bad_signature": ({}, {}, flip_signature, {}),
        "bundle_roster_too_large": ({}, {"roster": zlib_bomb()}, None, {}),
        "bundle_bad_content": ({}, {"revoked": b"\xff"}, None, {}),
        "bundle_other_event": ({}, {}, None, {"event_id": event_id + 1}),
        "bundle_expired": ({"expires_at": trust.timestamp(now + timedelta(seconds=30))}, {}, None,
                           {"now": now + timedelta(minutes=1)}),
        "bundle_from_future": ({"issued_at": trust.timestamp(now + timedelta(hours=1)),
                                "expires_at": trust.timestamp(now + timedelta(hours=5))}, {}, None, {}),
        "bundle_rollback": ({}, {}, None, {"current_version": 99}),
    }
    order = documented_order()
    flat = [code for codes in order for code in codes]
    assert [c for c in dict.fromkeys(flat) if c in defects] == list(defects), "the doc's order is not the code's"
    step_of = {code: step for step, codes in enumerate(order) for code in codes}
    # Every code the doc lists is a code the desk can really report.
    known = {cls.code for cls in vars(eb).values() if isinstance(cls, type) and issubclass(cls, eb.BundleError)}
    assert set(flat) - {"trust_bundle_malformed", "trust_bundle_wrong_root", "trust_bundle_expired",
                        "trust_bundle_from_future", "trust_bundle_version_conflict",
                        "trust_bundle_bad_signature", "trust_bundle_rollback"} <= known

    def make(*codes):
        header, sections, byte_changes, arguments = {}, {}, [], {"now": now}
        for code in codes:
            change, replaced, byte_change, kw = defects[code]
            header.update(change)
            sections.update(replaced)
            if byte_change:
                byte_changes.append(byte_change)
            arguments.update(kw)

        def change_header(h):
            for key, value in header.items():
                if value is None:
                    h.pop(key)
                else:
                    h[key] = value
        blob = resign(data, signer, change_header, **sections) if header or sections else data
        # Byte changes after re-signing, the later steps' first (a cut or a new magic last).
        for byte_change in reversed(byte_changes):
            blob = byte_change(blob)
        return blob, arguments

    def code_of(*codes):
        blob, arguments = make(*codes)
        with pytest.raises(eb.REFUSALS) as info:
            eb.check(blob, root, arguments.pop("now"), **arguments)
        return info.value.code

    for code in defects:
        assert code_of(code) == code
    exclusive = [{"bundle_roster_too_large", "bundle_bad_content"}, {"bundle_expired", "bundle_from_future"}]
    names = list(defects)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if {first, second} in exclusive or step_of[first] == step_of[second]:
                continue
            assert code_of(first, second) == first, (first, second)
