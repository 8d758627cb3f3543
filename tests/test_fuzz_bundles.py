"""The parsers of what a desk is handed (event bundles, trust bundles) under Hypothesis: bit flips,
cuts, appended bytes, changed header and payload fields, and re-signed content no honest builder
makes (a zlib bomb among it). Whatever the input: either a bundle, or the module's coded refusal
with one of the codes formats.md §10.6 documents; never another exception, never unbounded time
or memory."""

from __future__ import annotations

import base64
import json
import re
import struct
import tracemalloc
import zlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.station_support import resign
from tests.support import union_keys
from unioncard.hsm import trust
from unioncard.hsm.domain import KeyRole, b64url
from unioncard.issuer import cardnumber
from unioncard.reader_station import bundle as eb

NOW = datetime.now(timezone.utc).replace(microsecond=0)
DOC = (Path(__file__).parent.parent / "docs" / "formats.md").read_text(encoding="utf-8")
TABLE = DOC[DOC.index("| step | check | code |"):DOC.index("(Inside steps 10–11")]
DOCUMENTED = set(re.findall(r"`((?:bundle|trust_bundle)_[a-z_]+)`", TABLE))
FUZZ = settings(max_examples=200, deadline=timedelta(milliseconds=800), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Union:
    def __init__(self, folder: Path):
        stores = union_keys(folder)
        self.signer = stores.operational
        self.root_key = stores.root
        self.root = stores.root.active_key(KeyRole.ROOT).public_key
        self.trust = trust.build(stores.root, stores.operational.list(), version=3, issued_at=NOW - timedelta(hours=1),
                                 expires_at=NOW + timedelta(days=30))
        numbers = [cardnumber.build("964301", f"{region:02d}", serial) for region in (23, 77) for serial in range(1, 40)]
        roster = [eb.RosterEntry(n, f"Участникова Мария {i}", ("delegate", "guest", "staff")[i % 3], n[6:8])
                  for i, n in enumerate(numbers[:30])]
        event = eb.EventInfo(7, "S7", "XI съезд", date(2026, 5, 1), date(2026, 5, 2), "Москва", "roster")
        self.event = eb.build(self.signer, event, version=4, issued_at=NOW - timedelta(minutes=5),
                              expires_at=NOW + timedelta(hours=30), trust_bundle=self.trust, roster=roster,
                              revoked_numbers=numbers[30:], revocation_feed_version=12)


@pytest.fixture(scope="module")
def union(tmp_path_factory):
    made = Union(tmp_path_factory.mktemp("fuzz"))
    assert eb.check(made.event, made.root, NOW).version == 4  # the seed itself is good
    return made


def open_event(data: bytes, union, **kw):
    """The property: a bundle, or a documented coded refusal; anything else fails the test."""
    try:
        return eb.check(data, union.root, NOW, **kw)
    except eb.REFUSALS as exc:
        assert exc.code and exc.code in DOCUMENTED, exc.code
        assert exc.render() and exc.render("en")
        return exc.code


def open_trust(data: bytes, union):
    try:
        return trust.check(data, union.root, NOW)
    except trust.TrustBundleError as exc:
        assert exc.code and exc.code.startswith("trust_bundle_") and exc.code in DOCUMENTED, exc.code
        return exc.code


# --- bytes: flips, cuts, appended data --------------------------------------------------------------

def anchors_of(event: bytes) -> list[int]:
    """Where the parts of an event bundle begin: mutations aimed near them reach every step."""
    (length,) = struct.unpack_from(">I", event, len(eb.MAGIC))
    points = [0, len(eb.MAGIC), len(eb.MAGIC) + 4]
    position = len(eb.MAGIC) + 4 + length
    for entry in json.loads(event[len(eb.MAGIC) + 4:position])["sections"]:
        points.append(position)
        position += entry["length"]
    return points + [position, len(event) - 1]


def mutate(draw, data: bytes, anchors=()) -> bytes:
    data = bytearray(data)

    def somewhere(end: int) -> int:
        if anchors and draw(st.booleans()):
            return min(end, draw(st.sampled_from(anchors)) + draw(st.integers(0, 40)))
        return draw(st.integers(0, end))

    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "append", "insert", "delete", "byte"]))
        if kind == "flip" and data:
            data[somewhere(len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and data:
            data[somewhere(len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == "cut":
            data = data[:somewhere(len(data))]
        elif kind == "append":
            data += draw(st.binary(min_size=1, max_size=64))
        elif kind == "insert":
            position = somewhere(len(data))
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete" and data:
            start = somewhere(len(data) - 1)
            del data[start:start + draw(st.integers(1, 16))]
    return bytes(data)


def test_event_bundle_bytes_damaged_anywhere(union):
    @FUZZ
    @given(st.data())
    def run(data):
        damaged = mutate(data.draw, union.event, anchors_of(union.event))
        result = open_event(damaged, union)
        if isinstance(result, eb.EventBundle):  # every signed byte counts: only the file itself passes
            assert damaged == union.event

    run()


def test_trust_bundle_bytes_damaged_anywhere(union):
    @FUZZ
    @given(st.data())
    def run(data):
        result = open_trust(mutate(data.draw, union.trust), union)
        if isinstance(result, trust.TrustBundle):  # the envelope's whitespace may change, the payload not
            assert result.payload_sha256 == trust.check(union.trust, union.root, NOW).payload_sha256

    run()


# --- header fields, signed or not -----------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                    | st.text(max_size=20), lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)
HEADER_PATHS = [("format",), ("event",), ("event", "id"), ("event", "name"), ("event", "starts_on"),
                ("event", "ends_on"), ("event", "admission"), ("version",), ("issued_at",), ("expires_at",),
                ("key_id",), ("roster",), ("roster", "count"), ("roster", "encoding"), ("revoked",),
                ("revoked", "k"), ("revoked", "count"), ("revoked", "scheme"), ("revoked", "feed_version"),
                ("sections",), ("unknown",)]


def change_at(document: dict, path: tuple, value, delete: bool) -> None:
    target = document
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    if delete:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value


def test_event_bundle_header_fields_changed(union):
    @FUZZ
    @given(st.lists(st.tuples(st.sampled_from(HEADER_PATHS), JSON, st.booleans()), min_size=1, max_size=3),
           st.booleans())
    def run(changes, signed):
        def change(header):
            for path, value, delete in changes:
                change_at(header, path, value, delete)
        if signed:  # the union's own key signed it: what the content checks make of odd values
            data = resign(union.event, union.signer, change)
        else:  # the header edited in place, length fixed: the signature must catch it
            data = resign(union.event, union.signer, change)
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        result = open_event(data, union, event_id=7)
        if not signed:
            assert isinstance(result, str)

    run()


# --- signed content: the roster (zlib) and the revoked set ---------------------------------------

ROSTER_ROWS = st.lists(st.one_of(JSON, st.lists(st.text(max_size=20), min_size=4, max_size=4)), max_size=6)


def test_signed_roster_and_revoked_sections_of_any_content(union):
    @FUZZ
    @given(st.one_of(st.binary(max_size=300),
                     ROSTER_ROWS.map(lambda rows: zlib.compress(json.dumps(rows).encode())),
                     st.binary(max_size=300).map(zlib.compress),
                     st.binary(max_size=40).map(lambda b: zlib.compress(b"[" + b) + b)),
           st.binary(max_size=64), st.integers(0, 60), st.integers(0, 10**6), st.integers(0, 50))
    def run(roster, revoked, k, count, roster_count):
        def change(header):
            header["revoked"]["k"] = k
            header["revoked"]["count"] = count
            header["roster"]["count"] = roster_count
        result = open_event(resign(union.event, union.signer, change, roster=roster, revoked=revoked), union)
        assert isinstance(result, (str, eb.EventBundle))

    run()


def test_a_signed_zlib_bomb_is_refused_with_bounded_memory(union):
    inflater = zlib.compressobj(9)
    bomb = inflater.compress(b"[") + b"".join(inflater.compress(b" " * (1 << 20)) for _ in range(200))
    bomb += inflater.compress(b"]") + inflater.flush()
    assert len(bomb) < 300_000  # 200 MiB inflated, under 300 KB on the wire
    data = resign(union.event, union.signer, roster=bomb)
    tracemalloc.start()
    try:
        with pytest.raises(eb.BundleTooLarge) as info:
            eb.check(data, union.root, NOW)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "bundle_roster_too_large" and info.value.code in DOCUMENTED
    assert peak < eb.MAX_ROSTER_BYTES + 8 * 1024 * 1024, peak  # the ceiling, not the bomb's 200 MiB


# --- the trust bundle's payload, re-signed by the root ----------------------------------------------

TRUST_PATHS = [("format",), ("version",), ("issued_at",), ("expires_at",), ("root_key_id",), ("keys",),
               ("keys", 0), ("keys", 0, "key_id"), ("keys", 0, "role"), ("keys", 0, "algorithm"),
               ("keys", 0, "public_key"), ("keys", 0, "status"), ("unknown",)]


def set_path(node, path: tuple, value) -> None:
    """Put ``value`` at ``path`` if the path exists down to its last step."""
    for key in path[:-1]:
        if isinstance(node, dict) and key in node or isinstance(node, list) and isinstance(key, int) \
                and key < len(node):
            node = node[key]
        else:
            return
    last = path[-1]
    if isinstance(node, dict) or isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value


def test_trust_bundle_payload_fields_changed_and_signed_by_the_root(union):
    envelope = json.loads(union.trust)
    payload = json.loads(base64.urlsafe_b64decode(envelope["payload"] + "=="))

    @FUZZ
    @given(st.lists(st.tuples(st.sampled_from(TRUST_PATHS), JSON), min_size=1, max_size=3), JSON, st.booleans())
    def run(changes, envelope_value, change_envelope):
        body = json.loads(json.dumps(payload))
        for path, value in changes:
            set_path(body, path, value)
        raw = json.dumps(body).encode()
        signature = union.root_key.sign(KeyRole.ROOT, raw)
        outer = dict(envelope, payload=b64url(raw), signature=dict(envelope["signature"], value=b64url(signature.value)))
        if change_envelope:
            outer[str(envelope_value)[:8] or "format"] = envelope_value
        result = open_trust(json.dumps(outer).encode(), union)
        assert isinstance(result, (str, trust.TrustBundle))

    run()
