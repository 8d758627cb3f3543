"""The station's device inputs, each a thread feeding scans to the station core:

* ``serial:/dev/ttyUSB0[@9600]`` — a serial barcode/QR scanner (pyserial). A line ends with CR or
  LF; bytes left without an end for ``line_timeout`` are a cut-off scan; undecodable or control
  bytes are an unreadable scan. Neither is lost silently: each gets its own verdict.
* ``pcsc:Reader name`` or ``sim:name`` — a chip reader (hardware.smartcard): the card's credential
  and certificate are read, the card is challenged with a fresh random number, and the card must
  be taken away before the next one is read.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from unioncard.hardware import cardapp
from unioncard.hardware.errors import CardCommunicationError, CardRemoved, DeviceError, NoCard
from unioncard.issuer import credential
from unioncard.reader_station.domain import ChipRead, Scan, Source

log = logging.getLogger(__name__)
MAX_LINE = 2048


# --- chips --------------------------------------------------------------------------------------

def read_chip(session) -> Scan:
    """One chip read into a Scan (or a Scan with the problem that stopped it)."""
    try:
        if cardapp.select(session) != cardapp.State.LOCKED:
            return Scan(Source.CHIP, problem="not_a_union_chip")  # a blank or half-made card
        credential_record = cardapp.read_file(session, cardapp.FID_CREDENTIAL)
        certificate_record = cardapp.read_file(session, cardapp.FID_CERTIFICATE)
        challenge = os.urandom(cardapp.CHALLENGE_SIZE)
        response = cardapp.authenticate(session, challenge)
    except cardapp.NotOurCard:
        return Scan(Source.CHIP, problem="not_a_union_chip")
    except CardRemoved:
        return Scan(Source.CHIP, problem="card_removed")
    except CardCommunicationError:
        return Scan(Source.CHIP, problem="chip_error")
    return Scan(Source.CHIP, chip=ChipRead(credential_record, certificate_record, challenge, response))


class ChipInput(threading.Thread):
    def __init__(self, station, reader, poll: float = 0.5):
        super().__init__(daemon=True, name=f"chip {getattr(reader, 'name', reader)}")
        self.station = station
        self.reader = reader
        self.poll = poll
        self.stopping = threading.Event()
        self.reads = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                session = self.reader.wait_for_card(self.poll)
            except NoCard:
                continue
            except DeviceError as exc:
                log.warning("chip reader: %s", exc.render("en"))
                time.sleep(1.0)
                continue
            try:
                scan = read_chip(session)
            finally:
                session.close()
            self.station.scan(scan)
            self.reads += 1
            # The same card lying on the reader must not be read again and again.
            while not self.stopping.is_set() and not self.reader.wait_for_removal(self.poll):
                pass

    def stop(self) -> None:
        self.stopping.set()


# --- keyboard-wedge scanners and typing ----------------------------------------------------------

# A wedge scanner sends key positions, and the computer turns them into characters with whatever
# keyboard layout is on. With the Russian layout (ЙЦУКЕН, the standard one of Windows, macOS «Russian
# – PC» and X11 "ru") on, "UC1:…" arrives as "ГС1Ж…". This is that layout's character for each key of
# the US layout the scanner means: letters in both cases, and the punctuation keys that differ.
_US_KEYS = ("`qwertyuiop[]asdfghjkl;'zxcvbnm,./"
            '~QWERTYUIOP{}ASDFGHJKL:"ZXCVBNM<>?'
            '@#$^&|')
_RUSSIAN = ("ёйцукенгшщзхъфывапролджэячсмитьбю."
            "ЁЙЦУКЕНГШЩЗХЪФЫВАПРОЛДЖЭЯЧСМИТЬБЮ,"
            '"№;:?/')
RUSSIAN_TO_US = str.maketrans(_RUSSIAN, _US_KEYS)
US_TO_RUSSIAN = str.maketrans(_US_KEYS, _RUSSIAN)


def _readable(text: str) -> bool:
    """A code the desk can read: a credential that decodes, or a card number's characters."""
    text = text.strip()
    if credential.is_credential(text):
        try:
            credential.parse(text)
        except credential.CredentialError:
            return False
        return True
    return bool(text) and all(c.isdigit() or c in " -." for c in text)


def keyboard_text(text: str) -> str:
    """What a wedge scanner (or a person) meant, typed with the Russian layout on. Text that is
    readable as it is stays as it is; otherwise it is read back key by key, and used only if that
    makes it readable (so a foreign code is still shown as what it is)."""
    if _readable(text):
        return text
    mapped = text.translate(RUSSIAN_TO_US)
    return mapped if mapped != text and _readable(mapped) else text


def keyboard_scan(source: Source, text: str, problem: str | None = None) -> Scan:
    """The Scan for text typed into the desk page (by a wedge scanner or a person)."""
    return Scan(source, text=keyboard_text(text) if text else text, problem=problem)


# --- serial scanners ----------------------------------------------------------------------------

class LineAssembler:
    """Bytes from a scanner → scans. Pure, so its rules are tested without a port."""

    def __init__(self, line_timeout: float = 0.3):
        self.buffer = bytearray()
        self.line_timeout = line_timeout
        self.last_byte_at: float | None = None

    def feed(self, data: bytes, now: float) -> list[Scan]:
        scans = []
        for byte in data:
            if byte in (0x0D, 0x0A):
                if self.buffer:
                    scans.append(self._line(bytes(self.buffer)))
                    self.buffer.clear()
                continue
            self.buffer.append(byte)
            if len(self.buffer) > MAX_LINE:
                scans.append(Scan(Source.SERIAL, problem="unreadable"))
                self.buffer.clear()
        if data:
            self.last_byte_at = now
        return scans

    def tick(self, now: float) -> list[Scan]:
        """A scan that stopped without its line end: the scanner was moved away mid-read."""
        if self.buffer and self.last_byte_at is not None and now - self.last_byte_at >= self.line_timeout:
            self.buffer.clear()
            return [Scan(Source.SERIAL, problem="partial_scan")]
        return []

    @staticmethod
    def _line(raw: bytes) -> Scan:
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            return Scan(Source.SERIAL, problem="unreadable")
        if not text or not text.isprintable():
            return Scan(Source.SERIAL, problem="unreadable")
        return Scan(Source.SERIAL, text=text)


def parse_serial_config(config: str) -> tuple[str, int]:
    scheme, _, rest = config.partition(":")
    if scheme != "serial" or not rest:
        from unioncard.hardware.errors import DeviceConfigError

        raise DeviceConfigError(config=config)
    port, _, speed = rest.partition("@")
    return port, int(speed or 9600)


class SerialInput(threading.Thread):
    def __init__(self, station, config: str, line_timeout: float = 0.3):
        port, baudrate = parse_serial_config(config)
        super().__init__(daemon=True, name=f"serial {port}")
        import serial

        self.station = station
        self.port = serial.Serial(port, baudrate=baudrate, timeout=0.05)
        self.assembler = LineAssembler(line_timeout)
        self.stopping = threading.Event()

    def run(self) -> None:
        import serial

        try:
            while not self.stopping.is_set():
                try:
                    data = self.port.read(256)
                except serial.SerialException as exc:
                    log.warning("serial scanner: %s", exc)
                    time.sleep(1.0)
                    continue
                now = time.monotonic()
                for scan in self.assembler.feed(data, now) + self.assembler.tick(now):
                    self.station.scan(scan)
        finally:
            self.port.close()

    def stop(self) -> None:
        """The thread closes its port itself, after its last read (reads time out every 50 ms)."""
        self.stopping.set()
