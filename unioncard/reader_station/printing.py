"""Badges and delegates' mandates printed at the registration desk.

A check-in may queue prints (the event decides per role: at once, by the button, or never); a
reprint from a journal entry needs its reason. Jobs wait in the desk's journal and a printer
thread works them through the desk's printer (``cups:QUEUE`` or ``file:DIR``): a printer that is
away or faulty leaves the job queued with its error on screen and is tried again, so check-in
never waits for paper. A job's title names it, so after a crash a job CUPS already has is found
again instead of being printed twice.
"""

from __future__ import annotations

import threading

from unioncard.card_layouts.model import builtin
from unioncard.card_layouts.render import CardFace, CardRenderer
from unioncard.errors import UnionCardError, ValidationError
from unioncard.i18n import N_, translate
from unioncard.reader_station.domain import ROLE_LABELS

KINDS = ("badge", "mandate")
# A delegate gets a mandate with the badge; others only the badge.
KINDS_FOR_ROLE = {"delegate": ("badge", "mandate")}
RETRY_SECONDS = 5.0
JOB_TIMEOUT = 30.0


class ReprintNeedsReason(ValidationError):
    code = "reprint_reason_required"
    message = N_("Say why the badge is printed again")


def kinds_for(role: str | None) -> tuple[str, ...]:
    return KINDS_FOR_ROLE.get(role or "member", ("badge",))


def page_values(entry: dict, bundle, kind: str) -> dict:
    """What a badge or mandate shows: the journal entry's person and the event."""
    name = entry.get("name") or ""
    roster = bundle.roster.get(entry.get("number") or "") if bundle else None
    words = name.split(" ", 1)
    event = bundle.event if bundle else None
    role = entry.get("role") or "member"
    at = entry.get("at") or ""
    values = {
        "full_name": name, "surname": words[0], "given_names": words[1] if len(words) > 1 else "",
        "number": entry.get("number") or "", "organisation_name": roster.organisation if roster else "",
        "region_name": roster.region_code if roster else "",
        "role": translate(ROLE_LABELS.get(role, ROLE_LABELS["member"])),
        "event_name": event.name if event else "", "event_venue": event.venue if event else "",
        "event_dates": _dates(event) if event else "",
        "checked_in_on": translate(N_("Date of registration: %(date)s"), date=f"{at[8:10]}.{at[5:7]}.{at[0:4]}") if at else "",
        "mandate_number": translate(N_("No. %(number)s"), number=entry.get("number", "")[-6:]) if kind == "mandate"
        else "",
    }
    return values


def _dates(event) -> str:
    if event.starts_on == event.ends_on:
        return event.starts_on.strftime("%d.%m.%Y")
    return f"{event.starts_on:%d.%m.%Y} – {event.ends_on:%d.%m.%Y}"


_renderers: dict[str, CardRenderer] = {}


def render(kind: str, values: dict) -> tuple[bytes, tuple[float, float]]:
    """(PDF, page size in points) of one badge or mandate."""
    renderer = _renderers.get(kind)
    if renderer is None:
        renderer = _renderers[kind] = CardRenderer(builtin(kind))
    return renderer.pdf([CardFace(values)], faces=("front",)), renderer.page


def job_title(job_id: int, nonce: str, kind: str) -> str:
    return f"unioncard-{kind}-{nonce[:12]}-{job_id}"


class PrintWorker(threading.Thread):
    """Works the desk's print queue through one printer; never raises into the desk."""

    def __init__(self, station, printer_config: str, *, retry_seconds: float = RETRY_SECONDS):
        super().__init__(name="desk-printer", daemon=True)
        self.station = station
        self.config = printer_config
        self.retry_seconds = retry_seconds
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._printer = None

    def printer(self):
        from unioncard.hardware.printers import open_printer

        if self._printer is None:
            self._printer = open_printer(self.config)
        return self._printer

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            worked = self.work_once()
            if not worked:
                self.wake.wait(self.retry_seconds)
                self.wake.clear()

    def work_once(self) -> bool:
        """Print what is queued; False when nothing was printed (empty queue or a printer fault)."""
        journal = self.station.journal
        printed = False
        for job in journal.queued_prints():
            entry = journal.entry(job["nonce"])
            if entry is None:
                journal.print_failed(job["id"], "no such check-in")
                continue
            title = job_title(job["id"], job["nonce"], job["kind"])
            try:
                printer = self.printer()
                found = printer.find(title)
                if found is None:
                    pdf, page = render(job["kind"], page_values(entry, self.station.bundle, job["kind"]))
                    found = printer.submit(pdf, title, page)
                state = printer.wait(found, JOB_TIMEOUT)
            except UnionCardError as exc:
                self._printer = None  # opened again next time: the queue may come back
                journal.print_failed(job["id"], exc.render())
                self.station.announce()
                return printed
            except Exception as exc:  # noqa: BLE001 - a driver's own failure must not stop the desk
                self._printer = None
                journal.print_failed(job["id"], f"{type(exc).__name__}: {exc}"[:300])
                self.station.announce()
                return printed
            if state.ok:
                journal.print_done(job["id"], found, self.station.clock())
                printed = True
            else:
                journal.print_failed(job["id"], translate(N_("The printer did not finish the job (%(state)s %(message)s)"),
                                                          state=state.state, message=state.message))
                self.station.announce()
                return printed
            self.station.announce()
        return printed
