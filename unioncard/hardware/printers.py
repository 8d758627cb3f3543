"""Card printers behind one small interface, chosen by a config string:

    cups:QUEUE            a CUPS queue (pycups / IPP) on the default server (CUPS_SERVER)
    cups:QUEUE@HOST:PORT  … on that server (or @/path/to/socket)
    file:DIR              writes each job's PDF into DIR (the embedded demo's printer)

A job is found again by its title after a crash, so nothing is printed twice unrecorded. CUPS
failures become our PrinterNotFound / PrintFailed.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from unioncard.files import write_private_atomically
from unioncard.hardware.errors import DeviceConfigError, PrintFailed, PrinterNotFound

CARD_WIDTH_PT = 242.65   # 85.60 mm
CARD_HEIGHT_PT = 153.01  # 53.98 mm
# IPP job states (RFC 8011 §5.3.7)
PENDING, HELD, PROCESSING, STOPPED, CANCELED, ABORTED, COMPLETED = 3, 4, 5, 6, 7, 8, 9
JOB_STATE_NAMES = {PENDING: "pending", HELD: "held", PROCESSING: "processing", STOPPED: "stopped",
                   CANCELED: "canceled", ABORTED: "aborted", COMPLETED: "completed"}


@dataclass(frozen=True)
class JobState:
    job: str
    state: str          # pending / held / processing / stopped / canceled / aborted / completed
    message: str = ""

    @property
    def finished(self) -> bool:
        # "stopped": the queue stopped on this job (filter error, printer fault); it needs a person.
        return self.state in ("completed", "canceled", "aborted", "stopped")

    @property
    def ok(self) -> bool:
        return self.state == "completed"


@dataclass(frozen=True)
class PrinterState:
    name: str
    state: str          # idle / printing / stopped
    message: str = ""
    accepting: bool = True


def open_printer(config: str):
    scheme, _, rest = config.partition(":")
    if scheme == "cups" and rest:
        queue, _, server = rest.partition("@")
        return CupsPrinter(queue, server or None)
    if scheme == "file" and rest:
        return FilePrinter(Path(rest))
    raise DeviceConfigError(config=config)


class FilePrinter:
    """Writes the PDF the printer would get into a folder (one file per job, named by title)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.name = f"file:{folder}"

    def _path(self, title: str) -> Path:
        return self.folder / f"{title}.pdf"

    def state(self) -> PrinterState:
        return PrinterState(self.name, "idle", str(self.folder))

    def submit(self, pdf: bytes, title: str, page_pt: tuple[float, float] | None = None) -> str:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_private_atomically(self._path(title), pdf)
        except OSError as exc:  # not a folder, no permission, disk full
            raise PrintFailed(detail=f"{self.folder}: {exc.strerror or exc}") from None
        return title

    def find(self, title: str) -> str | None:
        return title if self._path(title).exists() else None

    def job_state(self, job: str) -> JobState:
        return JobState(job, "completed" if self._path(job).exists() else "aborted")

    def wait(self, job: str, timeout: float) -> JobState:
        return self.job_state(job)


class CupsPrinter:
    def __init__(self, queue: str, server: str | None = None):
        from unioncard.hardware.errors import require_driver

        require_driver("cups", "CUPS (pycups)")
        self.queue = queue
        self.server = server
        self.name = f"cups:{queue}" + (f"@{server}" if server else "")
        self._connection = None
        if queue not in self._printers():
            raise PrinterNotFound(queue=queue, available=", ".join(sorted(self._printers())) or "—")

    def _connect(self):
        import cups

        if self._connection is None:
            try:
                if self.server:
                    host, _, port = self.server.rpartition(":") if not self.server.startswith("/") else (
                        self.server, "", "")
                    self._connection = cups.Connection(host=host or self.server, port=int(port) if port else 631)
                else:
                    self._connection = cups.Connection()
            except (RuntimeError, cups.IPPError) as exc:
                raise PrintFailed(detail=f"CUPS: {exc}") from None
        return self._connection

    def _printers(self) -> dict:
        import cups

        try:
            return self._connect().getPrinters()
        except cups.IPPError as exc:
            raise PrintFailed(detail=f"CUPS: {exc}") from None

    def state(self) -> PrinterState:
        info = self._printers().get(self.queue)
        if info is None:
            raise PrinterNotFound(queue=self.queue, available=", ".join(sorted(self._printers())) or "—")
        state = {3: "idle", 4: "printing", 5: "stopped"}.get(info.get("printer-state"), "unknown")
        return PrinterState(self.name, state, info.get("printer-state-message", ""),
                            bool(info.get("printer-is-accepting-jobs", True)))

    def submit(self, pdf: bytes, title: str, page_pt: tuple[float, float] | None = None) -> str:
        import cups

        # The card's (or badge's) own media size: without it the queue's default (A4) page is used.
        width, height = page_pt or (CARD_WIDTH_PT, CARD_HEIGHT_PT)
        options = {"PageSize": f"Custom.{width:.2f}x{height:.2f}", "fit-to-page": "false",
                   "document-format": "application/pdf"}
        # The document is named after the job too: CUPS hides a job's name from other users
        # (JobPrivateValues) but shows the document name, and a job is found again by either.
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, f"{title}.pdf")
            with open(path, "wb") as handle:
                handle.write(pdf)
            try:
                return str(self._connect().printFile(self.queue, path, title, options))
            except cups.IPPError as exc:
                raise PrintFailed(detail=f"CUPS: {exc}") from None

    def find(self, title: str) -> str | None:
        import cups

        try:
            jobs = self._connect().getJobs(which_jobs="all", requested_attributes=[
                "job-id", "job-name", "document-name-supplied"])
        except cups.IPPError as exc:
            raise PrintFailed(detail=f"CUPS: {exc}") from None
        matches = [job_id for job_id, attrs in jobs.items()
                   if attrs.get("job-name") == title or attrs.get("document-name-supplied") == f"{title}.pdf"]
        return str(max(matches)) if matches else None

    def job_state(self, job: str) -> JobState:
        import cups

        try:
            attrs = self._connect().getJobAttributes(int(job), requested_attributes=[
                "job-state", "job-state-message"])
        except cups.IPPError as exc:
            return JobState(job, "aborted", f"CUPS: {exc}")
        return JobState(job, JOB_STATE_NAMES.get(attrs.get("job-state"), "pending"),
                        attrs.get("job-state-message", ""))

    def wait(self, job: str, timeout: float) -> JobState:
        deadline = time.monotonic() + timeout
        while True:
            state = self.job_state(job)
            if state.finished or time.monotonic() >= deadline:
                return state
            time.sleep(0.1)
