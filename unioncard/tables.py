"""Every spreadsheet the system reads or writes goes through here: member lists, event rosters,
check-in exports, reports and manifests.

Reading is bounded before and while parsing. An .xlsx is a zip: the sizes its directory declares
are checked before anything is unpacked (zipfile itself never unpacks an entry past its declared
size, the CRC check fails first), the sheet is streamed row by row (openpyxl read-only) and
reading stops at a row limit. XML is parsed with defusedxml (openpyxl uses it when installed).
CSV is decoded from an upload already bounded by the upload limit, and stops at the same row limit.

Writing neutralises formulas (CWE-1236): text that a spreadsheet would run (= + - @, tab, CR)
is written as a text cell with Excel's quote-prefix style, which keeps it text without showing
an apostrophe. Report sheets print landscape, one page wide, with the header row repeated on
every page and frozen on screen.
"""

from __future__ import annotations

import csv
import io
import itertools
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Iterable

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet.properties import PageSetupProperties

from unioncard.errors import ValidationError
from unioncard.i18n import N_

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# What an uploaded workbook may unpack to in all. A 10 000-member list is ~3 MiB unpacked; the
# 2 MB file that unpacked to 2 GiB is refused here before a byte of it is inflated.
MAX_UNPACKED_BYTES = 64 * 1024 * 1024
# The most rows one uploaded table may have (a primary organisation's list, an event's roster).
MAX_ROWS = 50_000
# The most columns read from a row: every table we take has a few dozen at most.
MAX_COLUMNS = 64


@dataclass
class Sheet:
    headers: list[str]
    rows: list[tuple[int, list]]  # (spreadsheet row number, cell values)


class TableTooLarge(ValidationError):
    code = "file_too_large_unpacked"
    message = N_("The file unpacks to more than %(limit)s MB: it is damaged or is not a list of people. "
                 "Split the list into several files.")


class TooManyRows(ValidationError):
    code = "file_too_many_rows"
    message = N_("The file has more than %(limit)s rows. Split the list into several files.")


# --- reading ------------------------------------------------------------------------------------

def read_table(content: bytes, filename: str = "", *, max_rows: int = MAX_ROWS,
               header: bool | Callable[[list], bool] = True) -> Sheet:
    """Parse an uploaded file; raise a ValidationError (with a code) for anything that is not a
    bounded XLSX or CSV table. ``header``: True if the first row is always a header, or a
    predicate that tells from the first row's values whether it is one (then ``headers`` is
    empty when it is not, and the first row is data)."""
    if not content:
        raise ValidationError(N_("The file is empty"), code="file_empty")
    if content[:4] == b"PK\x03\x04":
        rows = _xlsx_rows(content, max_rows)
    elif filename.lower().endswith((".xls", ".xlsx", ".ods")) or b"\x00" in content[:4096]:
        raise ValidationError(
            N_("The file is neither an Excel .xlsx workbook nor a CSV table. Save it from Excel as .xlsx or CSV."),
            code="file_type_unsupported",
        )
    else:
        rows = _csv_rows(content, max_rows)
    return _split_header(rows, header)


def _split_header(rows: Iterable[tuple[int, list]], header) -> Sheet:
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        raise ValidationError(N_("The file is empty"), code="file_empty")
    is_header = header(first[1]) if callable(header) else bool(header)
    data = [] if is_header else [first]
    headers = [_as_text(h) for h in first[1]] if is_header else []
    while headers and headers[-1] == "":
        headers.pop()
    width = len(headers) if is_header else None
    for number, values in rows:
        if all(v is None or _as_text(v) == "" for v in values):
            continue
        if width is not None:
            values = list(values[:width]) + [None] * (width - len(values))
        data.append((number, list(values)))
    return Sheet(headers, data)


def _check_zip(content: bytes) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        entries = archive.infolist()
    except Exception:  # noqa: BLE001 - any failure to read the zip directory: a damaged file
        raise _damaged() from None
    if len(entries) > 10_000 or sum(e.file_size for e in entries) > MAX_UNPACKED_BYTES:
        raise TableTooLarge(limit=MAX_UNPACKED_BYTES // (1024 * 1024))
    return archive


def _damaged() -> ValidationError:
    return ValidationError(N_("The Excel file is damaged or is not an .xlsx workbook"), code="xlsx_damaged")


def _xlsx_rows(content: bytes, max_rows: int):
    archive = _check_zip(content)
    # Whatever a damaged workbook makes the unzipper or the XML parser raise (zlib, CRC, expat,
    # defusedxml's refusals, openpyxl's own), it is the same thing to the person uploading it.
    try:
        workbook = load_workbook(archive.fp, read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - see above
        raise _damaged() from None
    rows = []
    try:
        if not workbook.worksheets:
            raise ValidationError(N_("The file is empty"), code="file_empty")
        sheet = workbook.worksheets[0]
        # Rows stream one by one; stop as soon as there are too many, before reading the rest.
        for number, values in enumerate(sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS), start=1):
            if number > max_rows + 1:  # + the header row
                raise TooManyRows(limit=max_rows)
            rows.append((number, list(values)))
    except ValidationError:
        raise
    except Exception:  # noqa: BLE001 - as above
        raise _damaged() from None
    finally:
        try:
            workbook.close()
        except Exception:  # noqa: BLE001 - closing a damaged archive may fail again; nothing to keep
            pass
    return rows


def _decode(content: bytes) -> str:
    if content.startswith(b"\xef\xbb\xbf"):
        content = content[3:]
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Excel on Russian Windows saves "CSV" in CP1251.
    try:
        return content.decode("cp1251")
    except UnicodeDecodeError:
        raise ValidationError(
            N_("The file encoding is not recognised: save the CSV as UTF-8 or Windows-1251"), code="csv_encoding"
        ) from None


def _csv_rows(content: bytes, max_rows: int):
    text = _decode(content)
    if "\x00" in text:
        raise ValidationError(N_("The CSV file cannot be read"), code="csv_malformed")
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") >= first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        for values in reader:
            if len(rows) > max_rows:
                raise TooManyRows(limit=max_rows)
            rows.append((reader.line_num, [v.strip() for v in values[:MAX_COLUMNS]]))
    except csv.Error:
        raise ValidationError(N_("The CSV file cannot be read"), code="csv_malformed") from None
    return rows


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    # Files written before the quote-prefix style carried a visible neutralising apostrophe.
    if text.startswith("'") and text[1:2] in FORMULA_PREFIXES:
        text = text[1:]
    return text


def cell_text(value) -> str:
    return _as_text(value)


def cell_date(value) -> date | None:
    """A date from an Excel date cell or text in the forms people type (31.12.1980, 1980-12-31)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _as_text(value)
    for fmt in ("%d.%m.%Y", "%Y-%m-%d", "%d/%m/%Y", "%d.%m.%y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(text)


# --- writing ------------------------------------------------------------------------------------

def is_formula_like(value) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_PREFIXES)


def _storable(value):
    # Control characters cannot be stored in a worksheet (openpyxl refuses them): dropped.
    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


def _kept_as_text(cell, value):
    if is_formula_like(value):
        cell.data_type = "s"      # openpyxl would otherwise store "=…" as a formula
        cell.quotePrefix = True   # and Excel/LibreOffice keep it text when the cell is edited
    return cell


def _cell(sheet, value, *, bold: bool = False, wrap: bool = False, size: float | None = None):
    """A cell that is never a formula, whatever the text."""
    value = _storable(value)
    cell = _kept_as_text(WriteOnlyCell(sheet, value=value), value)
    if bold or size:
        cell.font = Font(bold=bold, size=size or 11)
    if wrap:
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    return cell


def laid_out_workbook() -> Workbook:
    """A workbook for a form with a fixed layout (merged headings, numbered columns): write every
    cell with :func:`set_cell`."""
    return Workbook()


def set_cell(sheet, row: int, column: int, value):
    """A cell of a laid-out sheet, never a formula whatever the text (as :func:`_cell`)."""
    value = _storable(value)
    return _kept_as_text(sheet.cell(row=row, column=column, value=value), value)


@dataclass
class Table:
    """One sheet of a workbook: an optional title line, a header row, rows, an optional bold last row."""
    headers: list[str]
    rows: Iterable[list]
    title: str | None = None
    sheet_title: str = "Лист1"
    widths: list[float] | None = None
    total: list | None = None
    landscape: bool = True


def write_tables(*tables: Table) -> bytes:
    """An .xlsx of one sheet per table, every cell through the neutralising writer."""
    out = io.BytesIO()
    write_tables_to(out, *tables)
    return out.getvalue()


def write_tables_to(target, *tables: Table) -> None:
    """The same into a file (a path or a binary file object): rows stream through openpyxl's
    write-only sheets, so a table of any length is written in bounded memory."""
    book = Workbook(write_only=True)
    for table in tables:
        sheet = book.create_sheet(_sheet_title(table.sheet_title))
        # Write-only sheets write their settings with the first row: everything is set before it.
        header_row = 2 if table.title else 1
        rows = iter(table.rows)
        widths = table.widths
        if widths is None:
            # Columns as wide as what they hold (judged by the first rows; rows stream, and a
            # write-only sheet takes its widths before the first row): no header word broken in
            # two, no phone number cut off when printed.
            first = list(itertools.islice(rows, WIDTH_SAMPLE_ROWS))
            widths = _fitting_widths(table.headers, first)
            rows = itertools.chain(first, rows)
        for index, width in enumerate(widths, start=1):
            sheet.column_dimensions[_column_letter(index)].width = width
        sheet.freeze_panes = f"A{header_row + 1}"
        sheet.print_title_rows = f"{header_row}:{header_row}"
        sheet.page_setup.orientation = "landscape" if table.landscape else "portrait"
        sheet.page_setup.paperSize = 9  # A4
        sheet.page_setup.fitToWidth = 1
        sheet.page_setup.fitToHeight = 0
        sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
        if table.title:
            sheet.append([_cell(sheet, table.title, bold=True, size=13)])
        sheet.append([_cell(sheet, h, bold=True, wrap=True) for h in table.headers])
        for row in rows:
            sheet.append([_cell(sheet, v) for v in row])
        if table.total is not None:
            sheet.append([_cell(sheet, v, bold=True) for v in table.total])
    book.save(target)


WIDTH_SAMPLE_ROWS = 500
MIN_WIDTH, MAX_WIDTH = 6, 45


def _fitting_widths(headers: list[str], rows: list[list]) -> list[float]:
    """Per column: the longest value, or the longest word of the header (a header may wrap
    between words, never inside one), in characters, within sensible bounds."""
    def text(value) -> str:
        if isinstance(value, (date, datetime)):
            return "00.00.0000"
        return "" if value is None else str(value)

    widths = []
    for index, header in enumerate(headers):
        longest_word = max((len(word) for word in str(header).split()), default=0)
        longest_value = max((len(text(row[index])) for row in rows if index < len(row)), default=0)
        widths.append(float(min(MAX_WIDTH, max(MIN_WIDTH, longest_word + 2, longest_value + 2))))
    return widths


def write_xlsx(headers: list[str], rows, sheet_title: str = "Лист1") -> bytes:
    return write_tables(Table(list(headers), rows, sheet_title=sheet_title))


def _sheet_title(title: str) -> str:
    # Excel's rules for sheet names: at most 31 characters, none of []:*?/\
    cleaned = "".join("_" if c in "[]:*?/\\" else c for c in title.replace("\x00", ""))[:31]
    return cleaned or "Лист1"


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index)
