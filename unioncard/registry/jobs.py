"""The registry's long work as jobs: a subtree's member list exported to a file (a region of
400 000 members takes minutes and must not hold a web request, nor its memory)."""

from __future__ import annotations

from unioncard import clock
from unioncard.jobs.services import handler
from unioncard.registry import importer, services

MEMBERS_EXPORT = "members_export"


def exports_folder(settings):
    folder = settings.instance_dir / "exports"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def export_file(settings, job_id: int):
    return exports_folder(settings) / f"job-{job_id}.xlsx"


@handler(MEMBERS_EXPORT)
def export_members_job(context) -> dict:
    """Written to a part file, renamed when whole: a worker killed half-way leaves no half file
    to download, and the job taken up again writes it from the start (a file cannot be appended
    to a finished zip, and nothing else was changed)."""
    organisation_id = context.params["organisation_id"]
    final = export_file(context.settings, context.job_id)
    part = final.with_name(final.name + ".part")
    with context.uow() as uow:
        session = uow.session
        org = services.get_organisation(session, context.actor, organisation_id)
        total = importer.count_for_export(session, context.actor, organisation_id)
        context.step(session, done=0, total=total)
        session.commit()

        def chunk_written(rows: int) -> None:
            # Each chunk's transaction ends here, with its progress: readers see it move, and on
            # SQLite the write lock is not held for the whole export.
            context.step(session, done=rows)
            session.commit()
            context.pause()

        written = importer.export_members_to(uow, context.actor, organisation_id, part, on_chunk=chunk_written)
        part.replace(final)
        context.step(session, done=written, total=written)
        uow.commit()
    return {"file": final.name, "rows": written,
            "download_name": f"members-{org.code}-{clock.today():%Y%m%d}.xlsx"}
