"""Registry pages: organisation tree, member lists and records, consents, import and export.

Every object is fetched through the registry services with the user's actor, so anything
outside the user's subtree answers 404, exactly like something that does not exist.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from wtforms import BooleanField, DateField, HiddenField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from unioncard import clock
from unioncard.members import joining
from unioncard.checkin_web.scope import actor as _actor
from unioncard.checkin_web.scope import organisation_or_404 as _org_or_404
from unioncard.checkin_web.scope import rt as _rt
from unioncard.checkin_web.input_guard import page_cursor, page_number
from unioncard.files import PendingUploads
from unioncard.checkin_web.scope import search_text
from unioncard.errors import NotFound, PermissionDenied, UnionCardError
from unioncard.registry import domain as d
from unioncard.statistics import services as stats
from unioncard.registry import importer, services
from unioncard.registry.models import Organisation

bp = Blueprint("registry", __name__, url_prefix="/registry")

PER_PAGE = 50


def _choices(labels: dict, blank: bool = False):
    items = [(key.value, _(text)) for key, text in labels.items()]
    return ([("", "—")] if blank else []) + items


def _ancestors(db_session, org: Organisation) -> list[Organisation]:
    """The chain from the user's own organisation down to ``org`` (never above the user's scope)."""
    ids = d.path_ids(org.path)
    rows = {o.id: o for o in db_session.scalars(select(Organisation).where(Organisation.id.in_(ids)))}
    return [rows[i] for i in ids if _actor().sees(rows[i].path)]


def _member_or_404(uow, membership_id: int, *, audit_view: bool = False):
    try:
        if audit_view:
            return services.view_member(uow, _actor(), membership_id)
        return services.get_membership(uow.session, _actor(), membership_id)
    except NotFound:
        abort(404)


# --- organisations -----------------------------------------------------------------------------

@bp.route("/")
@login_required
def root():
    return redirect(url_for(".organisation", organisation_id=current_user.organisation_id))


@bp.route("/find")
@login_required
def find():
    """An organisation by its code or a part of its name («гимназия»), in the user's part of the union."""
    text = (request.args.get("code") or "").strip()[:100]
    with _rt().session_factory() as db_session:
        found = services.find_organisations(db_session, _actor(), text)
        if len(found) == 1:
            return redirect(url_for(".organisation", organisation_id=found[0].id))
        if not found:
            flash(_("No organisation with the code or name “%(text)s”", text=text), "error")
            return redirect(url_for(".organisation", organisation_id=current_user.organisation_id))
        return render_template("registry/find.html", text=text, found=found,
                               limit=len(found) >= 50)


@bp.route("/org/<int:organisation_id>")
@login_required
def organisation(organisation_id: int):
    page = page_number()
    with _rt().session_factory() as db_session:
        org = _org_or_404(db_session, organisation_id)
        kids = services.children(db_session, _actor(), org.id)
        total_children = len(kids)
        kids = kids[(page - 1) * PER_PAGE: page * PER_PAGE]
        counts = services.member_counts(db_session, [org.path] + [k.path for k in kids])
        chair = services.current_chairperson(db_session, org.id)
        # Someone who reports sees their own form first on their own organisation's page (home).
        own = stats.own_tasks(db_session, _actor()) if org.id == _actor().organisation_id else []
        return render_template(
            "registry/organisation.html", org=org, children=kids, counts=counts, chair=chair, own=own,
            breadcrumbs=_ancestors(db_session, org), page=page, pages=max(1, -(-total_children // PER_PAGE)),
            can_hold_members=d.Level(org.level) in services.MEMBER_LEVELS,
            can_view_members=_actor().can(d.Permission.VIEW_MEMBERS),
            can_edit_members=_actor().can(d.Permission.EDIT_MEMBERS),
            waiting_applications=joining.count_waiting(db_session, _actor(), org.id),
        )


# --- member list and records ------------------------------------------------------------------

@bp.route("/org/<int:organisation_id>/members", methods=["GET", "POST"])
@login_required
def members(organisation_id: int):
    page = page_number()
    former = request.args.get("former") == "1"
    with _rt().session_factory() as db_session:
        org = _org_or_404(db_session, organisation_id)
        query, stored = search_text(f"members:{org.id}")
        if stored:
            return stored
        try:
            rows, total = services.list_members(db_session, _actor(), org.id, query=query, page=page,
                                                per_page=PER_PAGE, include_former=former, **page_cursor())
        except NotFound:
            abort(404)
        orgs = {o.id: o for o in db_session.scalars(
            select(Organisation).where(Organisation.id.in_({r.organisation_id for r in rows})))}
        people = {r.id: r.person for r in rows}
        return render_template(
            "registry/members.html", org=org, rows=rows, people=people, orgs=orgs, total=total, query=query,
            page=page, pages=max(1, -(-total // PER_PAGE)), former=former,
            breadcrumbs=_ancestors(db_session, org),
            can_edit_members=_actor().can(d.Permission.EDIT_MEMBERS)
            and d.Level(org.level) in services.MEMBER_LEVELS,
        )


class MemberForm(FlaskForm):
    surname = StringField(validators=[DataRequired(), Length(max=100)])
    given_name = StringField(validators=[DataRequired(), Length(max=100)])
    patronymic = StringField(validators=[Optional(), Length(max=100)])
    birth_date = DateField(validators=[DataRequired()])
    sex = SelectField(choices=[], validators=[Optional()])
    category = SelectField(choices=[], validators=[DataRequired()])
    phone = StringField(validators=[Optional(), Length(max=40)])
    email = StringField(validators=[Optional(), Length(max=200)])
    join_date = DateField(validators=[DataRequired()])
    transfer = BooleanField()

    def fill_choices(self):
        self.sex.choices = _choices(d.SEX_LABELS, blank=True)
        self.category.choices = _choices(d.CATEGORY_LABELS)
        return self

    def person(self) -> services.PersonData:
        return services.PersonData(
            surname=self.surname.data, given_name=self.given_name.data, patronymic=self.patronymic.data or None,
            birth_date=self.birth_date.data, sex=self.sex.data or None, phone=self.phone.data or None,
            email=self.email.data or None,
        )


def _show_error(form, exc: UnionCardError) -> None:
    field = getattr(form, exc.params.get("field", ""), None) if form is not None else None
    if field is not None:
        field.errors = list(field.errors) + [exc.render()]
    else:
        flash(exc.render(), "error")


@bp.route("/org/<int:organisation_id>/members/new", methods=["GET", "POST"])
@login_required
def member_new(organisation_id: int):
    rt = _rt()
    form = MemberForm().fill_choices()
    with rt.uow() as uow:
        org = _org_or_404(uow.session, organisation_id)
        if not _actor().can(d.Permission.EDIT_MEMBERS) or d.Level(org.level) not in services.MEMBER_LEVELS:
            abort(404)
        if request.method == "GET":
            form.join_date.data = clock.today()
            form.category.data = d.Category.WORKING.value
        if form.validate_on_submit():
            try:
                membership = services.register_member(uow, _actor(), org.id, form.person(), category=form.category.data,
                                                      join_date=form.join_date.data, transfer=form.transfer.data)
                uow.commit()
            except UnionCardError as exc:
                uow.rollback()
                _show_error(form, exc)
            else:
                flash(_("The member has been registered"), "success")
                return redirect(url_for(".member", membership_id=membership.id))
        return render_template("registry/member_form.html", form=form, org=org, membership=None,
                               breadcrumbs=_ancestors(uow.session, org))


class ConsentForm(FlaskForm):
    section = HiddenField(validators=[DataRequired()])
    action = HiddenField(validators=[DataRequired()])
    on = DateField(validators=[DataRequired()])
    form = SelectField(choices=[], validators=[Optional()])


class DeregisterForm(FlaskForm):
    leave_date = DateField(validators=[DataRequired()])
    reason = SelectField(choices=[], validators=[DataRequired()])


@bp.route("/member/<int:membership_id>")
@login_required
def member(membership_id: int):
    rt = _rt()
    with rt.uow() as uow:
        membership = _member_or_404(uow, membership_id, audit_view=True)
        uow.commit()
        db_session = uow.session
        current = services.current_consents(db_session, membership.person_id)
        history = services.consent_history(db_session, membership.person_id)
        consent_forms = {}
        for section in d.ConsentSection:
            f = ConsentForm(prefix=section.value)
            f.section.data = section.value
            f.action.data = "withdraw" if section in current else "give"
            f.on.data = clock.today()
            f.form.choices = _choices(d.CONSENT_FORM_LABELS)
            consent_forms[section.value] = f
        deregister = DeregisterForm()
        deregister.reason.choices = _choices(d.LEAVE_REASON_LABELS)
        deregister.leave_date.data = clock.today()
        org = membership.organisation
        from unioncard.issuer import services as card_services

        member_cards = card_services.cards_of_members(db_session, [membership.id]).get(membership.id, [])
        return render_template(
            "registry/member.html", m=membership, p=membership.person, org=org, current=current, history=history,
            consent_forms=consent_forms, deregister=deregister, sections=list(d.ConsentSection),
            breadcrumbs=_ancestors(db_session, org), member_cards=member_cards,
            can_edit=_actor().can(d.Permission.EDIT_MEMBERS) and membership.is_active,
            can_order=_actor().can(d.Permission.ORDER_CARDS) and membership.is_active,
        )


@bp.route("/member/<int:membership_id>/edit", methods=["GET", "POST"])
@login_required
def member_edit(membership_id: int):
    rt = _rt()
    form = MemberForm().fill_choices()
    with rt.uow() as uow:
        membership = _member_or_404(uow, membership_id)
        if not _actor().can(d.Permission.EDIT_MEMBERS) or not membership.is_active:
            abort(404)
        if request.method == "GET":
            p = membership.person
            form.process(data=dict(surname=p.surname, given_name=p.given_name, patronymic=p.patronymic,
                                   birth_date=p.birth_date, sex=p.sex or "", phone=p.phone, email=p.email,
                                   category=membership.category, join_date=membership.join_date))
        if form.validate_on_submit():
            try:
                services.update_member(uow, _actor(), membership.id, form.person(), category=form.category.data,
                                       join_date=form.join_date.data)
                uow.commit()
            except UnionCardError as exc:
                uow.rollback()
                _show_error(form, exc)
            else:
                flash(_("Changes saved"), "success")
                return redirect(url_for(".member", membership_id=membership_id))
        org = uow.session.get(Organisation, membership.organisation_id)
        return render_template("registry/member_form.html", form=form, org=org, membership=membership,
                               breadcrumbs=_ancestors(uow.session, org))


@bp.route("/member/<int:membership_id>/consent", methods=["POST"])
@login_required
def member_consent(membership_id: int):
    section = request.form.get("section_key", "")
    if section not in set(d.ConsentSection):
        abort(404)
    form = ConsentForm(prefix=section)
    form.form.choices = _choices(d.CONSENT_FORM_LABELS)
    with _rt().uow() as uow:
        membership = _member_or_404(uow, membership_id)
        if not form.validate_on_submit() or form.section.data != section:
            flash(_("Enter a correct date"), "error")
            return redirect(url_for(".member", membership_id=membership_id))
        try:
            if form.action.data == "give":
                services.give_consent(uow, _actor(), membership.id, section, form.on.data,
                                      form.form.data or d.ConsentForm.PAPER)
            else:
                services.withdraw_consent(uow, _actor(), membership.id, section, form.on.data)
            uow.commit()
        except PermissionDenied:
            abort(404)
        except UnionCardError as exc:
            flash(exc.render(), "error")
        else:
            flash(_("Consent recorded") if form.action.data == "give" else _("Consent withdrawn"), "success")
    return redirect(url_for(".member", membership_id=membership_id))


@bp.route("/member/<int:membership_id>/deregister", methods=["POST"])
@login_required
def member_deregister(membership_id: int):
    form = DeregisterForm()
    form.reason.choices = _choices(d.LEAVE_REASON_LABELS)
    with _rt().uow() as uow:
        membership = _member_or_404(uow, membership_id)
        if not form.validate_on_submit():
            flash(_("Enter a correct date"), "error")
            return redirect(url_for(".member", membership_id=membership_id))
        try:
            services.deregister_member(uow, _actor(), membership.id, form.leave_date.data, form.reason.data)
            uow.commit()
        except PermissionDenied:
            abort(404)
        except UnionCardError as exc:
            flash(exc.render(), "error")
        else:
            flash(_("The member has been deregistered"), "success")
    return redirect(url_for(".member", membership_id=membership_id))


# --- import and export -------------------------------------------------------------------------

class ImportForm(FlaskForm):
    file = FileField(validators=[FileRequired()])
    transfer = BooleanField()


class ConfirmImportForm(FlaskForm):
    token = HiddenField(validators=[DataRequired()])


def _uploads() -> PendingUploads:
    settings = _rt().settings
    return PendingUploads(settings.instance_dir / "uploads", settings.upload_ttl_minutes * 60)


def _pending(organisation_id: int) -> dict | None:
    pending = session.get("pending_import")
    if not pending or pending.get("org") != organisation_id or pending.get("user") != current_user.id:
        return None
    return pending


@bp.route("/org/<int:organisation_id>/import", methods=["GET", "POST"])
@login_required
def import_members(organisation_id: int):
    form = ImportForm()
    with _rt().uow() as uow:
        org = _org_or_404(uow.session, organisation_id)
        if not _actor().can(d.Permission.EDIT_MEMBERS) or d.Level(org.level) not in services.MEMBER_LEVELS:
            abort(404)
        plan, confirm = None, None
        if form.validate_on_submit():
            upload = form.file.data
            content = upload.read()
            name = Path(upload.filename or "file").name[:200]
            plan = importer.plan_import(uow.session, _actor(), org.id, content, name, transfer=form.transfer.data)
            if not plan.errors and plan.has_changes:
                previous = session.get("pending_import") or {}
                token = _uploads().put(content, replacing=previous.get("token"))
                session["pending_import"] = {"org": org.id, "user": current_user.id, "token": token, "name": name,
                                             "transfer": bool(form.transfer.data), "sha256": plan.sha256}
                confirm = ConfirmImportForm(token=token)
        return render_template("registry/import.html", form=form, org=org, plan=plan, confirm=confirm,
                               headers=importer.HEADERS, breadcrumbs=_ancestors(uow.session, org))


@bp.route("/org/<int:organisation_id>/import/confirm", methods=["POST"])
@login_required
def import_confirm(organisation_id: int):
    form = ConfirmImportForm()
    with _rt().uow() as uow:
        org = _org_or_404(uow.session, organisation_id)
        if not _actor().can(d.Permission.EDIT_MEMBERS) or d.Level(org.level) not in services.MEMBER_LEVELS:
            abort(404)
        pending = _pending(organisation_id)
        if not form.validate_on_submit() or pending is None or pending["token"] != form.token.data:
            flash(_("Upload the file again: the preview is no longer valid"), "error")
            return redirect(url_for(".import_members", organisation_id=organisation_id))
        content = _uploads().get(pending["token"])
        if content is None:
            session.pop("pending_import", None)
            flash(_("Upload the file again: the preview is no longer valid"), "error")
            return redirect(url_for(".import_members", organisation_id=organisation_id))
        # Planned again: someone may have changed the register since the preview.
        plan = importer.plan_import(uow.session, _actor(), org.id, content, pending["name"],
                                    transfer=pending["transfer"])
        if plan.errors or plan.sha256 != pending["sha256"]:
            return render_template("registry/import.html", form=ImportForm(), org=org, plan=plan, confirm=None,
                                   headers=importer.HEADERS, breadcrumbs=_ancestors(uow.session, org))
        try:
            importer.apply_import(uow, _actor(), plan)
            uow.commit()
        except UnionCardError as exc:
            flash(exc.render(), "error")
            return redirect(url_for(".import_members", organisation_id=organisation_id))
    session.pop("pending_import", None)
    _uploads().discard(pending["token"])
    flash(_("Imported: %(created)s added, %(updated)s changed, %(unchanged)s unchanged",
            created=plan.count("create") + plan.count("transfer"), updated=plan.count("update"),
            unchanged=plan.count("unchanged")), "success")
    return redirect(url_for(".members", organisation_id=organisation_id))


@bp.route("/org/<int:organisation_id>/export.xlsx")
@login_required
def export_members(organisation_id: int):
    import io

    from unioncard.checkin_web.jobs_views import EXPORT_DIRECT_MAX

    with _rt().uow() as uow:
        org = _org_or_404(uow.session, organisation_id)
        try:
            if importer.count_for_export(uow.session, _actor(), org.id) > EXPORT_DIRECT_MAX:
                # Too long for one request: the organisation's page starts it as a job instead.
                flash(_("A list this long is prepared in the background: press «Export to Excel» and wait "
                        "for the file on its page"), "info")
                return redirect(url_for(".organisation", organisation_id=org.id))
            content = importer.export_members(uow, _actor(), org.id)
        except NotFound:
            abort(404)
        uow.commit()
    return send_file(io.BytesIO(content), as_attachment=True,
                     download_name=f"members-{org.code}-{clock.today():%Y%m%d}.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@bp.route("/import-template.xlsx")
@login_required
def import_template():
    import io

    from unioncard.tables import write_xlsx

    example = ["Иванова", "Мария", "Петровна", "17.05.1980", "ж", "работающий", "+7 918 000-00-00", "",
               "01.09.2015", "да", "нет", "да", "01.09.2015", "бумажная"]
    return send_file(io.BytesIO(write_xlsx(importer.HEADERS, [example])), as_attachment=True,
                     download_name="members-template.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
