"""The station's core, shared by its inputs (page, serial scanners, chip readers) and its sync:
the accepted bundle, the journal, and the feed of verdicts the page shows. No Flask, no devices.

Files in the station's home folder: ``journal.sqlite3`` (settings + journal) and ``bundle.ucb``
(the newest accepted bundle). The pinned root public key is a setting written at enrolment.
"""

from __future__ import annotations

import base64
import os
import threading
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path

from unioncard.files import write_private_atomically
from unioncard.hsm.trust import timestamp
from unioncard.i18n import N_, translate
from unioncard.reader_station import bundle as eb
from unioncard.reader_station.domain import REASONS, ROLE_LABELS, Scan, Source, Verdict, decide
from unioncard.reader_station.journal import Journal

DEFAULT_HOME = Path(os.environ.get("UNIONCARD_STATION_HOME", Path.home() / ".local" / "share" / "unioncard-station"))
# A station whose clock differs from the server's by more than this says so on screen.
CLOCK_WARNING = timedelta(minutes=5)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Station:
    def __init__(self, home: Path, clock=utcnow):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.home / "journal.sqlite3")
        self.clock = clock
        self.bundle: eb.EventBundle | None = None
        self.bundle_problem: str | None = None
        self.sync_state = {"state": "never", "message": "", "at": None}
        self._feed: deque = deque(maxlen=200)
        self._seq = 0
        self._changed = threading.Condition()
        self._load_stored_bundle()

    # --- identity and pinning
    @property
    def root_public_key(self) -> bytes | None:
        value = self.journal.get("root_public_key")
        return base64.b64decode(value) if value else None

    def pin(self, *, root_public_key: bytes, station_id: str, desk: str, event_id: int, server: str | None,
            token: str | None) -> None:
        current = self.root_public_key
        if current is not None and current != root_public_key:
            raise eb.BundleError(reason="this station is pinned to another root key; use a new station folder")
        self.journal.set(root_public_key=base64.b64encode(root_public_key).decode(), station_id=station_id,
                         desk=desk, event_id=event_id, server=server, token=token)

    @property
    def bundle_path(self) -> Path:
        return self.home / "bundle.ucb"

    def server_now(self) -> datetime:
        """The station clock corrected by the offset learnt from the server."""
        return self.clock() + timedelta(seconds=self.journal.clock_offset)

    # --- bundles
    def _load_stored_bundle(self) -> None:
        if not self.bundle_path.exists() or self.root_public_key is None:
            return
        try:
            self.bundle = eb.check(self.bundle_path.read_bytes(), self.root_public_key, self.server_now())
            self.bundle_problem = None
        except (eb.BundleError, eb.TrustBundleError) as exc:
            self.bundle = None
            self.bundle_problem = exc.render()

    def accept_bundle(self, data: bytes) -> eb.EventBundle:
        """Check a new bundle against the pinned root and the one we have; keep it if good."""
        if self.root_public_key is None:
            raise eb.BundleError(reason="the station is not enrolled: no root key is pinned")
        event_id = self.journal.get("event_id")
        current_version = int(self.journal.get("bundle_version", "0") or 0)
        accepted = eb.check(data, self.root_public_key, self.server_now(), current_version=current_version,
                            event_id=int(event_id) if event_id else None,
                            current_sha256=self.journal.get("bundle_sha256"))
        write_private_atomically(self.bundle_path, data)
        self.journal.set(bundle_version=accepted.version, bundle_sha256=accepted.sha256,
                         event_id=accepted.event.id)
        self.bundle = accepted
        self.bundle_problem = None
        self._announce()
        return accepted

    # --- scanning
    def scan(self, scan: Scan) -> dict:
        with self.journal.lock:
            verdict = decide(scan, self.bundle, self.server_now(), self.journal.previous)
            nonce = self.journal.record(verdict, scan.source.value, self.clock()) if verdict.records_check_in else None
            shown = self._shown(verdict, nonce, scan.source)
            self._publish(shown)
            return shown

    def undo(self, nonce: str) -> dict:
        undo_nonce = self.journal.undo(nonce, self.clock())
        self._announce()
        return {"undone": nonce, "nonce": undo_nonce}

    def _shown(self, verdict: Verdict, nonce: str | None, source: Source) -> dict:
        role = verdict.role
        return {"colour": verdict.colour.value, "code": verdict.code,
                "reason": translate(REASONS[verdict.code], **verdict.params),
                "name": verdict.name, "number": verdict.number, "role": role,
                "role_label": translate(ROLE_LABELS[role]) if role in ROLE_LABELS else None,
                "region": verdict.region_code, "nonce": nonce, "source": source.value,
                "at": timestamp(self.server_now())}

    def _publish(self, shown: dict) -> None:
        with self._changed:
            self._seq += 1
            shown["seq"] = self._seq
            self._feed.append(shown)
            self._changed.notify_all()

    def _announce(self) -> None:
        with self._changed:
            self._seq += 1
            self._feed.append({"seq": self._seq, "code": "status"})
            self._changed.notify_all()

    def wait_feed(self, after: int, timeout: float) -> list[dict]:
        with self._changed:
            self._changed.wait_for(lambda: self._seq > after, timeout)
            return [item for item in self._feed if item["seq"] > after]

    @property
    def seq(self) -> int:
        return self._seq

    # --- what the screen shows besides the verdict
    def status(self) -> dict:
        now = self.server_now()
        offset = timedelta(seconds=self.journal.clock_offset)
        bundle = self.bundle
        info = {"desk": self.journal.get("desk", ""), "enrolled": self.root_public_key is not None,
                "counts": self.journal.counts(), "sync": dict(self.sync_state), "seq": self._seq,
                "clock_warning": None, "bundle": None, "bundle_problem": self.bundle_problem}
        if abs(offset) > CLOCK_WARNING:
            minutes = round(offset.total_seconds() / 60)
            info["clock_warning"] = translate(N_("This computer's clock is off by %(minutes)s min; the station "
                                                 "corrects it, but set the clock right"), minutes=minutes)
        if bundle is not None:
            info["bundle"] = {"event": bundle.event.name, "version": bundle.version,
                              "expires_at": timestamp(bundle.expires_at), "roster": len(bundle.roster),
                              "revoked": len(bundle.revoked), "admission": bundle.event.admission,
                              "expired": bundle.is_expired(now)}
        return info

    def close(self) -> None:
        self.journal.close()

