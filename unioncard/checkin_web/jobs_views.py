"""Long work the user started (a big export): its page shows how far it got and, when it is
done, the file. Only the user who started a job sees it."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, send_file, url_for
from flask_babel import gettext as _
from flask_login import login_required

from unioncard.checkin_web.scope import actor as _actor
from unioncard.checkin_web.scope import organisation_or_404 as _org_or_404
from unioncard.checkin_web.scope import rt as _rt
from unioncard.errors import NotFound
from unioncard.jobs import domain as jd
from unioncard.jobs import services as jobs
from unioncard.registry import importer
from unioncard.registry import jobs as registry_jobs
from unioncard.registry import services as registry

bp = Blueprint("jobs", __name__)

# A subtree up to this size is exported in the request (a click, a file); a larger one as a job.
EXPORT_DIRECT_MAX = 5000


@bp.app_context_processor
def _export_limit():
    return {"export_direct_max": EXPORT_DIRECT_MAX}


@bp.route("/registry/org/<int:organisation_id>/export", methods=["POST"])
@login_required
def start_members_export(organisation_id: int):
    with _rt().uow() as uow:
        org = _org_or_404(uow.session, organisation_id)
        try:
            importer.count_for_export(uow.session, _actor(), org.id)  # the same refusal as the export's
        except NotFound:
            abort(404)
        job = jobs.submit(uow, _actor(), registry_jobs.MEMBERS_EXPORT, {"organisation_id": org.id}, org.path)
        uow.commit()
    return redirect(url_for(".job", job_id=job.id))


@bp.route("/jobs/<int:job_id>")
@login_required
def job(job_id: int):
    with _rt().session_factory() as session:
        try:
            found = jobs.get_job(session, _actor(), job_id)
        except NotFound:
            abort(404)
        organisation = None
        params = jobs.params_of(found)
        if "organisation_id" in params:
            try:
                organisation = registry.get_organisation(session, _actor(), params["organisation_id"])
            except NotFound:  # out of the user's scope since: the job's page still shows
                organisation = None
    return render_template("jobs/job.html", job=found, result=jobs.result_of(found), organisation=organisation,
                           percent=jd.percent(found.done, found.total), finished=found.status in jd.FINISHED,
                           statuses=jd.Status)


@bp.route("/jobs/<int:job_id>/file")
@login_required
def job_file(job_id: int):
    with _rt().session_factory() as session:
        try:
            found = jobs.get_job(session, _actor(), job_id, kind=registry_jobs.MEMBERS_EXPORT)
        except NotFound:
            abort(404)
    result = jobs.result_of(found)
    path = registry_jobs.export_file(_rt().settings, found.id)
    if found.status != jd.Status.DONE or not path.exists():
        flash(_("The file is not ready yet"), "error")
        return redirect(url_for(".job", job_id=job_id))
    return send_file(path, as_attachment=True, download_name=result.get("download_name") or path.name,
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
