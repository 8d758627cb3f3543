"""Member list import and export for one primary organisation.

The import is all-or-nothing: the file is parsed and checked completely first (errors are
reported per row, with the spreadsheet's row numbers), then a plan says which members will be
added, which changed and which stay as they are; applying the plan is one transaction.
Importing the same file again finds every row unchanged and writes nothing.

Consent columns: «да» gives the consent (dated by «Дата согласия», else today), «нет» withdraws a
consent that was given, an empty cell leaves it as it is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from unioncard import clock
from unioncard.db import UnitOfWork
from unioncard.errors import UnionCardError, ValidationError
from unioncard.i18n import N_, translate
from unioncard.registry import audit, services
from unioncard.registry import domain as d
from unioncard.registry.actor import Actor
from unioncard.registry.models import ImportLog, Membership, Organisation, Person
from unioncard.tables import Sheet, cell_date, cell_text, read_table, write_xlsx

# Column keys and their Russian headers, in export order. Alternative spellings are accepted.
COLUMNS = [
    ("surname", "Фамилия", ()),
    ("given_name", "Имя", ()),
    ("patronymic", "Отчество", ()),
    ("birth_date", "Дата рождения", ()),
    ("sex", "Пол", ()),
    ("category", "Категория", ()),
    ("phone", "Телефон", ("мобильный телефон",)),
    ("email", "Эл. почта", ("e-mail", "email", "электронная почта")),
    ("join_date", "Дата вступления", ("дата вступления в профсоюз", "дата постановки на учет")),
    ("consent_processing", "Согласие 1: обработка", ("согласие на обработку",)),
    ("consent_partner_transfer", "Согласие 2: партнёр", ("согласие на передачу партнеру",)),
    ("consent_messaging", "Согласие 3: рассылки", ("согласие на рассылки",)),
    ("consent_date", "Дата согласия", ()),
    ("consent_form", "Форма согласия", ()),
]
REQUIRED = ("surname", "given_name", "birth_date", "category", "join_date")
HEADERS = [header for _, header, _ in COLUMNS]
CONSENT_COLUMNS = {
    "consent_processing": d.ConsentSection.PROCESSING,
    "consent_partner_transfer": d.ConsentSection.PARTNER_TRANSFER,
    "consent_messaging": d.ConsentSection.MESSAGING,
}

CATEGORY_WORDS = {
    "работающий": d.Category.WORKING, "работающая": d.Category.WORKING, "работник": d.Category.WORKING,
    "обучающийся": d.Category.STUDENT, "обучающаяся": d.Category.STUDENT, "студент": d.Category.STUDENT,
    "студентка": d.Category.STUDENT,
    "неработающий пенсионер": d.Category.PENSIONER, "неработающая пенсионерка": d.Category.PENSIONER,
    "пенсионер": d.Category.PENSIONER,
    "временно не работающий": d.Category.UNEMPLOYED, "временно неработающий": d.Category.UNEMPLOYED,
    "временно не работающая": d.Category.UNEMPLOYED,
}
CATEGORY_EXPORT = {
    d.Category.WORKING: "работающий", d.Category.STUDENT: "обучающийся",
    d.Category.PENSIONER: "неработающий пенсионер", d.Category.UNEMPLOYED: "временно не работающий",
}
SEX_WORDS = {"м": d.Sex.MALE, "муж": d.Sex.MALE, "мужской": d.Sex.MALE, "ж": d.Sex.FEMALE, "жен": d.Sex.FEMALE,
             "женский": d.Sex.FEMALE}
SEX_EXPORT = {d.Sex.MALE: "м", d.Sex.FEMALE: "ж"}
YES, NO = {"да", "1", "+", "yes", "есть"}, {"нет", "0", "-", "no"}
FORM_WORDS = {"бумажная": d.ConsentForm.PAPER, "бумага": d.ConsentForm.PAPER, "подпись": d.ConsentForm.PAPER,
              "электронная": d.ConsentForm.ELECTRONIC, "пэп": d.ConsentForm.ELECTRONIC}
FORM_EXPORT = {d.ConsentForm.PAPER: "бумажная", d.ConsentForm.ELECTRONIC: "электронная"}


def _header_key(text: str) -> str:
    return " ".join(d.search_key(text).replace(".", ". ").split()).replace(" :", ":")


_HEADER_INDEX = {}
for _key, _header, _aliases in COLUMNS:
    for _variant in (_header, *_aliases):
        _HEADER_INDEX[_header_key(_variant)] = _key


@dataclass
class RowError:
    row: int
    column: str | None
    message: str


@dataclass
class ImportRow:
    row: int
    person: services.PersonData
    category: str
    join_date: date
    consents: dict = field(default_factory=dict)  # section -> True (give) / False (withdraw)
    consent_date: date | None = None
    consent_form: str = d.ConsentForm.PAPER


@dataclass
class PlannedRow:
    row: ImportRow
    action: str  # "create", "update", "unchanged"
    membership_id: int | None = None
    changes: list[str] = field(default_factory=list)


@dataclass
class ImportPlan:
    organisation_id: int
    sha256: str
    file_name: str
    rows: list[PlannedRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)

    @property
    def has_changes(self) -> bool:
        return any(r.action != "unchanged" for r in self.rows)


def _error(row: int, column: str | None, exc_or_message, /, **params) -> RowError:
    # Positional-only: a message may itself have a %(row)s parameter.
    if isinstance(exc_or_message, UnionCardError):
        return RowError(row, column, exc_or_message.render())
    return RowError(row, column, translate(exc_or_message, **params))


def parse_rows(sheet: Sheet, today: date) -> tuple[list[ImportRow], list[RowError]]:
    errors: list[RowError] = []
    index: dict[str, int] = {}
    unknown = []
    for position, header in enumerate(sheet.headers):
        key = _HEADER_INDEX.get(_header_key(header))
        if key is None:
            if header:
                unknown.append(header)
        elif key in index:
            errors.append(_error(1, header, N_("The column “%(column)s” appears twice"), column=header))
        else:
            index[key] = position
    missing = [header for key, header, _ in COLUMNS if key in REQUIRED and key not in index]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(translate(N_("missing columns: %(columns)s"), columns=", ".join(missing)))
        if unknown:
            parts.append(translate(N_("unknown columns: %(columns)s"), columns=", ".join(unknown)))
        errors.append(RowError(1, None, translate(
            N_("Wrong column headers (%(details)s). Expected: %(expected)s. If the headers look right, the file may "
               "be in a wrong encoding."), details="; ".join(parts), expected=", ".join(HEADERS))))
        return [], errors

    rows: list[ImportRow] = []
    seen: dict[str, int] = {}
    for number, values in sheet.rows:
        def get(key):
            return values[index[key]] if key in index else None

        row_errors: list[RowError] = []

        def date_of(key, header):
            try:
                return cell_date(get(key))
            except ValueError as exc:
                row_errors.append(_error(number, header, N_("“%(value)s” is not a date (expected DD.MM.YYYY)"),
                                         value=str(exc)))
                return None

        birth_date = date_of("birth_date", "Дата рождения")
        join_date = date_of("join_date", "Дата вступления")
        consent_date = date_of("consent_date", "Дата согласия")
        for key, header, value in (("birth_date", "Дата рождения", birth_date), ("join_date", "Дата вступления", join_date)):
            if value is None and not any(e.column == header for e in row_errors):
                row_errors.append(_error(number, header, N_("The column “%(column)s” must be filled in"), column=header))

        category_text = d.search_key(cell_text(get("category")))
        category = CATEGORY_WORDS.get(category_text) or (category_text if category_text in set(d.Category) else None)
        if category is None:
            row_errors.append(_error(number, "Категория", N_(
                "Unknown category “%(value)s”: use работающий, обучающийся, неработающий пенсионер or временно не работающий"),
                value=cell_text(get("category"))))
        sex_text = d.search_key(cell_text(get("sex")))
        sex = SEX_WORDS.get(sex_text) if sex_text else None
        if sex_text and sex is None:
            row_errors.append(_error(number, "Пол", N_("Unknown sex “%(value)s”: use м or ж"), value=cell_text(get("sex"))))

        consents = {}
        for key, section in CONSENT_COLUMNS.items():
            text = d.search_key(cell_text(get(key)))
            if text in YES:
                consents[section] = True
            elif text in NO:
                consents[section] = False
            elif text:
                row_errors.append(_error(number, dict((k, h) for k, h, _ in COLUMNS)[key],
                                         N_("Write «да» or «нет» in consent columns, not “%(value)s”"), value=text))
        form_text = d.search_key(cell_text(get("consent_form")))
        form = FORM_WORDS.get(form_text, d.ConsentForm.PAPER if not form_text else None)
        if form is None:
            row_errors.append(_error(number, "Форма согласия", N_("Unknown consent form “%(value)s”: use бумажная or электронная"),
                                     value=form_text))
        if consent_date and consent_date > today:
            row_errors.append(_error(number, "Дата согласия", N_("The consent date is in the future")))

        person = services.PersonData(
            surname=cell_text(get("surname")), given_name=cell_text(get("given_name")),
            patronymic=cell_text(get("patronymic")) or None, birth_date=birth_date or today, sex=sex,
            phone=cell_text(get("phone")) or None, email=cell_text(get("email")) or None,
        )
        if birth_date is not None:
            try:
                person = person.validated(today)
            except UnionCardError as exc:
                row_errors.append(_error(number, None, exc))
        if birth_date and join_date and not row_errors:
            try:
                d.validate_membership_dates(birth_date, join_date, None, today)
            except UnionCardError as exc:
                row_errors.append(_error(number, None, exc))
        if not row_errors:
            key = person.identity_key
            if key in seen:
                row_errors.append(_error(number, None, N_("The same person is already in row %(row)s"), row=seen[key]))
            seen[key] = number
        if row_errors:
            errors.extend(row_errors)
            continue
        rows.append(ImportRow(number, person, category, join_date, consents, consent_date, form))
    if not rows and not errors:
        errors.append(RowError(1, None, translate(N_("The file has no member rows"))))
    return rows, errors


def plan_import(session: Session, actor: Actor, organisation_id: int, content: bytes, file_name: str,
                *, transfer: bool = False, today: date | None = None) -> ImportPlan:
    today = today or clock.today()
    org = services.get_organisation(session, actor, organisation_id)
    plan = ImportPlan(org.id, hashlib.sha256(content).hexdigest(), file_name)
    if d.Level(org.level) not in services.MEMBER_LEVELS:
        plan.errors.append(RowError(0, None, translate(N_("Members are registered only in primary organisations and their subdivisions"))))
        return plan
    try:
        sheet = read_table(content, file_name)
    except ValidationError as exc:
        plan.errors.append(RowError(0, None, exc.render()))
        return plan
    rows, plan.errors = parse_rows(sheet, today)
    people = services.people_by_identity(session, [row.person.identity_key for row in rows])
    memberships = services.active_memberships_of(session, [p.id for p in people.values()])
    consents = services.current_consents_of(session, [p.id for p in people.values()])
    other_orgs = {org.id: org for org in session.scalars(select(Organisation).where(Organisation.id.in_(
        {m.organisation_id for m in memberships.values() if m.organisation_id != organisation_id})))}
    for row in rows:
        person = people.get(row.person.identity_key)
        membership = memberships.get(person.id) if person else None
        if membership is not None and membership.organisation_id != org.id:
            if not actor.sees(membership.org_path):
                plan.errors.append(RowError(row.row, None, translate(services.REGISTERED_OUTSIDE_SCOPE)))
                continue
            if transfer:
                plan.rows.append(PlannedRow(row, "transfer", membership.id))
                continue
            other = other_orgs[membership.organisation_id]
            plan.errors.append(RowError(row.row, None, translate(
                N_("This person is already registered in another primary organisation: “%(name)s” (code %(org_code)s). "
                   "A person can be registered in only one organisation; transfer them instead."),
                name=other.name, org_code=other.code)))
            continue
        if membership is None:
            plan.rows.append(PlannedRow(row, "create"))
            continue
        changes = _differences(person, membership, consents.get(person.id, {}), row)
        plan.rows.append(PlannedRow(row, "update" if changes else "unchanged", membership.id, changes))
    return plan


def _differences(person, membership: Membership, current: dict, row: ImportRow) -> list[str]:
    changes = []
    for field_name in ("sex", "phone", "email"):
        new = getattr(row.person, field_name)
        if new is not None and getattr(person, field_name) != new:
            changes.append(field_name)
    if membership.category != row.category:
        changes.append("category")
    if membership.join_date != row.join_date:
        changes.append("join_date")
    for section, wanted in row.consents.items():
        if wanted != (section in current):
            changes.append(f"consent_{section}")
    return changes


def apply_import(uow: UnitOfWork, actor: Actor, plan: ImportPlan, today: date | None = None) -> ImportLog | None:
    """Apply a checked plan in the unit of work's transaction. Raises if the plan has errors."""
    if plan.errors:
        raise ValidationError(N_("The file has errors and nothing was imported"), code="import_has_errors")
    if not plan.has_changes:
        return None
    today = today or clock.today()
    session = uow.session
    # New people, usually nearly the whole file the first time, go in a few bulk statements.
    services.register_new_members(uow, actor, plan.organisation_id, [
        services.NewMember(planned.row.person, planned.row.category, planned.row.join_date, tuple(
            (section, planned.row.consent_date or today, planned.row.consent_form)
            for section, wanted in planned.row.consents.items() if wanted))
        for planned in plan.rows if planned.action == "create"], today=today)
    for planned in plan.rows:
        row = planned.row
        if planned.action == "transfer":
            membership = services.register_member(uow, actor, plan.organisation_id, row.person, category=row.category,
                                                  join_date=row.join_date, transfer=True, today=today)
        elif planned.action == "update":
            membership = session.get(Membership, planned.membership_id)
            person = membership.person
            merged = services.PersonData(**{f: getattr(row.person, f) if getattr(row.person, f) is not None
                                            else getattr(person, f) for f in services.PERSON_FIELDS})
            services.update_member(uow, actor, membership.id, merged, category=row.category, join_date=row.join_date,
                                   today=today)
        else:
            continue
        current = services.current_consents(session, membership.person_id)
        for section, wanted in row.consents.items():
            if wanted and section not in current:
                services.give_consent(uow, actor, membership.id, section, row.consent_date or today, row.consent_form)
            elif not wanted and section in current:
                services.withdraw_consent(uow, actor, membership.id, section, max(today, current[section].given_on))
    log = ImportLog(organisation_id=plan.organisation_id, user_id=actor.user_id, file_name=plan.file_name[:255],
                    sha256=plan.sha256, rows=len(plan.rows), created=plan.count("create") + plan.count("transfer"),
                    updated=plan.count("update"), unchanged=plan.count("unchanged"), at=clock.now())
    session.add(log)
    session.flush()
    audit.record(session, actor, "member.import", "import", log.id, plan.organisation_id, file=plan.file_name,
                 sha256=plan.sha256, created=log.created, updated=log.updated, unchanged=log.unchanged)
    return log


EXPORT_CHUNK = 2000


def _export_organisation(session: Session, actor: Actor, organisation_id: int) -> Organisation:
    org = services.get_organisation(session, actor, organisation_id)
    if not actor.can(d.Permission.VIEW_MEMBERS):
        raise services.NotFound(N_("Organisation not found"), code="organisation_not_found")
    return org


def count_for_export(session: Session, actor: Actor, organisation_id: int) -> int:
    org = _export_organisation(session, actor, organisation_id)
    return session.scalar(select(func.count()).select_from(Membership).where(
        Membership.org_path.like(org.path + "%"), Membership.is_active))


def export_rows(session: Session, org: Organisation, chunk: int = EXPORT_CHUNK, on_chunk=None):
    """The subtree's current members as rows of the import's columns, sorted by name, read in
    chunks by the sort key (keyset) with each chunk's people and consents in one query each: a
    region of 400 000 members streams in the memory of one chunk. ``on_chunk(rows_so_far)``
    after each chunk (progress)."""
    conditions = [Membership.org_path.like(org.path + "%"), Membership.is_active]
    key = tuple_(*services.MEMBER_ORDER)
    last, written = None, 0
    while True:
        statement = (select(Membership, Person).join(Person, Person.id == Membership.person_id)
                     .where(*conditions, *([key > tuple_(*last)] if last else []))
                     .order_by(*services.MEMBER_ORDER).limit(chunk))
        batch = session.execute(statement).all()
        if not batch:
            return
        consents_of = services.current_consents_of(session, [person.id for _m, person in batch])
        for membership, person in batch:
            consents = consents_of.get(person.id, {})
            first = min(consents.values(), key=lambda c: c.given_on) if consents else None
            yield [
                person.surname, person.given_name, person.patronymic or "",
                person.birth_date.strftime("%d.%m.%Y"), SEX_EXPORT.get(person.sex, ""),
                CATEGORY_EXPORT[d.Category(membership.category)], person.phone or "", person.email or "",
                membership.join_date.strftime("%d.%m.%Y"),
                *["да" if section in consents else "нет" for section in CONSENT_COLUMNS.values()],
                first.given_on.strftime("%d.%m.%Y") if first else "",
                FORM_EXPORT[d.ConsentForm(first.form)] if first else "",
            ]
        written += len(batch)
        last = (batch[-1][0].sort_name, batch[-1][0].id)
        session.expunge_all()  # what was written is not kept: memory stays that of one chunk
        if on_chunk:
            on_chunk(written)


def export_members(uow: UnitOfWork, actor: Actor, organisation_id: int) -> bytes:
    """The organisation subtree's current members, in the import's columns; audited as a view."""
    session = uow.session
    org = _export_organisation(session, actor, organisation_id)
    content = write_xlsx(HEADERS, export_rows(session, org))
    audit.record(session, actor, "member.export", "organisation", org.id, org.id)
    return content


def export_members_to(uow: UnitOfWork, actor: Actor, organisation_id: int, path, on_chunk=None) -> int:
    """The same export written to the file ``path`` (a job's: never whole in memory); the count."""
    from unioncard.tables import Table, write_tables_to

    session = uow.session
    org = _export_organisation(session, actor, organisation_id)
    counted = []
    write_tables_to(path, Table(list(HEADERS), export_rows(
        session, org, on_chunk=lambda n: (counted.append(n), on_chunk and on_chunk(n)))))
    audit.record(session, actor, "member.export", "organisation", org.id, org.id)
    return counted[-1] if counted else 0
