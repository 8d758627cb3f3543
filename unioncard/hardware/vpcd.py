"""Serve emulated cards to the real pcscd through the vpcd virtual reader (package
vsmartcard-vpcd). Protocol: every message is a 2-byte big-endian length and a payload; a 1-byte
payload is a control message (0 power off, 1 power on, 2 reset, 4 ATR), anything longer an APDU.
Connecting looks like inserting a card, closing the socket like taking it away.
"""

from __future__ import annotations

import socket
import threading
import time

from unioncard.hardware.emulator import CardFeeder, Pulled

POWER_OFF, POWER_ON, RESET, GET_ATR = 0, 1, 2, 4
REMOVAL_SECONDS = 1.0


class VpcdCardServer:
    """A thread that keeps the feeder's current card in the virtual reader at host:port."""

    def __init__(self, feeder: CardFeeder, host: str = "127.0.0.1", port: int = 35963):
        self.feeder = feeder
        self.address = (host, port)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="vpcd-card", daemon=True)
        self.connected = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> "VpcdCardServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)

    def _connect(self) -> socket.socket | None:
        while not self.stopping.is_set():
            try:
                sock = socket.create_connection(self.address, timeout=1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(0.2)
                return sock
            except OSError:
                time.sleep(0.1)
        return None

    def _recv(self, sock: socket.socket, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            if self.stopping.is_set():
                return None
            try:
                if hasattr(socket, "TCP_QUICKACK"):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                part = sock.recv(size - len(data))
            except socket.timeout:
                continue
            if not part:
                return None
            data += part
        return data

    def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                with self.feeder.changed:
                    self.feeder.changed.wait_for(lambda: self.feeder.current is not None or self.stopping.is_set(),
                                                 0.2)
                    card = self.feeder.current
                if card is None:
                    continue
                sock = self._connect()
                if sock is None:
                    return
                self.connected.set()
                try:
                    self._serve(sock, card)
                finally:
                    self.connected.clear()
                    sock.close()
        except BaseException as exc:  # surfaced to the test that owns the server
            self.error = exc

    def _serve(self, sock: socket.socket, card) -> None:
        # A finished card is swapped for the next one at power-off, keeping the connection: as in a
        # printer's encoder, the reader sees a new card at the next power-on. A card pulled
        # mid-operation closes the connection (pcscd sees a removal); pcscd polls for presence,
        # so the next card waits a moment, or pcscd would never notice it was gone.
        while not self.stopping.is_set():
            if self.feeder.current is None:
                return
            head = self._recv(sock, 2)
            if head is None:
                return
            payload = self._recv(sock, int.from_bytes(head, "big"))
            if payload is None:
                return
            if len(payload) == 1:
                if payload[0] == GET_ATR:
                    card = self.feeder.current or card
                    self._send(sock, card.atr)
                elif payload[0] == POWER_OFF:
                    self.feeder.power_off()
                    card = self.feeder.current or card
                continue
            try:
                response = self.feeder.transmit(payload)
            except Pulled:
                self.stopping.wait(REMOVAL_SECONDS)
                return
            self._send(sock, response)

    @staticmethod
    def _send(sock: socket.socket, payload: bytes) -> None:
        sock.sendall(len(payload).to_bytes(2, "big") + payload)
