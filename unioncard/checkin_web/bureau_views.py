"""The bureau's pages: cards waiting per region, making batches, a batch's progress (live),
starting a run, spoiled cards, manifests, shipment; and for a region, marking delivery of a
parcel per organisation. Batches outside the user's scope answer 404."""

from __future__ import annotations


from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import login_required
from sqlalchemy import func, select

from unioncard.checkin_web.input_guard import bounded_id
from unioncard.checkin_web.scope import actor as _actor
from unioncard.checkin_web.scope import rt as _rt
from unioncard.checkin_web.scope import user_can
from unioncard.errors import NotFound, UnionCardError
from unioncard.issuer import cardnumber
from unioncard.issuer.models import Card
from unioncard.jobs import domain as jd
from unioncard.personalization import domain as pd
from unioncard.personalization import jobs as bureau_jobs
from unioncard.personalization import manifest as manifests
from unioncard.personalization import services as bureau
from unioncard.personalization.models import BatchItem, PrintJob
from unioncard.registry import domain as d
from unioncard.registry.models import Organisation

bp = Blueprint("bureau", __name__, url_prefix="/bureau")
# A QR of the size a real credential makes (115 bytes in base45), for the layout preview.
_SAMPLE_QR = "UC1:" + "6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3/XIV0W23NTDE$VK G2EH2F1A5-IV6EQUB5T47M:" * 2 + "%47-CP9MQR3"


@bp.app_context_processor
def _bureau_links():
    return {"can_use_bureau": user_can(d.Permission.PRODUCE_CARDS, d.Permission.APPROVE_CARDS)}


def _batch_or_404(session, batch_id: int):
    try:
        return bureau.get_batch(session, _actor(), batch_id)
    except NotFound:
        abort(404)


def _is_bureau() -> bool:
    return _actor().can(d.Permission.PRODUCE_CARDS)


@bp.route("/")
@login_required
def index():
    if not (_is_bureau() or _actor().can(d.Permission.APPROVE_CARDS)):
        abort(404)
    with _rt().session_factory() as session:
        waiting = bureau.waiting_by_region(session, _actor()) if _is_bureau() else []
        batches = bureau.list_batches(session, _actor())
        states = bureau.progress_many(session, [b.id for b in batches])
    return render_template("bureau/index.html", waiting=waiting, batches=batches, states=states,
                           is_bureau=_is_bureau(), encodings=list(pd.Encoding), labels=pd.BATCH_LABELS,
                           encoding_labels=pd.ENCODING_LABELS)


@bp.route("/batches", methods=["POST"])
@login_required
def create():
    if not _is_bureau():
        abort(404)
    try:
        with _rt().uow() as uow:
            batches = bureau.create_batches(uow, _actor(), region_codes=request.form.getlist("region") or None,
                                            max_size=request.form.get("size", 500, type=int),
                                            encoding=request.form.get("encoding", "chip"),
                                            layout=_rt().settings.bureau_layout)
            uow.commit()
            flash(_("Batches made: %(count)s", count=len(batches)), "ok")
    except (UnionCardError, ValueError) as exc:
        flash(exc.render() if isinstance(exc, UnionCardError) else _("Wrong value"), "error")
    return redirect(url_for("bureau.index"))


@bp.route("/batches/<int:batch_id>")
@login_required
def batch(batch_id: int):
    with _rt().session_factory() as session:
        the_batch = _batch_or_404(session, batch_id)
        state = bureau.progress(session, batch_id)
        spoiled = session.execute(select(BatchItem, Card).join(Card, Card.id == BatchItem.card_id).where(
            BatchItem.batch_id == batch_id, BatchItem.stage == pd.Stage.SPOILED.value)
            .order_by(BatchItem.position)).all()
        jobs = list(session.scalars(select(PrintJob).where(PrintJob.batch_id == batch_id).order_by(PrintJob.id)))
        run_job = bureau_jobs.last_run(session, batch_id)
        deliveries = session.execute(
            select(Organisation.id, Organisation.name, Card.status, func.count())
            .join(Card, Card.organisation_id == Organisation.id).join(BatchItem, BatchItem.card_id == Card.id)
            .where(BatchItem.batch_id == batch_id, BatchItem.stage == pd.Stage.DONE.value)
            .group_by(Organisation.id, Organisation.name, Card.status).order_by(Organisation.name)).all()
    return render_template("bureau/batch.html", batch=the_batch, state=state, spoiled=spoiled, jobs=jobs,
                           run_job=run_job, job_statuses=jd.Status,
                           run_pending=bool(the_batch.run_owner) or (run_job is not None
                                                                    and run_job.status not in jd.FINISHED),
                           deliveries=deliveries, is_bureau=_is_bureau(), labels=pd.BATCH_LABELS,
                           stage_labels=pd.STAGE_LABELS, encoding_labels=pd.ENCODING_LABELS, job_labels=pd.JOB_LABELS,
                           can_deliver=_actor().can(d.Permission.APPROVE_CARDS), fmt=cardnumber.format)


@bp.route("/batches/<int:batch_id>/progress.json")
@login_required
def progress(batch_id: int):
    with _rt().session_factory() as session:
        the_batch = _batch_or_404(session, batch_id)
        state = bureau.progress(session, batch_id)
    return jsonify(done=state.done, to_make=state.to_make, spoiled=state.spoiled, percent=state.percent,
                   status=the_batch.status, running=bool(the_batch.run_owner), error=the_batch.last_error)


@bp.route("/batches/<int:batch_id>/run", methods=["POST"])
@login_required
def run(batch_id: int):
    """Queue the run for the bureau's workstation (its worker has the printer and the reader; in
    the demo the app's own job thread runs it); the page follows its progress."""
    if not _is_bureau():
        abort(404)
    try:
        with _rt().uow() as uow:
            bureau_jobs.start_run(uow, _actor(), batch_id)
            uow.commit()
    except NotFound:
        abort(404)
    except UnionCardError as exc:
        flash(exc.render(), "error")
        return redirect(url_for("bureau.batch", batch_id=batch_id))
    flash(_("The batch is queued for the bureau's workstation; this page shows the progress"), "ok")
    return redirect(url_for("bureau.batch", batch_id=batch_id))


@bp.route("/batches/<int:batch_id>/spoil", methods=["POST"])
@login_required
def spoil(batch_id: int):
    if not _is_bureau():
        abort(404)
    try:
        with _rt().uow() as uow:
            bureau.spoil_printed(uow, _actor(), batch_id, request.form.get("number", ""),
                                 request.form.get("reason", ""))
            uow.commit()
        flash(_("The card is void; a new card for the member is queued in this batch"), "ok")
    except NotFound as exc:
        if "batch_not_found" == exc.code:
            abort(404)
        flash(exc.render(), "error")
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("bureau.batch", batch_id=batch_id))


@bp.route("/batches/<int:batch_id>/ship", methods=["POST"])
@login_required
def ship(batch_id: int):
    if not _is_bureau():
        abort(404)
    try:
        with _rt().uow() as uow:
            count = bureau.ship(uow, _actor(), batch_id)
            uow.commit()
        flash(ngettext("Sent to the region: %(num)s card", "Sent to the region: %(num)s cards", count), "ok")
    except NotFound:
        abort(404)
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("bureau.batch", batch_id=batch_id))


@bp.route("/batches/<int:batch_id>/deliver", methods=["POST"])
@login_required
def deliver(batch_id: int):
    try:
        with _rt().uow() as uow:
            count = bureau.mark_delivered(uow, _actor(), batch_id, bounded_id(request.form.get("organisation_id")) or 0)
            uow.commit()
        flash(ngettext("Marked as delivered: %(num)s card", "Marked as delivered: %(num)s cards", count), "ok")
    except NotFound as exc:
        if exc.code == "batch_not_found":
            abort(404)
        flash(exc.render(), "error")
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("bureau.batch", batch_id=batch_id))


@bp.route("/batches/<int:batch_id>/manifest.<any(pdf, xlsx):fmt>")
@login_required
def manifest(batch_id: int, fmt: str):
    with _rt().uow() as uow:
        try:
            the_batch, rows = bureau.manifest(uow.session, _actor(), batch_id)
        except NotFound:
            abort(404)
        region = bureau.region_name(uow.session, the_batch)
        uow.commit()  # the audit entry of the view
    if fmt == "pdf":
        return Response(manifests.pdf(the_batch, region, rows), mimetype="application/pdf",
                        headers={"Content-Disposition": f"attachment; filename=batch-{batch_id}.pdf"})
    return Response(manifests.xlsx(the_batch, region, rows),
                    mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=batch-{batch_id}.xlsx"})


@bp.route("/layout/preview.png")
@login_required
def layout_preview():
    """The card layout with sample data, as people will see it printed."""
    if not _is_bureau():
        abort(404)
    from unioncard.card_layouts.render import CardFace, CardRenderer, png_previews
    from unioncard.card_layouts.model import from_setting

    side = 1 if request.args.get("side") == "back" else 0
    sample = CardFace({"surname": "Иванова", "given_names": "Мария Петровна", "number": "9643 0123 0000 0014",
                       "credential": _SAMPLE_QR, "region_name": "Краснодарская краевая организация",
                       "issued_on": "22.11.2026", "union_name": "Общероссийский профессиональный союз"})
    pdf = CardRenderer(from_setting(_rt().settings.bureau_layout)).pdf([sample])
    return Response(png_previews(pdf, dpi=150)[side], mimetype="image/png")
