"""Emulated cards: the card side of the UnionCard application (cardapp.py), a plain UID card, and
a feeder that presents cards one after another as a person (or a printer's encoder) would.

Used by the ``sim:`` reader of the embedded demo (in this process) and, over the vpcd protocol
(vpcd.py), as the card behind the real pcscd in tests. Faults can be asked for: a card pulled
after N commands, a write that the card stores wrongly (so read-back fails).
"""

from __future__ import annotations

import os
import threading
from collections import deque

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from unioncard.hardware import cardapp as app
from unioncard.hardware.errors import CardRemoved, NoCard
from unioncard.issuer.card_certificate import CHALLENGE_CONTEXT

ATR = bytes.fromhex("3B8A800150554E494F4E4341524401")  # T=1, historical bytes "PUNIONCARD"-ish


def _sw(sw: int, data: bytes = b"") -> bytes:
    return data + sw.to_bytes(2, "big")


class UidCard:
    """A plain contactless card: it answers only the reader's GET UID."""

    kind = "uid"

    def __init__(self, uid: bytes | None = None):
        self.uid = uid or os.urandom(7)
        self.atr = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")

    def process(self, apdu: bytes) -> bytes:
        if apdu[:2] == b"\xFF\xCA":
            return _sw(app.SW_OK, self.uid)
        if apdu[:2] == b"\x00\xA4":
            return _sw(app.SW_FILE_NOT_FOUND)
        return _sw(app.SW_INS)

    def power_off(self) -> None:
        pass


class UnionCardChip:
    """The card application as a card would run it (state kept in memory)."""

    kind = "unioncard"

    def __init__(self, uid: bytes | None = None):
        self.uid = uid or os.urandom(7)
        self.atr = ATR
        self.state = app.State.BLANK
        self.files = {app.FID_CREDENTIAL: bytearray(app.FILE_SIZE), app.FID_CERTIFICATE: bytearray(app.FILE_SIZE)}
        self.written = set()
        self.key: ec.EllipticCurvePrivateKey | None = None
        self.selected_app = False
        self.current_file: int | None = None
        self.corrupt_writes = False  # fault: store a flipped byte (read-back must catch it)

    # -- what a host reads back in tests
    def file_content(self, fid: int) -> bytes:
        raw = bytes(self.files[fid])
        return raw[2:2 + int.from_bytes(raw[:2], "big")]

    def _point(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint)

    def power_off(self) -> None:
        self.selected_app = False
        self.current_file = None

    def process(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return _sw(app.SW_WRONG_LENGTH)
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        data = body[1:1 + body[0]] if len(body) > 1 else b""
        if cla == 0xFF and ins == 0xCA:
            return _sw(app.SW_OK, self.uid)
        if cla not in (0x00, 0x80):
            return _sw(app.SW_CLA)
        if ins == 0xA4 and p1 == 0x04:
            if data != app.AID:
                self.selected_app = False
                return _sw(app.SW_FILE_NOT_FOUND)
            self.selected_app = True
            return _sw(app.SW_OK, bytes([self.state, 1, 0]))
        if not self.selected_app:
            return _sw(app.SW_CONDITIONS)
        if ins == 0xA4 and p1 == 0x02:
            fid = int.from_bytes(data, "big") if len(data) == 2 else -1
            if fid not in self.files:
                return _sw(app.SW_FILE_NOT_FOUND)
            self.current_file = fid
            return _sw(app.SW_OK)
        if ins == 0xB0:
            if self.current_file is None:
                return _sw(app.SW_NO_EF)
            offset = (p1 << 8) | p2
            le = body[0] if len(body) == 1 else 0
            le = le or 256
            if offset >= app.FILE_SIZE:
                return _sw(app.SW_WRONG_OFFSET)
            return _sw(app.SW_OK, bytes(self.files[self.current_file][offset:offset + le]))
        if ins == 0xD6:
            if self.state == app.State.LOCKED:
                return _sw(app.SW_SECURITY)
            if self.current_file is None:
                return _sw(app.SW_NO_EF)
            offset = (p1 << 8) | p2
            if not data or offset + len(data) > app.FILE_SIZE:
                return _sw(app.SW_WRONG_OFFSET)
            stored = bytearray(data)
            if self.corrupt_writes and offset > 0:
                stored[-1] ^= 0x01
            self.files[self.current_file][offset:offset + len(data)] = stored
            self.written.add(self.current_file)
            self.state = app.State.PERSONALISING
            return _sw(app.SW_OK)
        if ins == 0x47 and p1 == 0x80:
            if self.state == app.State.LOCKED:
                return _sw(app.SW_SECURITY)
            self.key = ec.generate_private_key(ec.SECP256R1())
            self.state = app.State.PERSONALISING
            return _sw(app.SW_OK, self._point())
        if ins == 0x47 and p1 == 0x81:
            return _sw(app.SW_OK, self._point()) if self.key else _sw(app.SW_NO_DATA)
        if ins == 0xE2 and cla == 0x80:
            if self.state == app.State.LOCKED:
                return _sw(app.SW_OK)
            if self.key is None or self.written != set(self.files):
                return _sw(app.SW_CONDITIONS)
            self.state = app.State.LOCKED
            return _sw(app.SW_OK)
        if ins == 0x88:
            if self.state != app.State.LOCKED or not data:
                return _sw(app.SW_CONDITIONS)
            credential = self.file_content(app.FID_CREDENTIAL)
            number = credential[2:10] if len(credential) >= 10 else bytes(8)
            return _sw(app.SW_OK, self.key.sign(CHALLENGE_CONTEXT + number + data, ec.ECDSA(hashes.SHA256())))
        return _sw(app.SW_INS)


class Pulled(Exception):
    """The emulated card left the reader (the host sees a removed card)."""


class CardFeeder:
    """Cards presented one at a time. ``auto_blank`` puts a new blank UnionCard chip on the reader
    whenever the previous one has been taken away, as a card printer's hopper does; a finished
    card (locked, or a wrong card) is taken away when the host powers it down."""

    def __init__(self, auto_blank: bool = True):
        self.auto_blank = auto_blank
        self.waiting: deque = deque()
        self.current = None
        self.done: list = []     # cards taken off after the host finished with them
        self.pulled: list = []   # cards taken off mid-operation
        self.pull_after: int | None = None
        self.commands = 0
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        with self.lock:
            self._next()

    def _next(self) -> None:
        self.commands = 0
        if self.waiting:
            self.current = self.waiting.popleft()
        elif self.auto_blank:
            self.current = UnionCardChip()
        else:
            self.current = None
        self.changed.notify_all()

    def put(self, card) -> None:
        """Put this card on the reader next (replacing an untouched blank one)."""
        with self.lock:
            if self.current is None or (getattr(self.current, "state", None) == app.State.BLANK
                                        and self.commands == 0):
                self.waiting.appendleft(card)
                self._next()
            else:
                self.waiting.append(card)

    def take_off(self) -> None:
        with self.lock:
            if self.current is not None:
                self.done.append(self.current)
            self._next()

    def transmit(self, apdu: bytes) -> bytes:
        with self.lock:
            if self.current is None:
                raise Pulled()
            self.commands += 1
            if self.pull_after is not None and self.commands > self.pull_after:
                self.pull_after = None
                self.pulled.append(self.current)
                self._next()
                raise Pulled()
            return self.current.process(apdu)

    def power_off(self) -> None:
        """The host let go of the card: a finished one leaves the reader."""
        with self.lock:
            card = self.current
            if card is None:
                return
            card.power_off()
            finished = getattr(card, "state", None) == app.State.LOCKED or card.kind != "unioncard"
            if finished and self.commands > 0:
                self.done.append(card)
                self._next()


class SimReader:
    """The ``sim:`` reader: a feeder in this process. Readers of one name share their feeder."""

    _shared: dict[str, "SimReader"] = {}

    def __init__(self, name: str = "default", feeder: CardFeeder | None = None):
        self.name = f"sim:{name}"
        self.feeder = feeder or CardFeeder()

    @classmethod
    def shared(cls, name: str) -> "SimReader":
        if name not in cls._shared:
            cls._shared[name] = cls(name)
        return cls._shared[name]

    def wait_for_card(self, timeout: float) -> "SimSession":
        with self.feeder.changed:
            if not self.feeder.changed.wait_for(lambda: self.feeder.current is not None, timeout):
                raise NoCard(seconds=f"{timeout:g}")
            return SimSession(self.feeder, self.feeder.current)

    def wait_for_removal(self, timeout: float) -> bool:
        return True


class SimSession:
    def __init__(self, feeder: CardFeeder, card):
        self.feeder = feeder
        self.card = card
        self.apdu_count = 0

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        self.apdu_count += 1
        if self.feeder.current is not self.card:
            raise CardRemoved()
        try:
            response = self.feeder.transmit(apdu)
        except Pulled:
            raise CardRemoved() from None
        return response[:-2], int.from_bytes(response[-2:], "big")

    def close(self) -> None:
        if self.feeder.current is self.card:
            self.feeder.power_off()
