"""Reading the exchange folder (or a .zip of it), bounded before and while reading.

A file is read as a stream of rows: UTF-8 (a BOM is allowed), RFC 4180 commas and quotes, a
header naming the columns. What is refused, with its code:

- a zip whose entries declare more than ``MAX_UNPACKED_BYTES`` in all, or inflate more than
  ``MAX_RATIO`` times, or are encrypted or damaged (``zip_bomb``, ``zip_damaged``);
- a file in Windows-1251 or another encoding (``encoding_cp1251``, ``encoding_not_utf8``);
- a line longer than ``MAX_LINE`` characters, more than ``MAX_ROWS`` rows (``row_too_long``,
  ``file_too_many_rows``);
- a header with an unknown, repeated or missing column (``header_invalid``).

Cells with NUL, formulas or more than ``domain.MAX_CELL`` characters are the rows' problems
(``staging`` reports them per row).
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from unioncard.errors import ValidationError
from unioncard.i18n import N_
from unioncard.migration import domain as md

MAX_UNPACKED_BYTES = 16 * 1024 ** 3   # the whole union at 4 M members is about 1 GB of CSV
MAX_RATIO = 200                       # CSV of names and dates compresses about 5 to 10 times
MAX_ENTRIES = 100
MAX_LINE = 8192
MAX_ROWS = 20_000_000
SNIFF_BYTES = 65536


class SourceError(ValidationError):
    """The folder or one of its files cannot be read at all."""

    def __init__(self, message: str, *, code: str, file: str | None = None, row: int | None = None, **params):
        if row is not None:
            params["row"] = row
        super().__init__(message, code=code, file=file or "", **params)
        self.file, self.row = file, row


@dataclass
class Source:
    """The exchange folder: a directory, or a .zip holding the files (at its root or in one
    folder). ``open(kind)`` gives the file's bytes as a stream, or None if it is absent."""

    path: Path

    def __post_init__(self):
        self.path = Path(self.path)
        self._zip: zipfile.ZipFile | None = None
        self._entries: dict[str, zipfile.ZipInfo] = {}
        if self.path.is_dir():
            return
        if not self.path.is_file():
            raise SourceError(N_("There is no folder or file %(path)s"), code="source_missing", path=str(self.path))
        self._open_zip()

    def _open_zip(self) -> None:
        try:
            archive = zipfile.ZipFile(self.path)
            entries = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError):
            raise SourceError(N_("%(path)s is neither a folder nor a zip archive that can be read"),
                              code="zip_damaged", path=self.path.name) from None
        if len(entries) > MAX_ENTRIES:
            raise SourceError(N_("The archive holds more than %(limit)s files: give only the exchange files"),
                              code="zip_too_many_entries", limit=MAX_ENTRIES)
        if sum(e.file_size for e in entries) > MAX_UNPACKED_BYTES:
            raise SourceError(N_("The archive unpacks to more than %(limit)s GB: it is damaged or a zip bomb"),
                              code="zip_bomb", limit=MAX_UNPACKED_BYTES // 1024 ** 3)
        names = {spec.name for spec in md.FILES.values()}
        for entry in entries:
            if entry.is_dir():
                continue
            if entry.flag_bits & 0x1:
                raise SourceError(N_("The archive is encrypted: give it without a password"), code="zip_damaged")
            if entry.file_size > 1024 * 1024 and entry.file_size > MAX_RATIO * max(entry.compress_size, 1):
                raise SourceError(N_("%(file)s in the archive inflates more than %(ratio)s times: a zip bomb, not "
                                     "a table"), code="zip_bomb", file=entry.filename[:100], ratio=MAX_RATIO)
            base = entry.filename.rsplit("/", 1)[-1]
            if base in names and entry.filename.count("/") <= 1:
                if base in self._entries:
                    raise SourceError(N_("The archive holds %(file)s twice"), code="file_twice", file=base)
                self._entries[base] = entry
        self._zip = archive

    def open(self, kind: str) -> BinaryIO | None:
        name = md.FILES[kind].name
        if self._zip is None:
            path = self.path / name
            if path.is_symlink():
                # Read what the folder holds, not what a link points at (/etc/passwd…).
                raise SourceError(N_("%(file)s is a symbolic link: put the file itself in the folder"),
                                  code="file_symlink", file=name)
            return path.open("rb") if path.is_file() else None
        entry = self._entries.get(name)
        return _BoundedEntry(self._zip.open(entry), name) if entry else None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


class _BoundedEntry(io.RawIOBase):
    """A zip entry's stream whose damage (a wrong CRC, a lying size, bad deflate data) is the
    archive's named error, not zipfile's or zlib's exception."""

    def __init__(self, raw, name: str):
        self.raw, self.name = raw, name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.raw.read(len(buffer))
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, Exception):  # noqa: BLE001 - zlib.error too
            raise SourceError(N_("The archive is damaged: %(file)s cannot be unpacked"), code="zip_damaged",
                              file=self.name) from None
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


def _sniff_encoding(head: bytes, name: str) -> None:
    """Refuse a file that is not UTF-8, naming Windows-1251 (what Excel on Russian Windows
    writes) when that is what it is."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in head[:200]:
        raise SourceError(N_("%(file)s is not in UTF-8: save it again as UTF-8"), code="encoding_not_utf8", file=name)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return
    except UnicodeDecodeError:
        pass
    try:
        text = head.decode("cp1251")
    except UnicodeDecodeError:
        text = ""
    # What is not ASCII is nearly all Cyrillic letters when the file is Windows-1251 Russian, and
    # mostly small ones (KOI8-R read as Windows-1251 is mostly capitals).
    others = [c for c in text if not c.isascii()]
    cyrillic = [c for c in others if "а" <= c.lower() <= "я" or c in "ёЁ"]
    if others and len(cyrillic) > 0.8 * len(others) and sum(c.islower() for c in cyrillic) > len(cyrillic) / 2:
        raise SourceError(N_("%(file)s is in Windows-1251, not UTF-8: save it again as UTF-8"),
                          code="encoding_cp1251", file=name)
    raise SourceError(N_("%(file)s is not in UTF-8: save it again as UTF-8"), code="encoding_not_utf8", file=name)


def _lines(text: io.TextIOBase, name: str) -> Iterator[str]:
    while True:
        try:
            line = text.readline(MAX_LINE + 1)
        except UnicodeDecodeError:
            raise SourceError(N_("%(file)s is not in UTF-8: save it again as UTF-8"), code="encoding_not_utf8",
                              file=name) from None
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith("\n"):
            raise SourceError(N_("%(file)s has a line longer than %(limit)s characters"), code="row_too_long",
                              file=name, limit=MAX_LINE)
        yield line


def read_rows(stream: BinaryIO, spec: md.FileSpec) -> Iterator[tuple[int, dict[str, str] | None, list]]:
    """(line number, cells by column, raw values) per data row; cells is None when the row's
    width is not the header's. Raises SourceError for what makes the whole file unreadable."""
    buffered = io.BufferedReader(stream, buffer_size=1024 * 1024) if not isinstance(stream, io.BufferedIOBase) \
        else stream
    _sniff_encoding(buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES], spec.name)
    text = io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(_lines(text, spec.name), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise SourceError(N_("%(file)s is empty: it needs at least its header row"), code="header_invalid",
                              file=spec.name)
        columns = [h.strip().lower() for h in header]
        unknown = [c for c in columns if c not in spec.columns]
        missing = [c for c in spec.required if c not in columns]
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if unknown or missing or repeated:
            raise SourceError(N_("The header of %(file)s is wrong (unknown: %(unknown)s; missing: %(missing)s; "
                                 "repeated: %(repeated)s). Expected: %(expected)s"), code="header_invalid",
                              file=spec.name, unknown=", ".join(unknown)[:200] or "—",
                              missing=", ".join(missing) or "—", repeated=", ".join(repeated)[:200] or "—",
                              expected=",".join(spec.columns))
        absent = [c for c in spec.columns if c not in columns]
        count = 0
        for values in reader:
            if not values or values == [""]:
                continue
            count += 1
            if count > MAX_ROWS:
                raise SourceError(N_("%(file)s has more than %(limit)s rows"), code="file_too_many_rows",
                                  file=spec.name, limit=MAX_ROWS)
            if len(values) != len(columns):
                yield reader.line_num, None, values
                continue
            cells = dict(zip(columns, values))
            for column in absent:
                cells[column] = ""
            yield reader.line_num, cells, values
    except csv.Error as exc:
        raise SourceError(N_("%(file)s cannot be read as CSV near line %(row)s"), code="csv_malformed",
                          file=spec.name, row=reader.line_num, detail=str(exc)) from None
