"""The union's statistical forms as plain rules (seed 004, «Разъяснения по заполнению форм»).

Form 2 is a primary organisation's yearly report (Table II, «Профсоюзное членство»). Form 7
consolidates the Form 2s below a territorial, regional or central organisation (Table II by
institution type, Table III «Профсоюзные кадры и актив» from the activists registry). This module
knows the rows, where each figure comes from, the derived rows, the cross-checks with the rows they
name, and the campaign's states. It imports no database and no web code: services feed it counts.

A figure is addressed by (row, column): Form 2 columns are ``total`` (графа 3), ``women`` (4) and
``youth`` (5, under 35 on the report date).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from unioncard.errors import Conflict, ValidationError
from unioncard.i18n import N_

TOTAL, WOMEN, YOUTH = "total", "women", "youth"
FORM2_COLUMNS = (TOTAL, WOMEN, YOUTH)
YOUTH_AGE = 35  # «молодёжь до 35 лет»


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def youth_cutoff(on: date) -> date:
    """People born after this day are under 35 on ``on``."""
    return _years_before(on, YOUTH_AGE)


def report_date(year: int, today: date) -> date:
    """A year's figures stand on 31 December; a year still running is reported as of today."""
    return min(date(year, 12, 31), today)


class Source(StrEnum):
    PASSPORT = "passport"   # the organisation's passport: what no registry of members knows
    REGISTRY = "registry"   # counted from the members registry
    DERIVED = "derived"     # computed from other rows of the form; never typed


@dataclass(frozen=True)
class Row:
    code: str
    label: str
    source: Source
    columns: tuple[str, ...] = FORM2_COLUMNS
    percent: bool = False


FORM2_ROWS: tuple[Row, ...] = (
    Row("1", N_("Employees in total (without part-timers)"), Source.PASSPORT),
    Row("2", N_("of them union members"), Source.REGISTRY),
    Row("3", N_("including admitted to the union for the first time this year"), Source.REGISTRY),
    Row("4", N_("Students of educational institutions in total"), Source.PASSPORT),
    Row("5", N_("of them union members"), Source.REGISTRY),
    Row("6", N_("including admitted to the union for the first time this year"), Source.REGISTRY),
    Row("7", N_("Employees and students in total"), Source.DERIVED),
    Row("8", N_("of them union members"), Source.DERIVED),
    Row("9", N_("Share of employees and students in the union (per cent)"), Source.DERIVED, percent=True),
    Row("10", N_("Union members: non-working pensioners"), Source.REGISTRY, (TOTAL, WOMEN)),
    Row("11", N_("Union members: temporarily not working"), Source.REGISTRY, (TOTAL, WOMEN)),
    Row("12", N_("Union members in total"), Source.DERIVED),
    Row("13", N_("Left the union of their own wish"), Source.REGISTRY, (TOTAL,)),
    Row("14", N_("Expelled from the union"), Source.REGISTRY, (TOTAL,)),
)
FORM2_ROW = {row.code: row for row in FORM2_ROWS}

Figures = dict[tuple[str, str], "int | float | None"]


# --- where the registry's counts go ----------------------------------------------------------

@dataclass
class MemberCounts:
    """What the registry knows of one primary organisation for a report date; filled by a query."""

    # (category, women?, youth?, first time this year?) → members on the report date
    members: dict[tuple[str, bool, bool, bool], int] = field(default_factory=dict)
    left_own_wish: int = 0
    expelled: int = 0

    def add(self, category: str, female: bool, youth: bool, first_time: bool, count: int) -> None:
        key = (category, bool(female), bool(youth), bool(first_time))
        self.members[key] = self.members.get(key, 0) + count

    def count(self, category: str, *, column: str = TOTAL, first_time_only: bool = False) -> int:
        return sum(n for (cat, female, youth, first), n in self.members.items()
                   if cat == category and (not first_time_only or first)
                   and (column == TOTAL or (column == WOMEN and female) or (column == YOUTH and youth)))


@dataclass(frozen=True)
class Headcount:
    """The passport's figures for Form 2 rows 1 and 4 (None: not filled in)."""

    employees: tuple[int | None, int | None, int | None] = (None, None, None)
    students: tuple[int | None, int | None, int | None] = (None, None, None)


def registry_figures(counts: MemberCounts, headcount: Headcount) -> Figures:
    """Form 2's source rows, before corrections: the passport's rows 1 and 4, the registry's rest."""
    working, student = "working", "student"
    figures: Figures = {}
    for index, column in enumerate(FORM2_COLUMNS):
        figures[("1", column)] = headcount.employees[index]
        figures[("4", column)] = headcount.students[index]
        figures[("2", column)] = counts.count(working, column=column)
        figures[("3", column)] = counts.count(working, column=column, first_time_only=True)
        figures[("5", column)] = counts.count(student, column=column)
        figures[("6", column)] = counts.count(student, column=column, first_time_only=True)
    for column in (TOTAL, WOMEN):
        figures[("10", column)] = counts.count("pensioner", column=column)
        figures[("11", column)] = counts.count("unemployed", column=column)
    figures[("13", TOTAL)] = counts.left_own_wish
    figures[("14", TOTAL)] = counts.expelled
    return figures


def _sum(*values):
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def percent(part, whole) -> float | None:
    """Row 9: row 8 / row 7 × 100, one decimal, as the seed prints it (87,5 %)."""
    if part is None or not whole:
        return None
    return round(100 * part / whole, 1)


def complete_form2(figures: Figures) -> Figures:
    """Add the derived rows: 7 = 1 + 4, 8 = 2 + 5, 9 = 8 / 7 × 100, 12 = 8 + 10 + 11."""
    out = {key: value for key, value in figures.items() if FORM2_ROW[key[0]].source != Source.DERIVED}
    for column in FORM2_COLUMNS:
        out[("7", column)] = _sum(out.get(("1", column)), out.get(("4", column)))
        out[("8", column)] = _sum(out.get(("2", column)), out.get(("5", column)))
        out[("9", column)] = percent(out[("8", column)], out[("7", column)])
        out[("12", column)] = _sum(out[("8", column)], out.get(("10", column)), out.get(("11", column)))
    return out


def apply_corrections(figures: Figures, corrections: dict[tuple[str, str], int]) -> Figures:
    merged = dict(figures)
    merged.update(corrections)
    return complete_form2(merged)


def whole_number(value) -> int | None:
    """Digits 0–9 only (spaces between thousands allowed): other scripts' digits are refused."""
    text = str(value).strip().replace(" ", "").replace("\u00a0", "")
    if not text or not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    return int(text)


def validate_correction(row: str, column: str, value) -> int:
    definition = FORM2_ROW.get(row)
    if definition is None or column not in definition.columns:
        raise ValidationError(N_("There is no such cell in the form"), code="form_cell_unknown")
    if definition.source == Source.DERIVED:
        raise ValidationError(N_("Row %(row)s is calculated from other rows and is not corrected by hand"),
                              code="form_row_derived", row=row)
    number = whole_number(value)
    if number is None:
        raise ValidationError(N_("Enter a whole number"), code="form_value_not_a_number")
    if not 0 <= number <= 10_000_000:
        raise ValidationError(N_("Enter a number from 0 to 10 000 000"), code="form_value_out_of_range")
    return number


# --- cross-checks ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """A check that failed. ``explainable``: the person filling the form may submit it anyway
    with an explanation (the seed's own sums can't be explained away)."""

    code: str
    message: str
    params: dict
    explainable: bool = True


COLUMN_NAMES = {TOTAL: N_("in total"), WOMEN: N_("women"), YOUTH: N_("young people under 35")}


def _v(figures: Figures, row: str, column: str) -> int:
    return figures.get((row, column)) or 0


def check_form2(figures: Figures) -> list[Finding]:
    """Every check of the seed, each naming its rows; ``figures`` are complete (derived rows in)."""
    found: list[Finding] = []
    if any(figures.get(("1", column)) is None for column in FORM2_COLUMNS):
        found.append(Finding("passport_employees_missing",
                             N_("Row 1: the number of employees is not in the organisation's passport"), {}))
    for part, whole in (("2", "1"), ("5", "4"), ("3", "2"), ("6", "5"), ("8", "7")):
        for column in FORM2_COLUMNS:
            if figures.get((whole, column)) is None:
                continue
            if _v(figures, part, column) > _v(figures, whole, column):
                found.append(Finding(f"row{part}_over_row{whole}_{column}",
                                     N_("Row %(part)s (%(column)s) is greater than row %(whole)s"),
                                     {"part": part, "whole": whole, "column": COLUMN_NAMES[column]}))
    for row in FORM2_ROWS:
        if row.percent:
            continue
        for column in (WOMEN, YOUTH):
            if column in row.columns and _v(figures, row.code, column) > _v(figures, row.code, TOTAL):
                found.append(Finding(f"row{row.code}_{column}_over_total",
                                     N_("Row %(row)s: %(column)s are more than the total"),
                                     {"row": row.code, "column": COLUMN_NAMES[column]}))
    for column in FORM2_COLUMNS:
        sums = (("7", ("1", "4")), ("8", ("2", "5")), ("12", ("8", "10", "11")))
        for total, parts in sums:
            if _v(figures, total, column) != sum(_v(figures, p, column) for p in parts):
                found.append(Finding(f"row{total}_sum_{column}", N_("Row %(row)s must equal rows %(rows)s"),
                                     {"row": total, "rows": " + ".join(parts)}, explainable=False))
        if figures.get(("9", column)) != percent(figures.get(("8", column)), figures.get(("7", column))):
            found.append(Finding(f"row9_{column}", N_("Row 9 must equal row 8 divided by row 7, times 100"), {},
                                 explainable=False))
    return found


def blocking(findings: list[Finding], explanations: dict[str, str]) -> list[Finding]:
    """What still stops submission: sums that do not add up, and any other finding without an
    explanation."""
    return [f for f in findings if not f.explainable or not (explanations.get(f.code) or "").strip()]


# --- Form 7 ------------------------------------------------------------------------------------

class InstitutionType(StrEnum):
    """What the organisation's employer is: it chooses Form 7's column (графы 3–5)."""

    SCHOOL = "school"
    KINDERGARTEN = "kindergarten"
    EXTRACURRICULAR = "extracurricular"
    OTHER = "other"
    HIGHER = "higher"
    VOCATIONAL = "vocational"


INSTITUTION_TYPE_LABELS = {
    InstitutionType.SCHOOL: N_("general education school"),
    InstitutionType.KINDERGARTEN: N_("kindergarten"),
    InstitutionType.EXTRACURRICULAR: N_("additional education of children"),
    InstitutionType.OTHER: N_("other enterprise, institution or organisation"),
    InstitutionType.HIGHER: N_("higher education"),
    InstitutionType.VOCATIONAL: N_("vocational education"),
}

ENTERPRISES, HIGHER, VOCATIONAL, ALL = "enterprises", "higher", "vocational", "all"
FORM7_COLUMNS = (ENTERPRISES, HIGHER, VOCATIONAL, ALL, WOMEN, YOUTH)  # графы 3–8
FORM7_COLUMN_LABELS = {
    ENTERPRISES: N_("Enterprises, institutions, organisations"),
    HIGHER: N_("Higher education"),
    VOCATIONAL: N_("Vocational education"),
    ALL: N_("In all"),
    WOMEN: N_("Women"),
    YOUTH: N_("Young people under 35"),
}


def form7_column(institution_type: str | None, students: bool = False) -> str:
    """Form 7's column for an organisation. Students of an enterprise's base college go to the
    vocational column (seed: «сведения об учащихся в пункт 5 по графе 4 или 5»)."""
    if institution_type == InstitutionType.HIGHER:
        return HIGHER
    if institution_type == InstitutionType.VOCATIONAL or students:
        return VOCATIONAL
    return ENTERPRISES


# Form 7 Table II row ← Form 2 row (the same figure, summed by column).
FORM7_FROM_FORM2 = {"3": "1", "4": "2", "4.1": "3", "5": "4", "6": "5", "6.1": "6", "7": "7", "8": "8",
                    "10": "10", "11": "11", "12": "12", "13": "13", "14": "14"}
STUDENT_ROWS = frozenset({"5", "6", "6.1"})
FORM7_ROWS: tuple[Row, ...] = (
    Row("1", N_("Primary union organisations"), Source.DERIVED),
    Row("1.1", N_("of them with union members fewer than half of employees"), Source.DERIVED),
    Row("1.2", N_("union organisations of students"), Source.DERIVED),
    Row("2", N_("Primary organisations created this year"), Source.DERIVED),
    Row("3", N_("Employees in total"), Source.DERIVED),
    Row("4", N_("of them union members"), Source.DERIVED),
    Row("4.1", N_("including admitted to the union for the first time"), Source.DERIVED),
    Row("5", N_("Students of educational institutions in total"), Source.DERIVED),
    Row("6", N_("of them union members"), Source.DERIVED),
    Row("6.1", N_("including admitted to the union for the first time"), Source.DERIVED),
    Row("7", N_("Employees and students in total"), Source.DERIVED),
    Row("8", N_("of them union members"), Source.DERIVED),
    Row("9", N_("Share of employees and students in the union (per cent)"), Source.DERIVED, percent=True),
    Row("10", N_("Union members: non-working pensioners"), Source.DERIVED),
    Row("11", N_("Union members: temporarily not working"), Source.DERIVED),
    Row("12", N_("Union members in total"), Source.DERIVED),
    Row("13", N_("Left the union of their own wish"), Source.DERIVED),
    Row("14", N_("Expelled from the union"), Source.DERIVED),
)
# Cells the seed marks «*»: not applicable.
FORM7_NOT_APPLICABLE = frozenset(
    [(r, c) for r in ("1", "1.1", "1.2", "2") for c in (WOMEN, YOUTH)]
    + [("1.2", ENTERPRISES)] + [(r, ENTERPRISES) for r in STUDENT_ROWS] + [("10", YOUTH)])


@dataclass(frozen=True)
class AcceptedForm2:
    """One accepted Form 2, as Form 7 sums it."""

    institution_type: str | None
    students_organisation: bool
    created_this_year: bool
    figures: Figures
    members_under_half: bool | None = None
    count: int = 1  # a group of forms alike in the above, with their figures summed


def members_under_half(figures: Figures) -> bool:
    """Row 1.1 of Form 7: union members are fewer than half of the employees."""
    employees = figures.get(("1", TOTAL)) or 0
    return employees > 0 and 2 * (figures.get(("2", TOTAL)) or 0) < employees


def form7_table2(forms) -> Figures:
    """Table II of Form 7: the sum of accepted Form 2s by institution-type column."""
    out: Figures = {}

    def add(row, column, value):
        if value:
            out[(row, column)] = (out.get((row, column)) or 0) + value

    for form in forms:
        column = form7_column(form.institution_type)
        student_column = form7_column(form.institution_type, students=True)
        under_half = (members_under_half(form.figures) if form.members_under_half is None
                      else form.members_under_half)
        for target in (column, ALL):
            add("1", target, form.count)
            add("1.1", target, form.count if under_half else 0)
            add("2", target, form.count if form.created_this_year else 0)
        if form.students_organisation:
            add("1.2", student_column, form.count)
            add("1.2", ALL, form.count)
        for row7, row2 in FORM7_FROM_FORM2.items():
            if row7 in ("7", "8", "12"):
                continue  # derived below, from the columns they add up
            target = student_column if row7 in STUDENT_ROWS else column
            add(row7, target, form.figures.get((row2, TOTAL)))
            add(row7, ALL, form.figures.get((row2, TOTAL)))
            add(row7, WOMEN, form.figures.get((row2, WOMEN)))
            add(row7, YOUTH, form.figures.get((row2, YOUTH)))
    for column in FORM7_COLUMNS:
        for row in ("1", "1.1", "1.2", "2", "3", "4", "4.1", "5", "6", "6.1", "10", "11", "13", "14"):
            if (row, column) not in FORM7_NOT_APPLICABLE:
                out.setdefault((row, column), 0)
        out[("7", column)] = _v(out, "3", column) + _v(out, "5", column)
        out[("8", column)] = _v(out, "4", column) + _v(out, "6", column)
        out[("9", column)] = percent(out[("8", column)], out[("7", column)])
        out[("12", column)] = out[("8", column)] + _v(out, "10", column) + _v(out, "11", column)
    return out


def check_form7(table2: Figures, table3: Figures | None = None) -> list[Finding]:
    """The seed's checks of column 6 and of Table III against Table II."""
    found = []
    for total, parts in (("7", ("3", "5")), ("8", ("4", "6")), ("12", ("4", "6", "10", "11"))):
        if _v(table2, total, ALL) != sum(_v(table2, p, ALL) for p in parts):
            found.append(Finding(f"form7_row{total}_sum", N_("Column 6: row %(row)s must equal rows %(rows)s"),
                                 {"row": total, "rows": " + ".join(parts)}, explainable=False))
    for column in (ENTERPRISES, HIGHER, VOCATIONAL, ALL):
        if _v(table2, "3", column) + _v(table2, "5", column) != _v(table2, "7", column):
            found.append(Finding(f"form7_row7_{column}", N_("Row 7 must equal rows 3 + 5"), {}, explainable=False))
    for part, whole in (("4", "3"), ("6", "5"), ("8", "7")):
        for column in FORM7_COLUMNS:
            if _v(table2, part, column) > _v(table2, whole, column):
                found.append(Finding(f"form7_row{part}_over_row{whole}_{column}",
                                     N_("Row %(part)s (%(column)s) is greater than row %(whole)s"),
                                     {"part": part, "whole": whole, "column": FORM7_COLUMN_LABELS[column]}))
    if table3 is not None:
        if _v(table3, "1", TOTAL) != _v(table2, "1", ALL):
            found.append(Finding("table3_chairpersons", N_(
                "Table III row 1 (%(chairs)s chairpersons) does not match Table II row 1, column 6 "
                "(%(organisations)s organisations)"),
                {"chairs": _v(table3, "1", TOTAL), "organisations": _v(table2, "1", ALL)}))
        if _v(table3, "1.3", TOTAL) != _v(table2, "1.2", ALL):
            found.append(Finding("table3_student_chairpersons", N_(
                "Table III row 1.3 (%(chairs)s chairpersons of student organisations) does not match Table II "
                "row 1.2, column 6 (%(organisations)s)"),
                {"chairs": _v(table3, "1.3", TOTAL), "organisations": _v(table2, "1.2", ALL)}))
    return found


# --- activists and elected bodies (Table III) ------------------------------------------------

class PositionKind(StrEnum):
    CHAIRPERSON = "chairperson"
    COMMITTEE = "committee"              # член профкома (комитета, совета)
    AUDIT = "audit"                      # член ревизионной комиссии
    COMMISSION = "commission"            # член комиссии профкома
    SHOP_CHAIRPERSON = "shop_chair"      # председатель цеховой организации
    SHOP_COMMITTEE = "shop_committee"    # член цехкома, профбюро
    GROUP_ORGANISER = "group_organiser"  # профгрупорг
    STAFF = "staff"                      # специалист аппарата
    REPRESENTATIVE = "representative"    # уполномоченный представитель (доверенное лицо)


POSITION_LABELS = {
    PositionKind.CHAIRPERSON: N_("chairperson"),
    PositionKind.COMMITTEE: N_("member of the union committee"),
    PositionKind.AUDIT: N_("member of the audit commission"),
    PositionKind.COMMISSION: N_("member of a committee's commission"),
    PositionKind.SHOP_CHAIRPERSON: N_("chairperson of a shop-level organisation"),
    PositionKind.SHOP_COMMITTEE: N_("member of a shop committee"),
    PositionKind.GROUP_ORGANISER: N_("union group organiser"),
    PositionKind.STAFF: N_("apparatus staff"),
    PositionKind.REPRESENTATIVE: N_("authorised representative"),
}

TABLE3_COLUMNS = (TOTAL, "paid", WOMEN, YOUTH)
TABLE3_ROWS = (
    ("1", N_("Chairpersons of primary union organisations")),
    ("1.1", N_("of enterprises, institutions, organisations")),
    ("1.2", N_("of employees of higher and vocational education")),
    ("1.3", N_("of student organisations")),
    ("1.4", N_("of small primary organisations (up to 15 members)")),
    ("2", N_("Members of union committees (without chairpersons)")),
    ("3", N_("Members of all commissions of union committees")),
    ("4", N_("Members of audit commissions of primary organisations")),
    ("5", N_("Chairpersons of shop-level organisations")),
    ("6", N_("Members of shop committees (without chairpersons)")),
    ("7", N_("Union group organisers")),
    ("10", N_("Chairpersons of town and district organisations")),
    ("11", N_("Apparatus staff of town and district organisations")),
    ("12", N_("Chairpersons of regional organisations")),
    ("13", N_("Apparatus staff of regional organisations")),
    ("14", N_("Chairperson of the union")),
    ("15", N_("Apparatus staff of the union")),
    ("16", N_("Authorised representatives of the union")),
)
SMALL_ORGANISATION = 15


@dataclass(frozen=True)
class Activist:
    kind: str
    level: str                      # the organisation's level
    institution_type: str | None
    students_organisation: bool
    organisation_members: int
    paid: bool
    female: bool
    youth: bool


def table3_rows(activist: Activist) -> list[str]:
    """Which rows of Table III one position counts in."""
    kind, level = activist.kind, activist.level
    if kind == PositionKind.REPRESENTATIVE:
        return ["16"]
    if level in ("primary", "subdivision"):
        if kind == PositionKind.CHAIRPERSON and level == "primary":
            if activist.students_organisation:
                rows = ["1", "1.3"]
            elif activist.institution_type in (InstitutionType.HIGHER, InstitutionType.VOCATIONAL):
                rows = ["1", "1.2"]
            else:
                rows = ["1", "1.1"]
            if activist.organisation_members <= SMALL_ORGANISATION:
                rows.append("1.4")
            return rows
        return {PositionKind.COMMITTEE: ["2"], PositionKind.COMMISSION: ["3"], PositionKind.AUDIT: ["4"],
                PositionKind.SHOP_CHAIRPERSON: ["5"], PositionKind.SHOP_COMMITTEE: ["6"],
                PositionKind.GROUP_ORGANISER: ["7"]}.get(kind, [])
    by_level = {"territorial": ("10", "11"), "regional": ("12", "13"), "central": ("14", "15")}.get(level)
    if by_level is None:
        return []
    return {PositionKind.CHAIRPERSON: [by_level[0]], PositionKind.STAFF: [by_level[1]]}.get(kind, [])


def form7_table3(activists) -> Figures:
    out: Figures = {(row, column): 0 for row, _label in TABLE3_ROWS for column in TABLE3_COLUMNS}
    for activist in activists:
        for row in table3_rows(activist):
            out[(row, TOTAL)] += 1
            out[(row, "paid")] += activist.paid
            out[(row, WOMEN)] += activist.female
            out[(row, YOUTH)] += activist.youth
    return out


# --- passport ---------------------------------------------------------------------------------

PASSPORT_FIELDS = ("institution_type", "employees_total", "employees_women", "employees_youth", "students_total",
                   "students_women", "students_youth", "founded_on", "legal_entity", "address", "phone", "email")
PASSPORT_FIELD_LABELS = {
    "institution_type": N_("Type of institution"),
    "employees_total": N_("Employees without part-timers"),
    "employees_women": N_("of them women"),
    "employees_youth": N_("of them under 35"),
    "students_total": N_("Students"),
    "students_women": N_("of them women"),
    "students_youth": N_("of them under 35"),
    "founded_on": N_("Date of creation"),
    "legal_entity": N_("Legal entity"),
    "address": N_("Address"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
}


def mandatory_passport_fields(level: str, org_kind: str | None, institution_type: str | None) -> tuple[str, ...]:
    """What a passport must hold. Primary organisations give Form 2's headcounts; students' and
    education organisations, the students too; every organisation, its contacts."""
    fields = ["founded_on", "legal_entity", "phone"]
    if level == "primary":
        fields[:0] = ["institution_type", "employees_total", "employees_women", "employees_youth"]
        if org_kind in ("students", "joint") or institution_type in (InstitutionType.HIGHER,
                                                                      InstitutionType.VOCATIONAL):
            fields += ["students_total", "students_women", "students_youth"]
    return tuple(fields)


def missing_passport_fields(values: dict, level: str, org_kind: str | None) -> list[str]:
    wanted = mandatory_passport_fields(level, org_kind, values.get("institution_type"))
    return [name for name in wanted if values.get(name) in (None, "")]


def check_passport(values: dict, members: dict[str, int]) -> None:
    """Refuse a passport that contradicts itself or the registry: women or youth above the total,
    or fewer employees (students) than the registry's working (student) members."""
    for group in ("employees", "students"):
        total = values.get(f"{group}_total")
        for part in ("women", "youth"):
            value = values.get(f"{group}_{part}")
            if total is not None and value is not None and value > total:
                raise ValidationError(N_("The part is greater than the total"), code="passport_part_over_total",
                                      field=f"{group}_{part}")
    for group, category in (("employees", "working"), ("students", "student")):
        total = values.get(f"{group}_total")
        if total is not None and total < members.get(category, 0):
            raise ValidationError(
                N_("The registry has %(members)s members here, more than %(total)s: check the headcount"),
                code="passport_below_members", field=f"{group}_total", members=members.get(category, 0), total=total)


# --- the campaign's states ---------------------------------------------------------------------

class FormStatus(StrEnum):
    NOT_STARTED = "not_started"   # nobody has touched it (no row, or one made only to carry a reminder)
    DRAFT = "draft"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    RETURNED = "returned"


FORM_STATUS_LABELS = {
    FormStatus.NOT_STARTED: N_("not started"),
    FormStatus.DRAFT: N_("draft"),
    FormStatus.SUBMITTED: N_("submitted"),
    FormStatus.ACCEPTED: N_("accepted"),
    FormStatus.RETURNED: N_("returned for correction"),
}

FORM_ACTION_LABELS = {
    "form.correct": N_("figure corrected"),
    "form.correction_removed": N_("correction taken back"),
    "form.explain": N_("explanation saved"),
    "form.submit": N_("form sent"),
    "form.accept": N_("form accepted"),
    "form.return": N_("form returned for correction"),
}

# action → (states it may start from, state it leads to)
TRANSITIONS = {
    "submit": ({FormStatus.NOT_STARTED, FormStatus.DRAFT, FormStatus.RETURNED}, FormStatus.SUBMITTED),
    "accept": ({FormStatus.SUBMITTED}, FormStatus.ACCEPTED),
    "return": ({FormStatus.SUBMITTED, FormStatus.ACCEPTED}, FormStatus.RETURNED),
}
EDITABLE = frozenset({FormStatus.NOT_STARTED, FormStatus.DRAFT, FormStatus.RETURNED})


def next_status(current: str, action: str) -> FormStatus:
    sources, target = TRANSITIONS[action]
    if current not in sources:
        raise Conflict(N_("Someone has already changed this form: reload the page"),
                       code="form_state_changed")
    return target


def is_overdue(status: str, deadline: date, today: date) -> bool:
    return today > deadline and status not in (FormStatus.SUBMITTED, FormStatus.ACCEPTED)


def form_kind_for(level: str) -> str | None:
    """Primary organisations report on Form 2; territorial and regional ones consolidate on Form 7;
    the central organisation's Form 7 is the union's own and goes to nobody."""
    return {"primary": "form2", "territorial": "form7", "regional": "form7", "central": "form7"}.get(level)
