"""Talking to the server when it can be reached: enrolment (hello), pushing the journal, learning
other desks' check-ins, pulling a newer bundle, and measuring the clock offset. Standard library
HTTP only; every failure becomes a sync state on screen, never a lost entry (entries are marked
synced only after the server has answered for them)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.error
import urllib.request
from datetime import datetime, timezone

from unioncard.errors import UnionCardError
from unioncard.hsm.trust import parse_timestamp
from unioncard.i18n import N_, translate
from unioncard.reader_station import bundle as eb
from unioncard.reader_station.station import StationError

log = logging.getLogger(__name__)
TIMEOUT = 10


class SyncError(UnionCardError):
    code = "sync_failed"
    message = N_("No connection to the server (%(reason)s)")


class SyncRefused(UnionCardError):
    code = "station_token_invalid"
    message = N_("The server refused this desk: its token is not valid or has been revoked")


class Client:
    def __init__(self, server: str, token: str, clock=None):
        self.server = server.rstrip("/")
        self.token = token
        # The station's clock (the one its entries are stamped with) is what the offset corrects.
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict, bytes, float]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.server}/station-api/v1{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        sent = self.clock().timestamp()
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                content = response.read()
                return response.status, dict(response.headers), content, (sent + self.clock().timestamp()) / 2
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise SyncRefused() from None
            raise SyncError(reason=f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise SyncError(reason=str(getattr(exc, "reason", exc))[:100]) from None

    @staticmethod
    def _offset(server_time: str | None, midpoint: float) -> float | None:
        if not server_time:
            return None
        return parse_timestamp(server_time).timestamp() - midpoint

    def hello(self) -> dict:
        _status, _headers, content, midpoint = self._request("GET", "/hello")
        answer = json.loads(content)
        answer["clock_offset"] = self._offset(answer.get("server_time"), midpoint)
        return answer

    def bundle(self, have: int) -> tuple[bytes | None, float | None]:
        status, headers, content, midpoint = self._request("GET", f"/bundle?have={have}")
        offset = self._offset(headers.get("X-Server-Time"), midpoint)
        return (content if status == 200 else None), offset

    def push(self, entries: list[dict], after: int, clock_offset: float) -> tuple[dict, float | None]:
        _status, _headers, content, midpoint = self._request(
            "POST", "/journal", {"entries": entries, "after": after, "clock_offset": clock_offset})
        answer = json.loads(content)
        return answer, self._offset(answer.get("server_time"), midpoint)


def enrol(station, server: str, token: str, root_public_key: bytes | None = None) -> dict:
    """Enrol a station: ask the server who we are, pin the root key (the one given, which must
    match the server's, or the server's), then fetch the first bundle."""
    client = Client(server, token, station.clock)
    answer = client.hello()
    offered = base64.b64decode(answer["root_public_key"]) if answer.get("root_public_key") else None
    if root_public_key is not None and offered is not None and offered != root_public_key:
        raise eb.BundleError(reason="the server's root key differs from the one given: do not use this server")
    pinned = root_public_key or offered
    if pinned is None:
        raise eb.BundleError(reason="the server has no trust bundle yet: export it first")
    station.pin(root_public_key=pinned, station_id=str(answer["station_id"]), desk=answer["desk"],
                event_id=answer["event_id"], server=server, token=token)
    if answer.get("clock_offset") is not None:
        station.journal.set(clock_offset=round(answer["clock_offset"], 1))
    sync_once(station)
    return answer


def sync_once(station, batch: int = 1000) -> dict:
    """Push every unsynced entry, merge what other desks did, pull a newer bundle."""
    journal = station.journal
    server, token = journal.get("server"), journal.get("token")
    if not server or not token:
        raise SyncError(reason=translate(N_("the desk works from a bundle file only")))
    client = Client(server, token, station.clock)
    pushed = duplicates = 0
    after = int(journal.get("remote_after", "0") or 0)
    while True:
        entries = journal.unsynced(batch)
        answer, offset = client.push(entries, after, journal.clock_offset)
        journal.merge_remote(answer["others"])
        undone = set(answer.get("undone", []))
        if undone:
            journal.mark_remote_undone(undone)
        after = answer["after"]
        journal.set(remote_after=after)
        journal.mark_synced([e["nonce"] for e in entries])
        pushed += len(entries)
        duplicates += answer.get("duplicates", 0)
        if offset is not None:
            journal.set(clock_offset=round(offset, 1))
        if len(entries) < batch and not answer.get("more"):
            break
    data, offset = client.bundle(int(journal.get("bundle_version", "0") or 0))
    new_version = None
    if data is not None:
        new_version = station.accept_bundle(data).version
    return {"pushed": pushed, "duplicates": duplicates, "bundle": new_version}


class Syncer(threading.Thread):
    """Syncs every ``interval`` seconds and whenever asked; its state is always on screen."""

    def __init__(self, station, interval: float = 15.0):
        super().__init__(daemon=True, name="sync")
        self.station = station
        self.interval = interval
        self.wake = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.sync()
            self.wake.wait(self.interval)
            self.wake.clear()

    def sync(self) -> None:
        at = datetime.now(timezone.utc).strftime("%H:%M:%S")
        try:
            result = sync_once(self.station)
            self.station.sync_state = {"state": "ok", "at": at, "message": translate(
                N_("Synchronised at %(at)s: sent %(sent)s"), at=at, sent=result["pushed"])}
        except SyncRefused as exc:
            self.station.sync_state = {"state": "refused", "at": at, "message": exc.render()}
        except (*eb.REFUSALS, StationError) as exc:
            self.station.sync_state = {"state": "bundle_refused", "at": at, "message": exc.render()}
        except SyncError as exc:
            self.station.sync_state = {"state": "offline", "at": at, "message": exc.render()}
        except Exception as exc:  # the desk keeps working offline whatever the server does
            log.exception("sync failed")
            self.station.sync_state = {"state": "offline", "at": at, "message": str(exc)[:200]}
        self.station._announce()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
