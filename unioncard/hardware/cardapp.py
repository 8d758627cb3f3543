"""The UnionCard card application: what a chip holds and the commands that reach it
(ISO/IEC 7816-4 APDUs; docs/formats.md §9). Both sides use this module: the host functions below
(bureau, reader station) and the card emulator.

    AID        F0 55 4E 49 4F 4E 43 41 52 44 01   (proprietary "F0" + "UNIONCARD" + version 1)
    EF.CRED    FID 0101, ≤ 512 bytes: 2-byte length ‖ the signed credential record (§6)
    EF.CERT    FID 0102, ≤ 512 bytes: 2-byte length ‖ the chip certificate (§8)
    key        one P-256 key pair made on the card; the private half never leaves it

    SELECT application        00 A4 04 00 0B <AID> 00      → state ‖ version (2)
    SELECT file               00 A4 02 0C 02 <FID>
    READ BINARY               00 B0 <offset> <Le>
    UPDATE BINARY             00 D6 <offset> <Lc> <data>    (blank or personalising only)
    GENERATE KEY PAIR         00 47 80 00 00                → 65-byte public point (not once locked)
    READ PUBLIC KEY           00 47 81 00 00                → 65-byte public point
    LOCK                      80 E2 00 00 00                (needs key, EF.CRED and EF.CERT)
    INTERNAL AUTHENTICATE     00 88 00 00 <Lc> <challenge> 00 → ECDSA P-256 signature (DER), locked only
    GET UID (reader)          FF CA 00 00 00                → the card's UID

Life-cycle states: 01 blank, 02 personalising, 0F locked. Once locked no file or key can change.
"""

from __future__ import annotations

from enum import IntEnum

from unioncard.hardware.errors import CardCommunicationError
from unioncard.i18n import N_
from unioncard.errors import ValidationError

AID = bytes.fromhex("F0554E494F4E43415244") + b"\x01"
FID_CREDENTIAL = 0x0101
FID_CERTIFICATE = 0x0102
FILE_SIZE = 512
CHUNK = 128  # bytes per UPDATE/READ BINARY: fits every reader's short APDU
CHALLENGE_SIZE = 16

SW_OK = 0x9000
SW_FILE_NOT_FOUND = 0x6A82
SW_SECURITY = 0x6982
SW_CONDITIONS = 0x6985
SW_NO_EF = 0x6986
SW_WRONG_OFFSET = 0x6B00
SW_WRONG_LENGTH = 0x6700
SW_NO_DATA = 0x6A88
SW_INS = 0x6D00
SW_CLA = 0x6E00


class State(IntEnum):
    BLANK = 0x01
    PERSONALISING = 0x02
    LOCKED = 0x0F


class NotOurCard(ValidationError):
    code = "card_not_unioncard"
    message = N_("This is not a UnionCard chip card (another kind of card is on the reader)")


class CardNotBlank(ValidationError):
    code = "card_not_blank"
    message = N_("This card has already been personalised: put a blank card on the reader")


def _apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    apdu = bytes([cla, ins, p1, p2])
    if data:
        apdu += bytes([len(data)]) + data
    if le is not None:
        apdu += bytes([le & 0xFF])
    return apdu


def _call(session, apdu: bytes, what: str) -> bytes:
    data, sw = session.transmit(apdu)
    if sw != SW_OK:
        raise CardCommunicationError(detail=f"{what}: SW {sw:04X}", sw=f"{sw:04X}")
    return data


def select(session) -> State:
    data, sw = session.transmit(_apdu(0x00, 0xA4, 0x04, 0x00, AID, 0))
    if sw != SW_OK or len(data) < 1:
        raise NotOurCard()
    try:
        return State(data[0])
    except ValueError:
        raise NotOurCard() from None


def uid(session) -> bytes:
    return _call(session, _apdu(0xFF, 0xCA, 0x00, 0x00, le=0), "GET UID")


def generate_key(session) -> bytes:
    return _call(session, _apdu(0x00, 0x47, 0x80, 0x00, le=0), "GENERATE KEY PAIR")


def public_key(session) -> bytes:
    return _call(session, _apdu(0x00, 0x47, 0x81, 0x00, le=0), "READ PUBLIC KEY")


def _select_file(session, fid: int) -> None:
    _call(session, _apdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big")), f"SELECT {fid:04X}")


def write_file(session, fid: int, content: bytes) -> None:
    body = len(content).to_bytes(2, "big") + content
    if len(body) > FILE_SIZE:
        raise ValueError("too large for the card's file")
    _select_file(session, fid)
    for offset in range(0, len(body), CHUNK):
        _call(session, _apdu(0x00, 0xD6, offset >> 8, offset & 0xFF, body[offset:offset + CHUNK]), "UPDATE BINARY")


def read_file(session, fid: int) -> bytes:
    _select_file(session, fid)
    head = _call(session, _apdu(0x00, 0xB0, 0, 0, le=2), "READ BINARY")
    if len(head) != 2:
        raise CardCommunicationError(detail="READ BINARY: short answer")
    length = int.from_bytes(head, "big")
    if length > FILE_SIZE - 2:
        raise CardCommunicationError(detail="READ BINARY: bad length")
    content = b""
    while len(content) < length:
        offset = 2 + len(content)
        part = _call(session, _apdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=min(CHUNK, length - len(content))),
                     "READ BINARY")
        if not part:
            raise CardCommunicationError(detail="READ BINARY: empty answer")
        content += part
    return content


def lock(session) -> None:
    _call(session, _apdu(0x80, 0xE2, 0x00, 0x00, le=0), "LOCK")


def authenticate(session, challenge: bytes) -> bytes:
    return _call(session, _apdu(0x00, 0x88, 0x00, 0x00, challenge, 0), "INTERNAL AUTHENTICATE")
