"""The exchange format of the move from the union's earlier registry (АИС), as plain rules.

One folder of UTF-8 CSV files (docs/migration.md): organisations, members, consents, cards and
positions. This module knows the files, their columns and what a valid cell is, and turns one row
into a typed record or a list of problems; it touches no database and no file. The checks that
need more than one row (orphans, duplicates, cards of unknown members) are in ``staging``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from unioncard.errors import UnionCardError
from unioncard.i18n import N_
from unioncard.issuer import cardnumber
from unioncard.issuer.domain import ACTIVE, CardKind, CardStatus
from unioncard.registry import domain as rd
from unioncard.statistics.domain import PositionKind

ORGANISATIONS, MEMBERS, CONSENTS, CARDS, POSITIONS = "organisations", "members", "consents", "cards", "positions"


@dataclass(frozen=True)
class FileSpec:
    kind: str
    name: str
    columns: tuple[str, ...]
    required: tuple[str, ...]


FILES: dict[str, FileSpec] = {spec.kind: spec for spec in (
    FileSpec(ORGANISATIONS, "organisations.csv",
             ("code", "parent_code", "level", "name", "kind", "region", "inn", "added_on"),
             ("code", "level", "name")),
    FileSpec(MEMBERS, "members.csv",
             ("member_id", "organisation_code", "surname", "given_name", "patronymic", "birth_date", "sex",
              "category", "joined", "phone", "email"),
             ("member_id", "organisation_code", "surname", "given_name", "birth_date", "category", "joined")),
    FileSpec(CONSENTS, "consents.csv", ("member_id", "section", "given_on", "form"),
             ("member_id", "section", "given_on", "form")),
    FileSpec(CARDS, "cards.csv", ("number", "member_id", "kind", "status", "ordered_on", "status_on"),
             ("number", "member_id", "kind", "status", "ordered_on", "status_on")),
    FileSpec(POSITIONS, "positions.csv", ("organisation_code", "member_id", "position", "starts_on", "ends_on"),
             ("organisation_code", "member_id", "position", "starts_on")),
)}
# Read in this order: each file's rows refer only to files read before it.
ORDER = (ORGANISATIONS, MEMBERS, CONSENTS, CARDS, POSITIONS)

MAX_CELL = 300          # characters in one cell (the longest column, an organisation's name)
MAX_ID_LENGTH = 64      # a member id of the earlier registry
MAX_CODE_LENGTH = 32    # an organisation code (the registry's column)
EARLIEST = date(1900, 1, 1)

CODE_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._/\-]*$")
REGION_PATTERN = re.compile(r"^[0-9]{2}$")
DATE_PATTERN = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

# Words the earlier registry may write, besides our own codes (case and ё/е do not matter).
LEVEL_WORDS = {"центральная": rd.Level.CENTRAL, "региональная": rd.Level.REGIONAL,
               "межрегиональная": rd.Level.REGIONAL, "территориальная": rd.Level.TERRITORIAL,
               "местная": rd.Level.TERRITORIAL, "первичная": rd.Level.PRIMARY,
               "структурное подразделение": rd.Level.SUBDIVISION}
KIND_WORDS = {"работников": rd.OrgKind.WORKERS, "студентов": rd.OrgKind.STUDENTS,
              "объединенная": rd.OrgKind.JOINT}
SEX_WORDS = {"м": rd.Sex.MALE, "муж": rd.Sex.MALE, "мужской": rd.Sex.MALE,
             "ж": rd.Sex.FEMALE, "жен": rd.Sex.FEMALE, "женский": rd.Sex.FEMALE}
CATEGORY_WORDS = {"работающий": rd.Category.WORKING, "обучающийся": rd.Category.STUDENT,
                  "неработающий пенсионер": rd.Category.PENSIONER, "пенсионер": rd.Category.PENSIONER,
                  "временно не работающий": rd.Category.UNEMPLOYED}
SECTION_WORDS = {"1": rd.ConsentSection.PROCESSING, "2": rd.ConsentSection.PARTNER_TRANSFER,
                 "3": rd.ConsentSection.MESSAGING}
FORM_WORDS = {"бумажная": rd.ConsentForm.PAPER, "электронная": rd.ConsentForm.ELECTRONIC}
KIND_OF_CARD_WORDS = {"пластиковая": CardKind.PLASTIC, "виртуальная": CardKind.VIRTUAL}
# The card statuses as the union says them (Table 3 and the earlier registry's screens).
STATUS_WORDS = {"заказан": CardStatus.ORDERED, "одобрен": CardStatus.APPROVED,
                "в производстве": CardStatus.IN_PRODUCTION, "изготовлен": CardStatus.PRODUCED,
                "отправлен": CardStatus.SHIPPED, "доставлен": CardStatus.DELIVERED, "выдан": CardStatus.ISSUED,
                "отказ": CardStatus.REFUSED, "утерян": CardStatus.LOST, "украден": CardStatus.STOLEN,
                "поврежден": CardStatus.DAMAGED, "заблокирован": CardStatus.BLOCKED, "отозван": CardStatus.REVOKED,
                "аннулирован": CardStatus.CANCELLED, "отклонен": CardStatus.REJECTED, "испорчен": CardStatus.VOID}
POSITION_WORDS = {"председатель": PositionKind.CHAIRPERSON}


CELL_REQUIRED = N_("The column “%(column)s” must be filled in")


class Problem(UnionCardError):
    """One defect of one row (or one file): a stable code, a Russian message, the column."""

    def __init__(self, message: str, *, code: str, column: str | None = None, **params):
        if column is not None:
            params.setdefault("column", column)
        super().__init__(message, code=code, **params)
        self.column = column


# The coded columns hold a handful of distinct values each: their normal form is looked up once.
_search_key = lru_cache(maxsize=4096)(rd.search_key)


_LOOKUPS: dict = {}


def _word(value: str, words: dict, enum_type, column: str, message: str, code: str):
    lookup = _LOOKUPS.get(id(words))
    if lookup is None:
        lookup = _LOOKUPS[id(words)] = {**{member.value: member for member in enum_type}, **words}
    found = lookup.get(_search_key(value) if len(value) <= 40 else rd.search_key(value))
    if found is None:
        raise Problem(message, code=code, column=column, value=value)
    return found


def _date(value: str, column: str, today: date, *, required: bool = True) -> date | None:
    if not value:
        if required:
            raise Problem(CELL_REQUIRED, code="cell_required", column=column)
        return None
    if not DATE_PATTERN.match(value):
        raise Problem(N_("“%(value)s” is not a date: write it as YYYY-MM-DD"), code="date_invalid", column=column,
                      value=value)
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise Problem(N_("There is no such day as %(value)s"), code="date_impossible", column=column,
                      value=value) from None
    if parsed < EARLIEST or parsed > today:
        raise Problem(N_("The date %(value)s is impossible (before 1900 or after today)"), code="date_impossible",
                      column=column, value=value)
    return parsed


def _identifier(value: str, column: str, limit: int = MAX_ID_LENGTH) -> str:
    if len(value) > limit or not CODE_PATTERN.match(value):
        raise Problem(N_("“%(value)s” is not a code: Latin letters, digits, dots, underscores, slashes and hyphens, "
                         "up to %(limit)s"), code="code_invalid", column=column, value=value[:80], limit=limit)
    return value


def _org_code(value: str, column: str) -> str:
    return _identifier(value, column, MAX_CODE_LENGTH)


@dataclass(frozen=True, slots=True)
class OrganisationRow:
    code: str
    parent_code: str | None
    level: str
    name: str
    kind: str | None
    region: str | None
    inn: str | None
    added_on: date | None


@dataclass(frozen=True, slots=True)
class MemberRow:
    member_id: str
    organisation_code: str
    surname: str
    given_name: str
    patronymic: str | None
    birth_date: date
    sex: str | None
    category: str
    joined: date
    phone: str | None
    email: str | None

    @property
    def identity_key(self) -> str:
        return rd.identity_key(self.surname, self.given_name, self.patronymic, self.birth_date)


@dataclass(frozen=True, slots=True)
class ConsentRow:
    member_id: str
    section: str
    given_on: date
    form: str


@dataclass(frozen=True, slots=True)
class CardRow:
    number: str
    member_id: str
    kind: str
    status: str
    ordered_on: date
    status_on: date

    @property
    def is_active(self) -> bool:
        return CardStatus(self.status) in ACTIVE


@dataclass(frozen=True, slots=True)
class PositionRow:
    organisation_code: str
    member_id: str
    position: str
    starts_on: date
    ends_on: date | None


def _collect(parsers) -> tuple[dict, list[Problem]]:
    """Run each (name, thunk) and gather every problem, so a row's defects are named together."""
    values, problems = {}, []
    for name, thunk in parsers:
        try:
            values[name] = thunk()
        except Problem as problem:
            problems.append(problem)
        except UnionCardError as exc:  # a registry rule's own error, with its field as the column
            problems.append(Problem(exc.message, code=exc.code, column=exc.params.get("field") or name,
                                    **{k: v for k, v in exc.params.items() if k != "field"}))
    return values, problems


def parse_organisation(cells: dict[str, str], today: date) -> tuple[OrganisationRow | None, list[Problem]]:
    values, problems = _collect([
        ("code", lambda: _org_code(cells["code"], "code")),
        ("parent_code", lambda: _org_code(cells["parent_code"], "parent_code") if cells["parent_code"] else None),
        ("level", lambda: _word(cells["level"], LEVEL_WORDS, rd.Level, "level", N_(
            "Unknown level “%(value)s”: central, regional, territorial, primary or subdivision"),
            "level_unknown")),
        ("name", lambda: _text(cells["name"], "name")),
        ("kind", lambda: _word(cells["kind"], KIND_WORDS, rd.OrgKind, "kind", N_(
            "Unknown kind of organisation “%(value)s”: workers, students or joint"), "org_kind_unknown")
         if cells["kind"] else None),
        ("region", lambda: _region(cells["region"])),
        ("inn", lambda: rd.validate_inn(cells["inn"])),
        ("added_on", lambda: _date(cells["added_on"], "added_on", today, required=False)),
    ])
    if problems:
        return None, problems
    row = OrganisationRow(**values)
    if row.level == rd.Level.CENTRAL and row.parent_code:
        problems.append(Problem(N_("The central organisation has no parent"), code="central_has_parent",
                                column="parent_code"))
    elif row.level != rd.Level.CENTRAL and not row.parent_code:
        problems.append(Problem(N_("Every organisation but the central one names its parent"),
                                code="parent_required", column="parent_code"))
    if row.level == rd.Level.REGIONAL and not row.region:
        problems.append(Problem(N_("A regional organisation has its two-digit region code"), code="region_required",
                                column="region"))
    return (None, problems) if problems else (row, [])


def placeholder_organisation(cells: dict[str, str]) -> OrganisationRow | None:
    """For a refused row: what can be told of its place in the tree (its code, its parent, its
    level and region when those cells are right), or None when even its code is not one."""
    def safe(parse):
        try:
            return parse()
        except UnionCardError:
            return None

    code = safe(lambda: _org_code(cells.get("code", ""), "code"))
    if code is None:
        return None
    return OrganisationRow(
        code, safe(lambda: _org_code(cells.get("parent_code", ""), "parent_code")),
        safe(lambda: _word(cells.get("level", ""), LEVEL_WORDS, rd.Level, "level", "", "")) or "",
        cells.get("name", ""), None, safe(lambda: _region(cells.get("region", ""))), None, None)


def _text(value: str, column: str) -> str:
    if not value:
        raise Problem(CELL_REQUIRED, code="cell_required", column=column)
    return value


def _region(value: str) -> str | None:
    if not value:
        return None
    if not REGION_PATTERN.match(value) or value == "00":
        raise Problem(N_("“%(value)s” is not a region code: two digits, as in card numbers"), code="region_invalid",
                      column="region", value=value)
    return value


def parse_member(cells: dict[str, str], today: date) -> tuple[MemberRow | None, list[Problem]]:
    try:  # the common case, straight through; any problem and the row is read again to name them all
        name = rd.validate_person_name(cells["surname"], cells["given_name"], cells["patronymic"])
        row = MemberRow(
            _identifier(cells["member_id"], "member_id"), _org_code(cells["organisation_code"], "organisation_code"),
            name.surname, name.given_name, name.patronymic, _date(cells["birth_date"], "birth_date", today),
            _word(cells["sex"], SEX_WORDS, rd.Sex, "sex", "", "sex_unknown") if cells["sex"] else None,
            _word(cells["category"], CATEGORY_WORDS, rd.Category, "category", "", "category_unknown"),
            _date(cells["joined"], "joined", today), rd.validate_phone(cells["phone"]),
            rd.validate_email(cells["email"]))
        if row.joined >= row.birth_date:
            return row, []
    except UnionCardError:
        pass
    values, problems = _collect([
        ("member_id", lambda: _identifier(cells["member_id"], "member_id")),
        ("organisation_code", lambda: _org_code(cells["organisation_code"], "organisation_code")),
        ("name", lambda: rd.validate_person_name(cells["surname"], cells["given_name"], cells["patronymic"])),
        ("birth_date", lambda: _date(cells["birth_date"], "birth_date", today)),
        ("sex", lambda: _word(cells["sex"], SEX_WORDS, rd.Sex, "sex", N_("Unknown sex “%(value)s”: male or female"),
                              "sex_unknown") if cells["sex"] else None),
        ("category", lambda: _word(cells["category"], CATEGORY_WORDS, rd.Category, "category", N_(
            "Unknown category “%(value)s”: working, student, pensioner or unemployed"), "category_unknown")),
        ("joined", lambda: _date(cells["joined"], "joined", today)),
        ("phone", lambda: rd.validate_phone(cells["phone"])),
        ("email", lambda: rd.validate_email(cells["email"])),
    ])
    if problems:
        return None, problems
    name = values.pop("name")
    if values["joined"] < values["birth_date"]:
        return None, [Problem(N_("Joined %(value)s, before the birth date"), code="joined_before_birth",
                              column="joined", value=values["joined"].isoformat())]
    return MemberRow(surname=name.surname, given_name=name.given_name, patronymic=name.patronymic, **values), []


def parse_consent(cells: dict[str, str], today: date) -> tuple[ConsentRow | None, list[Problem]]:
    try:  # the common case; see parse_member
        return ConsentRow(_identifier(cells["member_id"], "member_id"),
                          _word(cells["section"], SECTION_WORDS, rd.ConsentSection, "section", "", ""),
                          _date(cells["given_on"], "given_on", today),
                          _word(cells["form"], FORM_WORDS, rd.ConsentForm, "form", "", "")), []
    except UnionCardError:
        pass
    values, problems = _collect([
        ("member_id", lambda: _identifier(cells["member_id"], "member_id")),
        ("section", lambda: _word(cells["section"], SECTION_WORDS, rd.ConsentSection, "section", N_(
            "Unknown consent section “%(value)s”: 1, 2 or 3"), "section_unknown")),
        ("given_on", lambda: _date(cells["given_on"], "given_on", today)),
        ("form", lambda: _word(cells["form"], FORM_WORDS, rd.ConsentForm, "form", N_(
            "Unknown consent form “%(value)s”: paper or electronic"), "consent_form_unknown")),
    ])
    return (None, problems) if problems else (ConsentRow(**values), [])


def _number(value: str, prefixes: tuple[str, ...]) -> str:
    try:
        return cardnumber.validate(value, prefixes)
    except cardnumber.ValidationError as exc:
        raise Problem(exc.message, code=exc.code, column="number", **exc.params) from None


def parse_card(cells: dict[str, str], today: date, prefixes: tuple[str, ...]) -> tuple[CardRow | None, list[Problem]]:
    try:  # the common case; see parse_member
        row = CardRow(cardnumber.validate(cells["number"], prefixes), _identifier(cells["member_id"], "member_id"),
                      _word(cells["kind"], KIND_OF_CARD_WORDS, CardKind, "kind", "", ""),
                      _word(cells["status"], STATUS_WORDS, CardStatus, "status", "", ""),
                      _date(cells["ordered_on"], "ordered_on", today), _date(cells["status_on"], "status_on", today))
        if row.status_on >= row.ordered_on:
            return row, []
    except UnionCardError:
        pass
    values, problems = _collect([
        ("number", lambda: _number(cells["number"], prefixes)),
        ("member_id", lambda: _identifier(cells["member_id"], "member_id")),
        ("kind", lambda: _word(cells["kind"], KIND_OF_CARD_WORDS, CardKind, "kind", N_(
            "Unknown kind of card “%(value)s”: plastic or virtual"), "card_kind_unknown")),
        ("status", lambda: _word(cells["status"], STATUS_WORDS, CardStatus, "status", N_(
            "Unknown card status “%(value)s” (for example «Выдан» or «Отказ»)"), "card_status_unknown")),
        ("ordered_on", lambda: _date(cells["ordered_on"], "ordered_on", today)),
        ("status_on", lambda: _date(cells["status_on"], "status_on", today)),
    ])
    if problems:
        return None, problems
    if values["status_on"] < values["ordered_on"]:
        return None, [Problem(N_("The status date %(value)s is before the order date"), code="status_before_order",
                              column="status_on", value=values["status_on"].isoformat())]
    return CardRow(**values), []


def parse_position(cells: dict[str, str], today: date) -> tuple[PositionRow | None, list[Problem]]:
    values, problems = _collect([
        ("organisation_code", lambda: _org_code(cells["organisation_code"], "organisation_code")),
        ("member_id", lambda: _identifier(cells["member_id"], "member_id")),
        ("position", lambda: _word(cells["position"], POSITION_WORDS, PositionKind, "position", N_(
            "Unknown position “%(value)s” (for example chairperson)"), "position_unknown")),
        ("starts_on", lambda: _date(cells["starts_on"], "starts_on", today)),
        # A term of office may end in the future: the date is checked for shape and order only.
        ("ends_on", lambda: _date(cells["ends_on"], "ends_on", date.max, required=False)),
    ])
    if problems:
        return None, problems
    if values["ends_on"] is not None and values["ends_on"] <= values["starts_on"]:
        return None, [Problem(N_("The term must end after it starts"), code="term_dates_invalid", column="ends_on")]
    return PositionRow(**values), []


def formula_like(value: str) -> bool:
    """A cell a spreadsheet would run (CWE-1236): =…, @…, a tab or CR first, or + and - before
    something that is not a digit (a phone «+7 912…» is data)."""
    if not value:
        return False
    first = value[0]
    if first in "=@\t\r":
        return True
    return first in "+-" and len(value) > 1 and not value[1:2].isdigit()
