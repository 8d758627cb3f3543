"""Smart-card readers: transport → driver → a small interface (``CardReader`` / ``CardSession``).

Chosen by a config string, the nfcpy way:

    pcsc:Virtual PCD 00 00   a PC/SC reader through pcscd (pyscard), by name or name prefix
    pcsc:                    the first PC/SC reader
    sim:                     emulated cards held in this process (demo, tests)

pyscard's exceptions are translated here into ``unioncard.hardware.errors``.
"""

from __future__ import annotations

import time
from typing import Protocol

from unioncard.hardware.errors import (CardCommunicationError, CardRemoved, DeviceConfigError, NoCard,
                                       NoReader)

# How long a failed exchange waits for pcscd to report the card gone before calling it a fault.
REMOVAL_NOTICE_SECONDS = 0.5

POLL_SECONDS = 0.05


class CardSession(Protocol):
    """One card on one reader, powered and connected."""

    apdu_count: int

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send a command APDU; return (response data, status word)."""

    def close(self) -> None:
        """Disconnect and power the card down (a feeder takes a finished card out then)."""


class CardReader(Protocol):
    name: str

    def wait_for_card(self, timeout: float) -> CardSession: ...

    def wait_for_removal(self, timeout: float) -> bool: ...


def open_reader(config: str) -> CardReader:
    scheme, _, rest = config.partition(":")
    if scheme == "pcsc":
        return PcscReader(rest.strip())
    if scheme == "sim":
        from unioncard.hardware.emulator import SimReader

        return SimReader.shared(rest.strip() or "default")
    raise DeviceConfigError(config=config)


class PcscReader:
    def __init__(self, name: str):
        from unioncard.hardware.errors import require_driver

        require_driver("smartcard", "PC/SC (pyscard)")
        self.wanted = name
        self.name = self._find()

    def _readers(self):
        from smartcard.Exceptions import ListReadersException
        from smartcard.System import readers

        try:
            return readers()
        except ListReadersException:
            return []
        except Exception as exc:  # pcscd not running: pyscard raises EstablishContextException and others
            raise NoReader(reader=self.wanted or "PC/SC", available=str(exc)) from None

    def _find(self) -> str:
        found = [str(r) for r in self._readers()]
        for name in found:
            if not self.wanted or name == self.wanted or name.startswith(self.wanted):
                return name
        raise NoReader(reader=self.wanted or "PC/SC", available=", ".join(found) or "—")

    def _reader(self):
        for reader in self._readers():
            if str(reader) == self.name:
                return reader
        raise NoReader(reader=self.name, available="—")

    def wait_for_card(self, timeout: float) -> "PcscSession":
        from smartcard.Exceptions import CardConnectionException, NoCardException

        deadline = time.monotonic() + timeout
        reader = self._reader()
        while True:
            connection = reader.createConnection()
            try:
                connection.connect()
                return PcscSession(connection)
            except (NoCardException, CardConnectionException):
                if time.monotonic() >= deadline:
                    raise NoCard(seconds=f"{timeout:g}") from None
                time.sleep(POLL_SECONDS)

    def wait_for_removal(self, timeout: float) -> bool:
        from smartcard.Exceptions import CardConnectionException, NoCardException

        deadline = time.monotonic() + timeout
        reader = self._reader()
        while time.monotonic() < deadline:
            connection = reader.createConnection()
            try:
                connection.connect()
                connection.disconnect()
            except (NoCardException, CardConnectionException):
                return True
            time.sleep(POLL_SECONDS)
        return False


class PcscSession:
    def __init__(self, connection):
        self.connection = connection
        self.apdu_count = 0

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        from smartcard.Exceptions import CardConnectionException

        self.apdu_count += 1
        try:
            data, sw1, sw2 = self.connection.transmit(list(apdu))
        except CardConnectionException as exc:
            # A failed exchange with a card that is gone is a removal; pcscd invalidates the
            # handle, so asking for its status tells the two apart. pcscd notices a removal a
            # moment after the exchange fails, so it is asked for a little while.
            import time

            deadline = time.monotonic() + REMOVAL_NOTICE_SECONDS
            while True:
                if not self._still_there():
                    raise CardRemoved() from None
                if time.monotonic() >= deadline:
                    raise CardCommunicationError(detail=str(exc)[:120]) from None
                time.sleep(0.05)
        return bytes(data), (sw1 << 8) | sw2

    def _still_there(self) -> bool:
        from smartcard import scard

        handle = getattr(getattr(self.connection, "component", self.connection), "hcard", None)
        if handle is None:
            return False
        result = scard.SCardStatus(handle)
        return result[0] == scard.SCARD_S_SUCCESS

    def close(self) -> None:
        try:
            self.connection.disconnect()
        except Exception:  # already gone: nothing to release
            pass
