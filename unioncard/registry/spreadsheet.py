"""Reading and writing member lists as Excel users make them: XLSX, and CSV in UTF-8 or CP1251
with ';' or ',' separators. Cells that a spreadsheet would run as a formula are neutralised on
export (CWE-1236) and the neutralising apostrophe is removed again on import."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime

from openpyxl import Workbook, load_workbook

from unioncard.errors import ValidationError
from unioncard.i18n import N_

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Sheet:
    headers: list[str]
    rows: list[tuple[int, list]]  # (spreadsheet row number, cell values)


def read_table(content: bytes, filename: str = "") -> Sheet:
    """Parse an uploaded file; raise ValidationError for anything that is not XLSX or CSV text."""
    if not content:
        raise ValidationError(N_("The file is empty"), code="file_empty")
    if content[:4] == b"PK\x03\x04":
        return _read_xlsx(content)
    if filename.lower().endswith((".xls", ".xlsx", ".ods")) or b"\x00" in content[:4096]:
        raise ValidationError(
            N_("The file is neither an Excel .xlsx workbook nor a CSV table. Save it from Excel as .xlsx or CSV."),
            code="file_type_unsupported",
        )
    return _read_csv(content)


def _read_xlsx(content: bytes) -> Sheet:
    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        raise ValidationError(N_("The Excel file is damaged or is not an .xlsx workbook"), code="xlsx_damaged") from None
    try:
        sheet = workbook.worksheets[0]
        iterator = sheet.iter_rows(values_only=True)
        header_row = next(iterator, None)
        if header_row is None:
            raise ValidationError(N_("The file is empty"), code="file_empty")
        headers = [_as_text(h) for h in header_row]
        while headers and headers[-1] == "":
            headers.pop()
        rows = []
        for number, values in enumerate(iterator, start=2):
            values = list(values[: len(headers)])
            if all(v is None or _as_text(v) == "" for v in values):
                continue
            rows.append((number, values + [None] * (len(headers) - len(values))))
        return Sheet(headers, rows)
    finally:
        workbook.close()


def _decode(content: bytes) -> str:
    if content.startswith(b"\xef\xbb\xbf"):
        return content[3:].decode("utf-8")
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


def _read_csv(content: bytes) -> Sheet:
    text = _decode(content)
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") >= first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        headers = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValidationError(N_("The file is empty"), code="file_empty") from None
    except csv.Error:
        raise ValidationError(N_("The CSV file cannot be read"), code="csv_malformed") from None
    rows = []
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            values = values[: len(headers)] + [""] * (len(headers) - len(values))
            rows.append((reader.line_num, values))
    except csv.Error:
        raise ValidationError(N_("The CSV file cannot be read"), code="csv_malformed") from None
    return Sheet(headers, rows)


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
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


def neutralise(value):
    """Make a text cell safe to open in a spreadsheet: formula-like text gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def write_xlsx(headers: list[str], rows, sheet_title: str = "Лист1") -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_title)
    sheet.append(headers)
    for row in rows:
        sheet.append([neutralise(v) for v in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
