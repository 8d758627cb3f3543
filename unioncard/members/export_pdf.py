"""«Скачать мои данные» as a PDF: the same facts as the JSON (members.services.my_data), laid out
for a person to read and print."""

from __future__ import annotations

import io

from unioncard.i18n import N_, translate

TITLE = N_("My data in the union's registry")
SECTIONS = {"person": N_("Person"), "membership": N_("Membership"), "cards": N_("Cards"),
            "consents": N_("Consents"), "reads": N_("Who has seen my data")}
FIELDS = {"surname": N_("Surname"), "given_name": N_("Given name"), "patronymic": N_("Patronymic"),
          "birth_date": N_("Birth date"), "sex": N_("Sex"), "phone": N_("Phone"), "email": N_("E-mail"),
          "organisation": N_("Organisation"), "category": N_("Category"), "join_date": N_("Join date")}


def _label(mapping, value) -> str:
    """A code as the member reads it («выдан», «1. Обработка органами Профсоюза»)."""
    for key, text in mapping.items():
        if str(key) == str(value):
            return translate(text, "ru")
    return "" if value is None else str(value)


def _when(text: str | None) -> str:
    """A stored moment («2026-12-06T21:56:00Z», UTC) as Moscow time, «07.12.2026 00:56 (МСК)»."""
    from datetime import datetime

    from unioncard.registry.timezones import MOSCOW, shown

    return shown(datetime.fromisoformat(text.rstrip("Z")), MOSCOW) if text else "—"


def _day(text: str | None) -> str:
    return f"{text[8:10]}.{text[5:7]}.{text[:4]}" if text and len(text) >= 10 else "—"


def _escape(value) -> str:
    return str("" if value is None else value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def pdf(data: dict, generated_at: str) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from unioncard.card_layouts.model import FONT_DIR
    from unioncard.card_layouts.render import FONT_LOCK, register_font
    from unioncard.issuer import domain as cd
    from unioncard.members.domain import READ_ACTIONS
    from unioncard.registry import domain as rd

    regular, _glyphs = register_font(FONT_DIR / "DejaVuSans.ttf")
    bold, _bold = register_font(FONT_DIR / "DejaVuSans-Bold.ttf")
    heading = ParagraphStyle("h", fontName=bold, fontSize=13, leading=16)
    subheading = ParagraphStyle("s", fontName=bold, fontSize=10.5, leading=14, spaceBefore=6)
    cell = ParagraphStyle("c", fontName=regular, fontSize=9, leading=11)
    grid = TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP")])
    usable = A4[0] - 24 * mm
    t = lambda msgid: translate(msgid, "ru")  # noqa: E731 - the member's document is in Russian

    def table(rows, widths):
        built = Table([[Paragraph(_escape(v), cell) for v in row] for row in rows], colWidths=widths, repeatRows=0)
        built.setStyle(grid)
        return built

    story = [Paragraph(_escape(t(TITLE)), heading), Paragraph(_escape(generated_at), cell), Spacer(1, 4 * mm)]
    for key in ("person", "membership"):
        story.append(Paragraph(_escape(t(SECTIONS[key])), subheading))
        labels = {"sex": rd.SEX_LABELS, "category": rd.CATEGORY_LABELS}
        rows = [(t(FIELDS.get(k, k)), " › ".join(v) if isinstance(v, list) else
                 (_label(labels[k], v) if k in labels else _day(v) if k.endswith("_date") else v))
                for k, v in data[key].items()]
        story.append(table(rows, [usable * 0.35, usable * 0.65]))
    story.append(Paragraph(_escape(t(SECTIONS["cards"])), subheading))
    for card in data["cards"]:
        history = "; ".join(f"{_when(e['at'])}: {_label(cd.STATUS_LABELS, e['to'])}" for e in card["history"])
        story.append(table([(t(N_("Card")), t(N_("Number")), t(N_("Status")), t(N_("History")))],
                           [usable * 0.15, usable * 0.25, usable * 0.15, usable * 0.45]))
        story.append(table([(_label(cd.KIND_LABELS, card["kind"]), card["number"] or "—",
                             _label(cd.STATUS_LABELS, card["status"]), history)],
                           [usable * 0.15, usable * 0.25, usable * 0.15, usable * 0.45]))
    story.append(Paragraph(_escape(t(SECTIONS["consents"])), subheading))
    if data["consents"]:
        story.append(table([(t(N_("Section")), t(N_("Given")), t(N_("Form")), t(N_("Withdrawn")))]
                           + [(_label(rd.CONSENT_SECTION_LABELS, c["section"]), _day(c["given_on"]),
                               _label(rd.CONSENT_FORM_LABELS, c["form"]), _day(c["withdrawn_on"]))
                              for c in data["consents"]],
                           [usable * 0.35, usable * 0.2, usable * 0.2, usable * 0.25]))
    story.append(Paragraph(_escape(t(SECTIONS["reads"])), subheading))
    if data["reads"]:
        story.append(table([(_when(r["at"]), r["organisation"], _label(rd.ROLE_LABELS, r["role"]),
                             _label(READ_ACTIONS, r["action"]))
                            for r in data["reads"]], [usable * 0.2, usable * 0.4, usable * 0.2, usable * 0.2]))
    out = io.BytesIO()
    with FONT_LOCK:
        SimpleDocTemplate(out, pagesize=A4, title=t(TITLE), leftMargin=12 * mm, rightMargin=12 * mm,
                          topMargin=12 * mm, bottomMargin=12 * mm).build(story)
    return out.getvalue()
