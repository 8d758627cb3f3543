"""Every export as people open and print it: LibreOffice (headless Calc, the same engine as the
office programs the union's volunteers use) converts each downloaded workbook to CSV and to PDF.
A neutralised value (a phone «+7…», a formula-like «=…») shows as itself, never with the
apostrophe that neutralises it; every sheet prints one page wide with its header row."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import WebClient
from tests.test_access_sweep import routes
from tests.test_phone_pages import full_union  # noqa: F401  (the fixture: a union with something everywhere)

SOFFICE = shutil.which("soffice") or "/usr/bin/soffice"
# (login, address, a header the printed page must show)
EXPORTS = {
    "registry.export_members": ("chair_a", "/registry/org/{organisation_id}/export.xlsx", "Фамилия"),
    "registry.import_template": ("chair_a", "/registry/import-template.xlsx", "Фамилия"),
    "reports.coverage_xlsx": ("region_a", "/reports/coverage.xlsx", "Региональная"),
    "events.export": ("events", "/events/{event_id}/checkins.xlsx", "Номер"),
    "events.committee_file": ("events", "/events/{event_id}/committee.xlsx?day=all", "Наименование показателей"),
    "bureau.manifest": ("bureau", "/bureau/batches/{batch_id}/manifest.xlsx", "Номер"),
    "statistics.form_xlsx": ("chair_a", "/statistics/{year}/org/{organisation_id}.xlsx", "Наименование показателей"),
}
# Workbooks of more than one sheet print a page per sheet (Form 2: Table II and last year's comparison).
SHEETS = {"statistics.form_xlsx": 2, "events.committee_file": 5}


def test_every_spreadsheet_route_is_checked_here(app):
    spreadsheets = {rule.endpoint for rule in routes(app) if re.search(r"xlsx", rule.rule)}
    assert spreadsheets <= set(EXPORTS), spreadsheets - set(EXPORTS)


def _convert(files: list[Path], to: str, out: Path, profile: Path) -> None:
    assert Path(SOFFICE).exists(), "LibreOffice not found: run scripts/setup.sh --test"
    subprocess.run([SOFFICE, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", to,
                    "--outdir", str(out), *map(str, files)], check=True, capture_output=True, timeout=240)


def _pdf_pages(path: Path) -> tuple[int, str]:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1)), text


def test_every_export_opens_without_apostrophes_and_prints_one_page_wide(app, full_union, make_uow, tree,
                                                                         tmp_path):
    from unioncard.registry import services
    from unioncard.registry.actor import Actor
    from unioncard.registry.services import PersonData

    with make_uow() as uow:
        # The values the neutralising writer must protect: a phone that starts with «+», an
        # e-mail address that starts with «=».
        membership = services.get_membership(uow.session, Actor.system("t"), tree.members["ivanov"])
        p = membership.person
        services.update_member(uow, Actor.system("t"), membership.id, PersonData(
            surname=p.surname, given_name=p.given_name, patronymic=p.patronymic, birth_date=p.birth_date,
            sex=p.sex, phone="+79254905401", email="=cmd@example.ru"), category=membership.category,
            join_date=membership.join_date)
        uow.commit()
    files = []
    for endpoint, (login, address, _header) in EXPORTS.items():
        web = WebClient(app)
        web.login(login)
        response = web.get(address.format(**full_union))
        assert response.status_code == 200 and response.data[:2] == b"PK", (endpoint, response.status_code)
        path = tmp_path / f"{endpoint.replace('.', '-')}.xlsx"
        path.write_bytes(response.data)
        files.append(path)
    profile = tmp_path / "lo-profile"
    _convert(files, "csv:Text - txt - csv (StarCalc):44,34,76", tmp_path / "csv", profile)
    _convert(files, "pdf", tmp_path / "pdf", profile)
    for endpoint, (login, address, header) in EXPORTS.items():
        stem = endpoint.replace(".", "-")
        rows = list(csv.reader(io.StringIO((tmp_path / "csv" / f"{stem}.csv").read_text(encoding="utf-8"))))
        cells = [cell for row in rows for cell in row]
        assert not [c for c in cells if c.startswith("'")], (endpoint, [c for c in cells if c.startswith("'")])
        pages, text = _pdf_pages(tmp_path / "pdf" / f"{stem}.pdf")
        # A small export is one page; one page wide means no column spilled onto a page of its own.
        assert pages == SHEETS.get(endpoint, 1), (endpoint, pages)
        assert header in text, (endpoint, text[:300])
    members = (tmp_path / "csv" / "registry-export_members.csv").read_text(encoding="utf-8")
    assert "+79254905401" in members and "=cmd@example.ru" in members and "'+7" not in members
