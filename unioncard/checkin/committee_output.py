"""The credentials committee's report («протокол мандатной комиссии») on paper: a PDF with the
signature lines and an XLSX, both from one CommitteeReport (checkin.services.committee_report)."""

from __future__ import annotations

import io

from unioncard import tables
from unioncard.i18n import N_, translate as _
from unioncard.registry.domain import SEX_LABELS

AGE_LABELS = {"young": N_("under 35"), "older": N_("35 and older")}


def _sex_label(sex) -> str:
    return _(SEX_LABELS[sex]) if sex in SEX_LABELS else _("not recorded")


def title_lines(report, moment_text: str) -> list[str]:
    day = report.day.strftime("%d.%m.%Y") if report.day else _("all days of the event")
    return [_("Report of the credentials committee"), report.event.name,
            _("Day: %(day)s; as of %(moment)s", day=day, moment=moment_text)]


def summary_rows(report) -> list[tuple[str, str]]:
    quorum = report.quorum
    rows = [(_("Elected delegates"), str(quorum.elected)), (_("Registered"), str(quorum.present)),
            (_("Absent"), str(quorum.elected - quorum.present))]
    if quorum.rule:
        rows += [(_("Quorum rule"), quorum.rule), (_("Needed for the quorum"), str(quorum.needed)),
                 (_("Quorum"), _("reached") if quorum.reached else _("not reached"))]
    else:
        rows.append((_("Quorum rule"), _("not set")))
    return rows


def breakdowns(report) -> list[tuple[str, list[tuple[str, int, int]]]]:
    return [(_("By region"), [(f"{code} {name}" if name != code else code, e, r)
                              for code, name, e, r in report.by_region]),
            (_("By sex"), [(_sex_label(sex), e, r) for sex, e, r in report.by_sex]),
            (_("By age"), [(_(AGE_LABELS[group]), e, r) for group, e, r in report.by_age])]


def absent_rows(report) -> list[list[str]]:
    return [[d.name, d.organisation, d.region_code, d.absence or ""] for d in report.absent]


def xlsx(report, moment_text: str) -> bytes:
    lines = title_lines(report, moment_text)
    summary = tables.Table([_("Indicator"), _("Value")],
                           [[label, int(value) if value.isdigit() else value] for label, value in summary_rows(report)],
                           title=f"{lines[0]}. {lines[1]}. {lines[2]}", sheet_title=_("Summary"), widths=[40, 60])
    sheets = [summary]
    for title, rows in breakdowns(report):
        sheets.append(tables.Table([title, _("Elected"), _("Registered"), _("Absent")],
                                   [[label, e, r, e - r] for label, e, r in rows], sheet_title=title,
                                   widths=[50, 12, 14, 12]))
    sheets.append(tables.Table([_("Delegate"), _("Organisation"), _("Region"), _("Reason of absence")],
                               absent_rows(report), sheet_title=_("Absent"), widths=[40, 50, 8, 50]))
    return tables.write_tables(*sheets)


def pdf(report, moment_text: str) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from unioncard.card_layouts.model import FONT_DIR
    from unioncard.card_layouts.render import FONT_LOCK, register_font

    regular, _glyphs = register_font(FONT_DIR / "DejaVuSans.ttf")
    bold, _bold_glyphs = register_font(FONT_DIR / "DejaVuSans-Bold.ttf")
    heading = ParagraphStyle("h", fontName=bold, fontSize=13, leading=16)
    subheading = ParagraphStyle("s", fontName=bold, fontSize=10.5, leading=13)
    text = ParagraphStyle("t", fontName=regular, fontSize=9.5, leading=12)
    cell = ParagraphStyle("c", fontName=regular, fontSize=8.5, leading=10)
    head = ParagraphStyle("hc", fontName=bold, fontSize=8.5, leading=10)
    style = TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8EEF6"))])
    usable = A4[0] - 24 * mm
    lines = title_lines(report, moment_text)
    story = [Paragraph(_escape(lines[0]), heading), Paragraph(_escape(lines[1]), subheading),
             Paragraph(_escape(lines[2]), text), Spacer(1, 4 * mm)]
    summary = Table([[Paragraph(_escape(label), cell), Paragraph(_escape(value), cell)]
                     for label, value in summary_rows(report)], colWidths=[usable * 0.6, usable * 0.4])
    summary.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey)]))
    story += [summary, Spacer(1, 4 * mm)]
    for title, rows in breakdowns(report):
        data = [[Paragraph(_escape(h), head) for h in (title, _("Elected"), _("Registered"), _("Absent"))]]
        data += [[Paragraph(_escape(label), cell), str(e), str(r), str(e - r)] for label, e, r in rows]
        table = Table(data, colWidths=[usable * 0.55] + [usable * 0.15] * 3, repeatRows=1)
        table.setStyle(style)
        story += [table, Spacer(1, 3 * mm)]
    story.append(Paragraph(_escape(_("Absent delegates")), subheading))
    absent = absent_rows(report)
    if absent:
        data = [[Paragraph(_escape(h), head) for h in (_("Delegate"), _("Organisation"), _("Region"),
                                                       _("Reason of absence"))]]
        data += [[Paragraph(_escape(v), cell) for v in row] for row in absent]
        table = Table(data, colWidths=[usable * 0.28, usable * 0.34, usable * 0.1, usable * 0.28], repeatRows=1)
        table.setStyle(style)
        story.append(table)
    else:
        story.append(Paragraph(_escape(_("Every elected delegate is registered.")), text))
    story.append(Spacer(1, 12 * mm))
    for line in (_("Chair of the credentials committee"), _("Secretary of the credentials committee")):
        story += [Paragraph(_escape(f"{line} ____________________ / ____________________ /"), text), Spacer(1, 8 * mm)]
    out = io.BytesIO()
    with FONT_LOCK:
        SimpleDocTemplate(out, pagesize=A4, title=lines[0], leftMargin=12 * mm, rightMargin=12 * mm,
                          topMargin=12 * mm, bottomMargin=12 * mm).build(story)
    return out.getvalue()


def _escape(value: str) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
