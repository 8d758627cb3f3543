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

from unioncard.errors import ValidationError
from unioncard.files import write_private_atomically
from unioncard.hsm.trust import timestamp
from unioncard.hsm.trust import utc as trust_utc
from unioncard.i18n import N_, translate
from unioncard.reader_station import bundle as eb
from unioncard.reader_station.domain import (DIRECTIONS, REASONS, ROLE_LABELS, Colour, Scan, Source, Verdict, decide,
                                              decide_by_document, decide_session, find_by_name, mask_number)
from unioncard.reader_station.journal import Journal, no_such_check_in
from unioncard.reader_station.printing import ReprintNeedsReason, kinds_for

class StationError(ValidationError):
    code = "station_error"
    message = N_("The station cannot do this")


class StationNotEnrolled(StationError):
    code = "station_not_enrolled"
    message = N_("The station is not enrolled: give the union's root public key (--root-key root.pem) or enrol it")


class StationOtherRoot(StationError):
    code = "station_other_root"
    message = N_("This station trusts another root key: use a new station folder (--home)")


class StationOtherEvent(StationError):
    code = "station_other_event"
    message = N_("This desk works for the event «%(station_event)s»: to move it to another event, run "
                 "«unioncard station switch-event» or use a new station folder (--home)")


class OperatorRequired(StationError):
    code = "operator_required"
    message = N_("Enter the name of the person working at this desk first: a check-in by document names them")


class NoSuchSession(StationError):
    code = "no_such_session"
    message = N_("No such session in this event's data")


class StationBusy(StationError):
    code = "station_busy"
    message = N_("The desk's journal is in use: stop «unioncard station run» and try again")


DEFAULT_HOME = Path(os.environ.get("UNIONCARD_STATION_HOME", Path.home() / ".local" / "share" / "unioncard-station"))
MAX_OPERATOR = 100
# A station whose clock differs from the server's by more than this says so on screen.
CLOCK_WARNING = timedelta(minutes=5)
# Event data expire (formats.md §10): a day's notice leaves time to sync or fetch a new file.
EXPIRY_WARNING = timedelta(hours=24)


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

    @property
    def event_id(self) -> int | None:
        """The event this desk is bound to (None: a fresh desk, bound by its first verified bundle)."""
        value = self.journal.get("event_id")
        return int(value) if value not in (None, "") else None

    def _check_root(self, root_public_key: bytes | None) -> bytes:
        """The root key to verify with: the pinned one; one given must be the same."""
        pinned = self.root_public_key
        if pinned is not None and root_public_key is not None and pinned != root_public_key:
            raise StationOtherRoot()
        if pinned is None and root_public_key is None:
            raise StationNotEnrolled()
        return pinned or root_public_key

    def pin(self, *, root_public_key: bytes, station_id: str, desk: str, event_id: int, server: str | None,
            token: str | None) -> None:
        """Enrolment with the server (sync.enrol): the server's answer names the event, over the
        desk's own token. A desk bound to another event stays bound (switch_event moves it)."""
        self._check_root(root_public_key)
        if not isinstance(event_id, int) or isinstance(event_id, bool) or event_id < 1:
            raise eb.BundleError(reason="event id")
        bound = self.event_id
        if bound is not None and bound != event_id:
            raise StationOtherEvent(station_event=self._event_label())
        self.journal.set(root_public_key=base64.b64encode(root_public_key).decode(), station_id=station_id,
                         desk=desk, event_id=event_id, server=server, token=token)

    def _event_label(self) -> str:
        return self.journal.get("event_name") or str(self.event_id)

    @property
    def bundle_path(self) -> Path:
        return self.home / "bundle.ucb"

    def server_now(self) -> datetime:
        """The station clock corrected by the offset learnt from the server."""
        return self.clock() + timedelta(seconds=self.journal.clock_offset)

    # --- bundles
    def _trust_floor(self) -> tuple[int, str] | None:
        version = self.journal.get("trust_version")
        return (int(version), self.journal.get("trust_payload_sha256") or "") if version else None

    def _load_stored_bundle(self) -> None:
        if not self.bundle_path.exists() or self.root_public_key is None:
            return
        try:
            self.bundle = eb.check(self.bundle_path.read_bytes(), self.root_public_key, self.server_now(),
                                   event_id=self.event_id)
            self.bundle_problem = None
        except eb.REFUSALS as exc:
            self.bundle = None
            self.bundle_problem = exc.render()

    def _verify(self, data: bytes, root_public_key: bytes | None = None, *, event_id: int | None,
                current_version: int = 0, current_sha256: str | None = None) -> eb.EventBundle:
        root = self._check_root(root_public_key)
        try:
            return eb.check(data, root, self.server_now(), current_version=current_version, event_id=event_id,
                            current_sha256=current_sha256, trust_floor=self._trust_floor())
        except eb.BundleOtherEvent as exc:  # name the desk's event, not its number
            raise eb.BundleOtherEvent(event=exc.params["event"], station_event=self._event_label()) from None

    def _install(self, data: bytes, accepted: eb.EventBundle, **settings) -> None:
        """Keep a verified bundle; every setting it implies is written in one step, after the check."""
        write_private_atomically(self.bundle_path, data)
        self.journal.set(bundle_version=accepted.version, bundle_sha256=accepted.sha256, event_id=accepted.event.id,
                         event_name=accepted.event.name, trust_version=accepted.trust.version,
                         trust_payload_sha256=accepted.trust.payload_sha256, **settings)
        self.bundle = accepted
        self.bundle_problem = None
        self._announce()

    def accept_bundle(self, data: bytes, root_public_key: bytes | None = None, *, desk: str | None = None
                      ) -> eb.EventBundle:
        """Check a new bundle against the pinned root (or, on a fresh desk, the one given), the
        event the desk is bound to and the version it has; keep it if good. Nothing about the desk
        changes unless the bundle passes every check."""
        fresh = self.root_public_key is None
        bound = self.event_id
        accepted = self._verify(data, root_public_key, event_id=bound,
                                current_version=int(self.journal.get("bundle_version", "0") or 0) if bound else 0,
                                current_sha256=self.journal.get("bundle_sha256") if bound else None)
        settings = {}
        if fresh:  # a desk that never talks to the server: pinned by the operator's --root-key
            desk = desk or "1"
            settings = {"root_public_key": base64.b64encode(root_public_key).decode(), "desk": desk,
                        "station_id": f"offline-{desk}", "server": None, "token": None}
        self._install(data, accepted, **settings)
        return accepted

    def switch_plan(self, data: bytes, root_public_key: bytes | None = None) -> dict:
        """What switch_event would do, after verifying the bundle (it changes nothing)."""
        accepted = self._verify(data, root_public_key, event_id=None)
        same = self.event_id == accepted.event.id
        return {"bundle": accepted, "same_event": same, "from_event": self._event_label() if self.event_id else None,
                "to_event": accepted.event.name, "counts": self.journal.counts(),
                "archive": None if same or self.event_id is None else self._archive_path()}

    def _archive_path(self) -> Path:
        stamp = self.clock().strftime("%Y%m%dT%H%M%SZ")
        return self.home / f"journal-event-{self.event_id}-{stamp}.sqlite3"

    def switch_event(self, data: bytes, root_public_key: bytes | None = None, archive: Path | None = None) -> dict:
        """Move the desk to another event: the bundle is verified first; then the old event's
        journal is kept, closed, in its own file (its check-ins stay there, unsent ones too: send
        them before switching) and the desk starts an empty journal for the new event. The root
        key, the desk's name and the newest trust bundle version stay; the server enrolment,
        which was for the old event, does not."""
        plan = self.switch_plan(data, root_public_key)
        if archive is not None and plan["archive"] is not None:  # the name the operator was shown
            plan["archive"] = archive
        accepted = plan["bundle"]
        if plan["archive"] is None:  # same event, or a desk not bound yet: an ordinary load
            return {**plan, "bundle": self.accept_bundle(data, root_public_key)}
        keep = {name: self.journal.get(name) for name in ("root_public_key", "desk", "station_id", "clock_offset",
                                                          "trust_version", "trust_payload_sha256")}
        if self.journal.get("server"):
            keep["station_id"] = f"offline-{keep['desk']}"
        path = self.home / "journal.sqlite3"
        if not self.journal.close_for_move():
            raise StationBusy()
        fresh_path = self.home / "journal.sqlite3.new"
        fresh_path.unlink(missing_ok=True)
        fresh = Journal(fresh_path)
        fresh.set(**keep)
        fresh.close_for_move()  # nobody else has it open
        path.rename(plan["archive"])
        fresh_path.rename(path)
        self.journal = Journal(path)
        self.bundle = None
        self._install(data, accepted)
        return plan

    # --- the person at the desk
    @property
    def operator(self) -> str:
        return self.journal.get("operator", "") or ""

    def set_operator(self, name: str) -> str:
        name = " ".join(str(name or "").split())[:MAX_OPERATOR]
        if not name or not name.isprintable():
            raise OperatorRequired()
        self.journal.set(operator=name)
        self._announce()
        return name

    # --- the desk's mode: the registration desk, or the door of one session
    @property
    def mode(self) -> tuple[int, str] | None:
        """(session id, "in" or "out") for a session's door; None at the registration desk."""
        session = self.journal.get("session_id")
        return (int(session), self.journal.get("direction") or "in") if session else None

    def set_mode(self, session_id, direction: str = "in") -> dict:
        """Make the desk the entrance or the exit of a session of the event, or (None) the
        registration desk again."""
        if session_id in (None, "", 0, "0"):
            self.journal.set(session_id=None, direction=None)
        else:
            try:
                session = self.bundle.event.session(int(session_id)) if self.bundle else None
            except (TypeError, ValueError):
                session = None
            if session is None or direction not in DIRECTIONS:
                raise NoSuchSession()
            self.journal.set(session_id=session.id, direction=direction)
        self._announce()
        return self.mode_info()

    def mode_info(self) -> dict | None:
        mode = self.mode
        session = self.bundle.event.session(mode[0]) if mode and self.bundle else None
        if session is None:
            return None
        counts = self.journal.session_counts(session.id)
        return {"session": session.id, "name": session.name, "room": session.room, "day": session.day.isoformat(),
                "direction": mode[1], **counts}

    # --- scanning
    def scan(self, scan: Scan, *, kiosk: bool = False) -> dict:
        """A card scanned or typed. At the kiosk a member checks themselves in: only a green
        verdict is recorded (and prints the badge); anything else calls the staff. At a session's
        door the scan records an entry or an exit of that session."""
        mode = None if kiosk else self.mode
        if mode is not None:
            return self._session_scan(scan, *mode)
        with self.journal.lock:
            verdict = decide(scan, self.bundle, self.server_now(), self.journal.previous)
            # At the kiosk nobody checks the face against the card: only a card that proved itself
            # (its signed credential, from the QR or the chip) lets a member in; a typed number,
            # or a badge's QR (the bare number), sends them to the staff.
            records = verdict.records_check_in and (not kiosk or (verdict.colour == Colour.GREEN
                                                                   and verdict.credential is not None))
            return self._record(verdict, scan.source, records, kiosk=kiosk)

    def _session_scan(self, scan: Scan, session_id: int, direction: str) -> dict:
        with self.journal.lock:
            verdict = decide_session(scan, self.bundle, self.server_now(), session_id, direction,
                                     self.journal.last_in_session)
            if verdict.records_session:
                self.journal.record_session(verdict, session_id, direction, scan.source.value, self.clock(),
                                            self.operator or None)
            shown = self._shown(verdict, None, scan.source)
            shown["print_mode"] = "none"
            self._publish(shown)
            return shown

    def find(self, text: str) -> dict:
        """People on the list by name (offline, from the bundle)."""
        found = find_by_name(self.bundle, str(text or "")[:100])
        return {"state": found.state, "more": found.more,
                "matches": [{"person": m.person, "name": m.name, "organisation": m.organisation, "role": m.role,
                             "role_label": translate(ROLE_LABELS[m.role]) if m.role in ROLE_LABELS else None,
                             "number": m.masked_number, "blocked": m.blocked} for m in found.matches]}

    def check_in_by_document(self, person: str) -> dict:
        """Someone found by name whose identity the staff checked from a document."""
        if not self.operator:
            raise OperatorRequired()
        with self.journal.lock:
            verdict = decide_by_document(str(person or "")[:64], self.bundle, self.server_now(), self.journal.previous)
            return self._record(verdict, Source.DOCUMENT, verdict.records_check_in)

    def _record(self, verdict: Verdict, source: Source, records: bool, *, kiosk: bool = False) -> dict:
        nonce = None
        mode = self.bundle.event.badge_mode(verdict.role) if self.bundle is not None else "none"
        if records:
            nonce = self.journal.record(verdict, source.value, self.clock(), None if kiosk else self.operator or None)
            # A badge prints by itself only for someone the desk is sure of (green): a number
            # accepted for a check by eye gets one from the button once the staff are satisfied.
            if (mode == "auto" or kiosk) and verdict.colour == Colour.GREEN:
                self.journal.queue_print(nonce, kinds_for(verdict.role), self.clock())
                self._wake_printer()
        shown = self._shown(verdict, nonce, source)
        shown["print_mode"] = mode if records else "none"
        shown["kiosk_call_staff"] = kiosk and not records
        self._publish(shown)
        return shown

    # --- badges and mandates
    printer_worker = None

    def _wake_printer(self) -> None:
        if self.printer_worker is not None:
            self.printer_worker.wake.set()

    def print_for(self, nonce: str, reason: str | None = None) -> dict:
        """Queue the badge (and a delegate's mandate) of one of this desk's check-ins; printing it
        again needs a reason, which is kept with the job."""
        entry = self.journal.entry(str(nonce or ""))
        if entry is None or entry["undone"]:
            raise no_such_check_in()
        reason = " ".join(str(reason or "").split())[:200] or None
        if self.journal.prints(entry["nonce"]) and not reason:
            raise ReprintNeedsReason()
        ids = self.journal.queue_print(entry["nonce"], kinds_for(entry["role"]), self.clock(), reason=reason,
                                       operator=self.operator or None)
        self._wake_printer()
        self._announce()
        return {"queued": len(ids), "nonce": entry["nonce"]}

    def announce(self) -> None:
        self._announce()

    def undo(self, nonce: str) -> dict:
        undo_nonce = self.journal.undo(nonce, self.clock())
        self._announce()
        return {"undone": nonce, "nonce": undo_nonce}

    def _shown(self, verdict: Verdict, nonce: str | None, source: Source) -> dict:
        role = verdict.role
        # Found by name, not by the card: the screen shows only the card's last four digits.
        number = mask_number(verdict.number) if source == Source.DOCUMENT and verdict.number else verdict.number
        return {"colour": verdict.colour.value, "code": verdict.code,
                "reason": translate(REASONS[verdict.code], **verdict.params),
                "name": verdict.name, "number": number, "role": role,
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
                "operator": self.operator, "prints": self.journal.print_counts(), "mode": self.mode_info(),
                "printer": self.printer_worker.config if self.printer_worker is not None else None,
                "counts": self.journal.counts(), "sync": dict(self.sync_state), "seq": self._seq,
                "clock_warning": None, "expiry_warning": None, "bundle": None, "bundle_problem": self.bundle_problem}
        if abs(offset) > CLOCK_WARNING:
            minutes = round(offset.total_seconds() / 60)
            info["clock_warning"] = translate(N_("This computer's clock is off by %(minutes)s min; the station "
                                                 "corrects it, but set the clock right"), minutes=minutes)
        if bundle is not None:
            until = bundle.valid_until
            expired = bundle.is_expired(now)
            expires_soon = not expired and until - trust_utc(now) <= EXPIRY_WARNING
            info["bundle"] = {"event": bundle.event.name, "version": bundle.version,
                              "expires_at": timestamp(until), "roster": len(bundle.roster),
                              "revoked": len(bundle.revoked), "admission": bundle.event.admission,
                              "day": bundle.event.day_of(now).isoformat(), "utc_offset": bundle.event.utc_offset,
                              "sessions": [dict(session.as_json(), label=f"{session.day:%d.%m} · {session.name}"
                                                + (f" ({session.room})" if session.room else ""))
                                           for session in bundle.event.sessions],
                              "expired": expired, "expires_soon": expires_soon}
            # The laptop's own time zone: that is the clock on the wall of the hall.
            shown = until.astimezone().strftime("%d.%m.%Y %H:%M")
            if expired:
                info["expiry_warning"] = translate(N_("The event data expired on %(expires)s: synchronise the "
                                                      "station or load a newer bundle"), expires=shown)
            elif expires_soon:
                info["expiry_warning"] = translate(N_("The event data expire on %(expires)s: synchronise the "
                                                      "station or load a newer bundle before then"), expires=shown)
        return info

    def close(self) -> None:
        self.journal.close()

