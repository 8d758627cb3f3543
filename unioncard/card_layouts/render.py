"""Draw card faces with reportlab: one PDF page per face at the card's own size, a batch in print
order (front, back, front, back …), and PNG previews rendered from that same PDF (pypdfium2), so
what people look at is exactly what goes to the printer.

Text never leaves its box: a long value is set smaller (down to ``min_size``), then wrapped (up to
``max_lines``), then cut with an ellipsis. A character the font cannot draw is an error that names
the field, before anything is printed.
"""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import zxingcpp
from barcode import Code128
from reportlab import rl_config
from reportlab.lib.colors import HexColor
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from unioncard.card_layouts.model import CARD_HEIGHT_MM, CARD_WIDTH_MM, Element, Layout, LayoutError
from unioncard.i18n import N_

PAGE = (CARD_WIDTH_MM * mm, CARD_HEIGHT_MM * mm)
LINE_HEIGHT = 1.18
BARCODE_QUIET_MODULES = 10
QR_QUIET_MODULES = 2


class MissingGlyph(LayoutError):
    code = "layout_font_missing_glyph"
    message = N_("Font %(font)s has no sign «%(char)s» needed for %(where)s: choose a font with this letter")


@dataclass(frozen=True)
class CardFace:
    """What one card prints: values for the layout's fields."""

    values: dict

    def value(self, field: str) -> str:
        return str(self.values.get(field) or "")


# reportlab keeps a TrueType font's subsets in the one registered font object, shared by every
# document being written: two documents written at once by two threads corrupt each other's
# subsets (KeyError in makeSubset, seen as a rare 500 on the layout preview). One at a time.
FONT_LOCK = threading.RLock()


@lru_cache(maxsize=32)
def register_font(path: Path) -> tuple[str, frozenset]:
    name = f"uc-{path.stem}"
    try:
        pdfmetrics.getFont(name)
    except KeyError:
        pdfmetrics.registerFont(TTFont(name, str(path)))
    face = pdfmetrics.getFont(name).face
    return name, frozenset(face.charToGlyph)


@lru_cache(maxsize=16)
def _image(path: Path) -> ImageReader:
    return ImageReader(str(path))


def check_glyphs(layout: Layout, element: Element, text: str) -> None:
    font_path = layout.fonts[element.get("font")]
    _, glyphs = register_font(font_path)
    for char in text:
        if not char.isspace() and ord(char) not in glyphs:
            raise MissingGlyph(layout=layout.name, where=element.where, problem="", font=font_path.name, char=char)


def _tokens(text: str) -> list[tuple[str, bool]]:
    """Words, and the parts of hyphenated words («Салтыкова-» «Щедрина»), each with whether a space
    comes before it: a double surname may break after its hyphen, as typesetters break it."""
    tokens = []
    for word in text.split():
        parts = word.split("-")
        for index, part in enumerate(parts):
            piece = part + ("-" if index < len(parts) - 1 else "")
            if piece:
                tokens.append((piece, index == 0))
    return tokens


def _wrap(words: tuple[str, ...], widths: tuple[float, ...], space: float, limit: float,
          spaced: tuple[bool, ...] | None = None) -> list[str]:
    """Greedy wrap with widths at size 1 (TrueType widths scale linearly with size). ``spaced``
    says which tokens follow a space (the others continue a hyphenated word)."""
    spaced = spaced or (True,) * len(words)
    lines, current, current_width = [], "", 0.0
    for word, width, gap in zip(words, widths, spaced):
        joiner = " " if (current and gap) else ""
        candidate = current_width + (space if joiner else 0) + width
        if current and candidate > limit:
            lines.append(current)
            current, current_width = word, width
        else:
            current += joiner + word
            current_width = candidate
    if current:
        lines.append(current)
    return lines


@lru_cache(maxsize=4096)
def fit_text(text: str, font: str, size: float, min_size: float, max_lines: int, width: float,
             height: float) -> tuple[float, tuple[str, ...]]:
    """The largest size (≤ size, ≥ min_size) at which ``text`` fits the box, and its lines."""
    tokens = _tokens(text)
    if not tokens:
        return size, ()
    words = tuple(t for t, _ in tokens)
    spaced = tuple(g for _, g in tokens)
    unit = {word: pdfmetrics.stringWidth(word, font, 1.0) for word in words}
    widths = tuple(unit[word] for word in words)
    space = pdfmetrics.stringWidth(" ", font, 1.0)
    current = size
    while current >= min_size - 1e-9:
        lines = _wrap(words, widths, space, width / current, spaced)
        if (len(lines) <= max_lines and len(lines) * current * LINE_HEIGHT <= height + 0.01
                and max(widths) * current <= width):
            return current, tuple(lines)
        current -= 0.25
    # Still too long at the smallest size: fill the lines there and cut the last one.
    current = min_size
    lines_fit = max(1, min(max_lines, int(height // (current * LINE_HEIGHT)) or 1))
    lines = _wrap(words, widths, space, width / current, spaced)[:lines_fit]
    cut = []
    for line in lines:
        while pdfmetrics.stringWidth(line, font, current) > width and len(line) > 1:
            line = line[:-1]
        cut.append(line)
    last = cut[-1]
    if " ".join(cut) != " ".join(_wrap(words, widths, space, float("inf"), spaced)):
        while last and pdfmetrics.stringWidth(last + "…", font, current) > width:
            last = last[:-1]
        cut[-1] = last.rstrip() + "…"
    return current, tuple(cut)


class CardRenderer:
    """Renders faces of one layout; reuse it for a whole batch."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.page = (layout.width_mm * mm, layout.height_mm * mm)
        for path in layout.fonts.values():
            register_font(path)
        self.segments = {name: self._segments(face.elements) for name, face in layout.faces.items()}

    # -- checks before printing -----------------------------------------------------------------
    def check(self, card: CardFace) -> None:
        for face in self.layout.faces.values():
            for element in face.elements:
                if element.type == "text":
                    check_glyphs(self.layout, element, self._text(element, card))

    def _text(self, element: Element, card: CardFace) -> str:
        text = element.get("text") if element.get("text") is not None else card.value(element.get("field"))
        return text.upper() if element.get("upper") else text

    # -- drawing ----------------------------------------------------------------------------------
    def pdf(self, cards: list[CardFace], faces=("front", "back")) -> bytes:
        with FONT_LOCK:
            buffer = io.BytesIO()
            rl_config.useA85 = 0  # binary streams: ASCII85 only makes the file bigger and slower to write
            pdf = canvas.Canvas(buffer, pagesize=self.page, pageCompression=1)
            pdf.setTitle("UnionCard cards" if self.layout.kind == "card" else f"UnionCard {self.layout.name}")
            pdf.setCreator("UnionCard")
            for card in cards:
                self.check(card)
                for face_name in faces:
                    if face_name in self.layout.faces:
                        self._face(pdf, face_name, card)
                        pdf.showPage()
            pdf.save()
            return buffer.getvalue()

    def _face(self, pdf: canvas.Canvas, face_name: str, card: CardFace) -> None:
        # What is the same on every card (background, bands, fixed texts, images) is drawn once
        # per document as a form; each card's page draws only its own data over it, in layout order.
        forms = pdf.__dict__.setdefault("_unioncard_forms", {})
        for index, segment in enumerate(self.segments[face_name]):
            if isinstance(segment, Element):
                getattr(self, f"_draw_{segment.type}")(pdf, segment, card)
                continue
            key = (face_name, index)
            if key not in forms:
                forms[key] = f"face_{face_name}_{index}"
                pdf.beginForm(forms[key])
                if index == 0:
                    pdf.setFillColor(HexColor(self.layout.faces[face_name].background))
                    pdf.rect(0, 0, self.page[0], self.page[1], stroke=0, fill=1)
                for element in segment:
                    getattr(self, f"_draw_{element.type}")(pdf, element, card)
                pdf.endForm()
            pdf.doForm(forms[key])

    @staticmethod
    def _segments(elements) -> list:
        """Runs of card-independent elements (as lists) between the elements that show card data."""
        segments: list = [[]]
        for element in elements:
            if element.get("field"):
                segments.append(element)
                segments.append([])
            else:
                segments[-1].append(element)
        return segments

    def _box(self, element: Element) -> tuple[float, float, float, float]:
        """reportlab's origin is bottom-left; layouts measure from the top-left."""
        return element.x * mm, (self.layout.height_mm - element.y - element.h) * mm, element.w * mm, element.h * mm

    def _draw_rect(self, pdf, element, card):
        x, y, w, h = self._box(element)
        stroke = element.get("stroke")
        if stroke:
            pdf.setStrokeColor(HexColor(stroke))
            pdf.setLineWidth(float(element.get("stroke_width", 0.3)) * mm)
        pdf.setFillColor(HexColor(element.get("fill", "#FFFFFF")))
        radius = float(element.get("radius", 0)) * mm
        fill = 1 if element.get("fill") else 0
        if radius:
            pdf.roundRect(x, y, w, h, radius, stroke=1 if stroke else 0, fill=fill)
        else:
            pdf.rect(x, y, w, h, stroke=1 if stroke else 0, fill=fill)

    def _draw_text(self, pdf, element, card):
        text = self._text(element, card)
        if not text.strip():
            return
        font, _ = register_font(self.layout.fonts[element.get("font")])
        x, y, w, h = self._box(element)
        size, lines = fit_text(text, font, float(element.get("size")), float(element.get("min_size")),
                               int(element.get("max_lines")), w, h)
        pdf.setFillColor(HexColor(element.get("color", "#000000")))
        pdf.setFont(font, size)
        top = y + h
        align = element.get("align")
        for index, line in enumerate(lines):
            baseline = top - size * (index + 0.85) - size * (LINE_HEIGHT - 1) * index
            if align == "center":
                pdf.drawCentredString(x + w / 2, baseline, line)
            elif align == "right":
                pdf.drawRightString(x + w, baseline, line)
            else:
                pdf.drawString(x, baseline, line)

    def _draw_barcode(self, pdf, element, card):
        value = card.value(element.get("field")).replace(" ", "")
        if not value:
            return
        modules = Code128(value).build()[0]
        x, y, w, h = self._box(element)
        pdf.setFillColor(HexColor("#FFFFFF"))
        pdf.rect(x, y, w, h, stroke=0, fill=1)
        module = w / (len(modules) + 2 * BARCODE_QUIET_MODULES)
        # Drawn in module units, one fill of all bars written as PDF operators (as the QR code).
        pdf.saveState()
        pdf.translate(x + BARCODE_QUIET_MODULES * module, y)
        pdf.scale(module, h)
        bars = [f"{run.start()} 0 {run.end() - run.start()} 1 re" for run in _BAR_RUN.finditer(modules)]
        pdf.setFillColor(HexColor(element.get("color", "#000000")))
        pdf.addLiteral("\n".join(bars) + "\nf")
        pdf.restoreState()

    def _draw_qr(self, pdf, element, card):
        value = card.value(element.get("field"))
        if not value:
            return
        matrix = qr_matrix(value)
        x, y, w, h = self._box(element)
        pdf.setFillColor(HexColor("#FFFFFF"))
        pdf.rect(x, y, w, h, stroke=0, fill=1)
        count = len(matrix) + 2 * QR_QUIET_MODULES
        size = len(matrix)
        # Drawn in module units (one module = 1), so the path holds small integers.
        pdf.saveState()
        pdf.translate(x + QR_QUIET_MODULES * w / count, y + QR_QUIET_MODULES * h / count)
        pdf.scale(w / count, h / count)
        operators = []
        for row_index, row in enumerate(matrix):
            bottom = size - row_index - 1
            operators.extend(f"{run.start()} {bottom} {run.end() - run.start()} 1 re" for run in _DARK_RUN.finditer(row))
        pdf.setFillColor(HexColor(element.get("color", "#000000")))
        # One fill of all module rectangles, written as PDF operators in module units.
        pdf.addLiteral("\n".join(operators) + "\nf")
        pdf.restoreState()

    def _draw_image(self, pdf, element, card):
        x, y, w, h = self._box(element)
        pdf.drawImage(_image(element.get("path")), x, y, w, h, mask="auto", preserveAspectRatio=True, anchor="c")


_BAR_RUN = re.compile("1+")
_DARK_RUN = re.compile(b"\x01+")
_DARK_AS_ONE = bytes.maketrans(bytes(range(256)), b"\x01" + b"\x00" * 255)


def qr_matrix(text: str) -> list[bytes]:
    """The QR code's modules, row by row (1 dark, 0 light), at error correction M, in the
    smallest version and the densest mode that hold the text (alphanumeric for our credential),
    by zxing-cpp's encoder (compiled: 0.2 ms a code where the pure-Python encoder took 7 ms, most of
    a card face's time)."""
    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    image = memoryview(code.to_image(scale=1, add_quiet_zones=False))
    size, width = image.shape
    data = image.tobytes().translate(_DARK_AS_ONE)  # the image is 0 for dark, 255 for light
    return [data[row * width:(row + 1) * width] for row in range(size)]


# PDFium is not thread-safe (pypdfium2 says so): two previews rendered at once in the threaded web
# server corrupted its heap and killed the process. Every call into it holds this lock.
_PDFIUM_LOCK = threading.Lock()


def png_previews(pdf_bytes: bytes, dpi: int = 300) -> list[bytes]:
    """Each page of a card PDF as a PNG (for people who would rather look than read)."""
    import pypdfium2

    images = []
    with _PDFIUM_LOCK:
        document = pypdfium2.PdfDocument(pdf_bytes)
        try:
            for page in document:
                bitmap = page.render(scale=dpi / 72)
                out = io.BytesIO()
                # to_pil() may share the bitmap's buffer: encode before PDFium frees it.
                bitmap.to_pil().save(out, format="PNG")
                images.append(out.getvalue())
                bitmap.close()
                page.close()
        finally:
            document.close()
    return images
