"""Shipment manifests: what is in a region's parcel, by organisation (XLSX and PDF)."""

from __future__ import annotations

import io
from itertools import groupby

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from unioncard.card_layouts.model import FONT_DIR
from unioncard.card_layouts.render import FONT_LOCK, register_font
from unioncard import tables
from unioncard.i18n import translate_plural

HEADERS = ("№", "Организация", "Член профсоюза", "Номер карты")


def title(batch, region_name: str) -> str:
    return f"Опись отправки: партия № {batch.id}, {region_name}"


def xlsx(batch, region_name: str, rows) -> bytes:
    return tables.write_tables(tables.Table(
        list(HEADERS), ([index, row.organisation, row.member, row.number] for index, row in enumerate(rows, 1)),
        title=title(batch, region_name), sheet_title=f"Партия {batch.id}", widths=[6, 50, 40, 24],
        total=["Всего карт", len(rows)], landscape=False))


def pdf(batch, region_name: str, rows) -> bytes:
    regular, _ = register_font(FONT_DIR / "DejaVuSans.ttf")
    bold, _ = register_font(FONT_DIR / "DejaVuSans-Bold.ttf")
    heading = ParagraphStyle("h", fontName=bold, fontSize=13, leading=16)
    cell = ParagraphStyle("c", fontName=regular, fontSize=8.5, leading=10.5)
    story = [Paragraph(title(batch, region_name), heading), Spacer(1, 4 * mm)]
    for organisation, group in groupby(rows, key=lambda r: r.organisation):
        group = list(group)
        cards = translate_plural("%(num)s card", "%(num)s cards", len(group))
        story.append(Paragraph(f"{organisation} — {cards}", ParagraphStyle("o", parent=heading,
                                                                                          fontSize=10.5)))
        data = [list(HEADERS[2:]) + ["Получено"]] + [[Paragraph(r.member, cell), r.number, ""] for r in group]
        table = Table(data, colWidths=(85 * mm, 50 * mm, 30 * mm), repeatRows=1)
        table.setStyle(TableStyle([
            ("FONT", (0, 0), (-1, 0), bold, 9), ("FONT", (0, 1), (-1, -1), regular, 9),
            ("GRID", (0, 0), (-1, -1), 0.4, colors.grey), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8EEF6")),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
        story += [Spacer(1, 2 * mm), table, Spacer(1, 5 * mm)]
    story.append(Paragraph(f"Всего карт: {len(rows)}. Отправил: ____________ Принял: ____________", cell))
    out = io.BytesIO()
    with FONT_LOCK:  # the fonts' subsets are shared with every other document being written
        SimpleDocTemplate(out, pagesize=A4, title=title(batch, region_name), leftMargin=15 * mm,
                          rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm).build(story)
    return out.getvalue()
