"""Forms 2 and 7 on paper: XLSX in the union's layout (merged headings, numbered columns, the
seed's «*» cells) and a printable PDF with the signature lines; each with last year beside it."""

from __future__ import annotations

import io

from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter

from unioncard import tables
from unioncard.i18n import translate as _
from unioncard.statistics import domain as sd

THIN = Side(style="thin", color="888888")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)


def _put(sheet, row: int, column: int, value, *, bold=False, wrap=False, box=True, number_format=None):
    # Text from the registry (an organisation's name) never becomes a formula.
    cell = tables.set_cell(sheet, row, column, value)
    cell.font = Font(bold=bold)
    cell.alignment = Alignment(wrap_text=wrap or isinstance(value, str), vertical="center",
                               horizontal="left" if column == 2 else "center")
    if box:
        cell.border = BOX
    if number_format:
        cell.number_format = number_format
    return cell


def _merge(sheet, first_row, first_col, last_row, last_col, value, *, bold=True):
    _put(sheet, first_row, first_col, value, bold=bold, wrap=True)
    for r in range(first_row, last_row + 1):
        for c in range(first_col, last_col + 1):
            sheet.cell(row=r, column=c).border = BOX
    if (first_row, first_col) != (last_row, last_col):
        sheet.merge_cells(start_row=first_row, start_column=first_col, end_row=last_row, end_column=last_col)


def title_lines(view) -> list[str]:
    if view.kind == "form2":
        head = _("Form 2. Statistical report of a primary union organisation for %(year)s", year=view.campaign.year)
    else:
        head = _("Form 7. Consolidated statistical report for %(year)s", year=view.campaign.year)
    return [head, view.organisation.name, _("as of %(day)s", day=view.on.strftime("%d.%m.%Y"))]


def _cell_value(figures, row: str, column: str, percent: bool, not_applicable=frozenset()):
    if (row, column) in not_applicable:
        return "*"
    value = figures.get((row, column))
    if value is None:
        return "–" if percent else ""
    return value


def layout(view):
    """(rows, columns, column headings, «В том числе» span) for the form's Table II."""
    if view.kind == "form2":
        columns = list(sd.FORM2_COLUMNS)
        headings = [_("In all"), _("Women"), _("Young people under 35")]
        return sd.FORM2_ROWS, columns, headings, frozenset()
    columns = list(sd.FORM7_COLUMNS)
    headings = [_(sd.FORM7_COLUMN_LABELS[c]) for c in columns]
    return sd.FORM7_ROWS, columns, headings, sd.FORM7_NOT_APPLICABLE


def xlsx(view) -> bytes:
    book = tables.laid_out_workbook()
    sheet = book.active
    sheet.title = _("Table II")
    rows, columns, headings, not_applicable = layout(view)
    for index, line in enumerate(title_lines(view), start=1):
        _put(sheet, index, 1, line, bold=index == 1, box=False)
        sheet.cell(row=index, column=1).alignment = Alignment(horizontal="left")
    top = 5
    _merge(sheet, top, 1, top + 1, 1, _("No."))
    _merge(sheet, top, 2, top + 1, 2, _("Indicator"))
    if view.kind == "form2":
        _merge(sheet, top, 3, top + 1, 3, headings[0])
        _merge(sheet, top, 4, top, 5, _("Including:"))
        _put(sheet, top + 1, 4, headings[1], bold=True)
        _put(sheet, top + 1, 5, headings[2], bold=True)
    else:
        for offset in range(3):
            _merge(sheet, top, 3 + offset, top + 1, 3 + offset, headings[offset])
        _merge(sheet, top, 6, top, 8, _("Total number"))
        for offset in range(3):
            _put(sheet, top + 1, 6 + offset, headings[3 + offset] if offset else _("In all"), bold=True)
    for number in range(1, len(columns) + 3):
        _put(sheet, top + 2, number, number, bold=True)
    for index, row in enumerate(rows):
        line = top + 3 + index
        _put(sheet, line, 1, row.code)
        _put(sheet, line, 2, _(row.label), wrap=True)
        for offset, column in enumerate(columns):
            applicable = column in row.columns or view.kind == "form7"
            value = _cell_value(view.figures, row.code, column, row.percent, not_applicable) if applicable else ""
            _put(sheet, line, 3 + offset, value, number_format="0.0" if row.percent else "#,##0")
    sheet.column_dimensions["A"].width = 7
    sheet.column_dimensions["B"].width = 52
    for offset in range(len(columns)):
        sheet.column_dimensions[get_column_letter(3 + offset)].width = 16
    end = top + 3 + len(rows) + 1
    for text in signature_lines(view):
        _put(sheet, end, 1, text, box=False)
        sheet.cell(row=end, column=1).alignment = Alignment(horizontal="left")
        end += 2
    if view.kind == "form7" and view.table3 is not None:
        _table3_sheet(book.create_sheet(_("Table III")), view)
    _comparison_sheet(book.create_sheet(_("Against last year")), view)
    for each in book.worksheets:
        # One page wide, as the union's paper form: Form 7's six columns go landscape.
        each.page_setup.orientation = "landscape" if view.kind == "form7" else "portrait"
        each.page_setup.paperSize = each.PAPERSIZE_A4
        each.sheet_properties.pageSetUpPr.fitToPage = True
        each.page_setup.fitToWidth, each.page_setup.fitToHeight = 1, 0
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _table3_sheet(sheet, view) -> None:
    _put(sheet, 1, 1, _("Table III. Union staff and activists"), bold=True, box=False)
    headings = [_("No."), _("Indicator"), _("In all"), _("Full-time (paid) staff"), _("Women"),
                _("Young people under 35")]
    for offset, heading in enumerate(headings, start=1):
        _put(sheet, 3, offset, heading, bold=True)
    for index, (row, label) in enumerate(sd.TABLE3_ROWS):
        _put(sheet, 4 + index, 1, row)
        _put(sheet, 4 + index, 2, _(label), wrap=True)
        for offset, column in enumerate(sd.TABLE3_COLUMNS):
            _put(sheet, 4 + index, 3 + offset, view.table3.get((row, column), 0), number_format="#,##0")
    sheet.column_dimensions["B"].width = 52
    for letter in "CDEF":
        sheet.column_dimensions[letter].width = 16


def comparison_rows(view):
    """(row code, label, this year, last year, change) for the «total» column of Table II."""
    rows, columns, _h, _na = layout(view)
    column = sd.TOTAL if view.kind == "form2" else sd.ALL
    previous = view.previous or {}
    out = []
    for row in rows:
        now, before = view.figures.get((row.code, column)), previous.get((row.code, column))
        change = None if now is None or before is None else round(now - before, 1)
        out.append((row.code, row.label, now, before if view.previous is not None else None, change))
    return out


def _comparison_sheet(sheet, view) -> None:
    year = view.campaign.year
    _put(sheet, 1, 1, _("Total column against the previous year"), bold=True, box=False)
    for offset, heading in enumerate([_("No."), _("Indicator"), str(year), str(year - 1), _("Change from last year")], start=1):
        _put(sheet, 3, offset, heading, bold=True)
    for index, (code, label, now, before, change) in enumerate(comparison_rows(view)):
        line = 4 + index
        _put(sheet, line, 1, code)
        _put(sheet, line, 2, _(label), wrap=True)
        _put(sheet, line, 3, "" if now is None else now)
        _put(sheet, line, 4, "" if before is None else before)
        _put(sheet, line, 5, "" if change is None else change, number_format="+#,##0.0;-#,##0.0;0")
    sheet.column_dimensions["B"].width = 52
    for letter in "CDE":
        sheet.column_dimensions[letter].width = 14


def signature_lines(view) -> list[str]:
    who = _("Chairperson of the primary union organisation") if view.kind == "form2" else _("Chairperson")
    return [f"{who}  ________________ (" + _("signature") + ")   ________________________ (" + _("full name") + ")",
            _("Compiled by (full name, phone, e-mail)") + ": ______________________________________________",
            _("Date") + ": «____» ______________ 20___"]


def pdf(view) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from unioncard.card_layouts.model import FONT_DIR
    from unioncard.card_layouts.render import FONT_LOCK, register_font

    regular, _regular_glyphs = register_font(FONT_DIR / "DejaVuSans.ttf")
    bold, _bold_glyphs = register_font(FONT_DIR / "DejaVuSans-Bold.ttf")
    heading = ParagraphStyle("h", fontName=bold, fontSize=12, leading=15)
    text = ParagraphStyle("t", fontName=regular, fontSize=9.5, leading=12)
    cell = ParagraphStyle("c", fontName=regular, fontSize=8, leading=9.5)
    head = ParagraphStyle("hc", fontName=bold, fontSize=7.5, leading=9)
    rows, columns, headings, not_applicable = layout(view)
    lines = title_lines(view)
    story = [Paragraph(lines[0], heading), Paragraph(_escape(lines[1]), text), Paragraph(lines[2], text),
             Spacer(1, 4 * mm)]
    year = view.campaign.year
    data = [[Paragraph(_("No."), head), Paragraph(_("Indicator"), head)]
            + [Paragraph(h, head) for h in headings]
            + [Paragraph(f"{_('In all')}, {year - 1}", head), Paragraph(_("Change from last year"), head)]]
    comparison = {code: (before, change) for code, _l, _n, before, change in comparison_rows(view)}
    for row in rows:
        values = []
        for column in columns:
            applicable = column in row.columns or view.kind == "form7"
            value = _cell_value(view.figures, row.code, column, row.percent, not_applicable) if applicable else ""
            values.append(_number(value))
        before, change = comparison[row.code]
        values += [_number(before if before is not None else ""),
                   "" if change is None else (("+" if change > 0 else "") + _number(change))]
        data.append([row.code, Paragraph(_(row.label), cell)] + values)
    page = landscape(A4) if view.kind == "form7" else A4
    usable = page[0] - 24 * mm
    numbers = len(columns) + 2
    label_width = usable - 10 * mm - numbers * (17 * mm if view.kind == "form7" else 19 * mm)
    widths = [10 * mm, label_width] + [(usable - 10 * mm - label_width) / numbers] * numbers
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle([
        ("FONT", (0, 1), (-1, -1), regular, 8), ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8EEF6")), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("ALIGN", (2, 1), (-1, -1), "RIGHT")]))
    story.append(table)
    if view.kind == "form7" and view.table3 is not None:
        story += [Spacer(1, 5 * mm), Paragraph(_("Table III. Union staff and activists"), heading)]
        data3 = [[Paragraph(h, head) for h in (_("No."), _("Indicator"), _("In all"), _("Full-time (paid) staff"),
                                               _("Women"), _("Young people under 35"))]]
        for row, label in sd.TABLE3_ROWS:
            data3.append([row, Paragraph(_(label), cell)]
                         + [_number(view.table3.get((row, c), 0)) for c in sd.TABLE3_COLUMNS])
        table3 = Table(data3, colWidths=[10 * mm, usable - 10 * mm - 4 * 30 * mm] + [30 * mm] * 4, repeatRows=1)
        table3.setStyle(TableStyle([
            ("FONT", (0, 1), (-1, -1), regular, 8), ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8EEF6")), ("ALIGN", (2, 1), (-1, -1), "RIGHT")]))
        story.append(table3)
    story.append(Spacer(1, 10 * mm))
    for line in signature_lines(view):
        story += [Paragraph(line, text), Spacer(1, 6 * mm)]
    out = io.BytesIO()
    with FONT_LOCK:  # the fonts' subsets are shared with every other document being written
        SimpleDocTemplate(out, pagesize=page, title=lines[0], leftMargin=12 * mm, rightMargin=12 * mm,
                          topMargin=12 * mm, bottomMargin=12 * mm).build(story)
    return out.getvalue()


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _number(value) -> str:
    if value in ("", None, "*", "–"):
        return "" if value is None else value
    if isinstance(value, float):
        return f"{value:.1f}".rstrip("0").rstrip(".").replace(".", ",")
    return f"{int(value):,}".replace(",", "\u00a0")
