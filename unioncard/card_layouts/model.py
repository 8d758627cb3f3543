"""A card layout is data: a JSON file that says what goes where on the CR80 card, in millimetres
from the top-left corner. This module reads and checks it (no drawing here: render.py draws).

    {"name": ..., "fonts": {"regular": "DejaVuSans.ttf", ...},
     "faces": {"front": {"background": "#RRGGBB", "elements": [...]}, "back": {...}}}

Elements: ``rect`` (x, y, w, h, fill, radius), ``text`` (x, y, w, h, text or field, font, size,
min_size, max_lines, color, align), ``barcode`` (x, y, w, h, field: Code 128), ``qr`` (x, y, size,
field), ``image`` (x, y, w, h, path beside the layout file). Every element has an optional ``name``.
A mistake is reported with the element it is in (``faces.front.elements[3] (name): …``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from unioncard.errors import ValidationError
from unioncard.i18n import N_

CARD_WIDTH_MM = 85.60
CARD_HEIGHT_MM = 53.98
FACES = ("front", "back")
# What a layout may print: the card's own data, nothing else about the person.
FIELDS = {"surname", "given_names", "full_name", "number", "credential", "region_name", "organisation_name",
          "issued_on", "union_name"}
# A badge or a delegate's mandate, printed at the registration desk: what the desk knows of the
# person from the event's list (no birth date, no contacts) and of the event.
BADGE_FIELDS = {"surname", "given_names", "full_name", "number", "region_name", "organisation_name", "role",
                "event_name", "event_dates", "event_venue", "union_name", "checked_in_on", "mandate_number"}
KINDS = {"card": FIELDS, "badge": BADGE_FIELDS}
# The largest page a layout may have (A4): badges are 90 × 55 mm or A6, mandates A6 or A5.
MAX_PAGE_MM = (210.0, 297.0)
BUILTIN_DIR = Path(__file__).parent / "layouts"
FONT_DIR = Path(__file__).parent / "fonts"

_COMMON = {"type", "name", "x", "y"}
_ALLOWED = {
    "rect": _COMMON | {"w", "h", "fill", "radius", "stroke", "stroke_width"},
    "text": _COMMON | {"w", "h", "text", "field", "font", "size", "min_size", "max_lines", "color", "align",
                       "upper"},
    "barcode": _COMMON | {"w", "h", "field", "color"},
    "qr": _COMMON | {"size", "field", "color"},
    "image": _COMMON | {"w", "h", "path"},
}
_REQUIRED = {"rect": {"w", "h"}, "text": {"w", "h"}, "barcode": {"w", "h", "field"}, "qr": {"size", "field"},
             "image": {"w", "h", "path"}}
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class LayoutError(ValidationError):
    code = "layout_invalid"
    message = N_("Card layout «%(layout)s», %(where)s: %(problem)s")


@dataclass(frozen=True)
class Element:
    type: str
    where: str
    x: float
    y: float
    w: float
    h: float
    props: dict = field(default_factory=dict)

    def get(self, key, default=None):
        return self.props.get(key, default)


@dataclass(frozen=True)
class Face:
    name: str
    background: str
    elements: tuple[Element, ...]


@dataclass(frozen=True)
class Layout:
    name: str
    source: Path
    fonts: dict[str, Path]
    faces: dict[str, Face]
    kind: str = "card"
    width_mm: float = CARD_WIDTH_MM
    height_mm: float = CARD_HEIGHT_MM

    def fields_used(self) -> set[str]:
        return {e.get("field") for f in self.faces.values() for e in f.elements if e.get("field")}


def builtin(name: str = "union") -> Layout:
    return load(BUILTIN_DIR / f"{name}.json")


def from_setting(value: str) -> Layout:
    """The layout UNIONCARD_BUREAU_LAYOUT names: a JSON file, or a built-in layout's name."""
    return load(value) if value.endswith(".json") or Path(value).is_file() else builtin(value)


def load(path: str | Path) -> Layout:
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LayoutError(layout=path.name, where="file", problem=str(exc)[:200]) from None
    return parse(raw, path)


def parse(raw: dict, source: Path) -> Layout:
    layout_name = str(raw.get("name") or source.stem)

    def fail(where: str, problem: str):
        raise LayoutError(layout=layout_name, where=where, problem=problem)

    unknown = set(raw) - {"name", "title", "fonts", "faces", "kind", "size"}
    if unknown:
        fail("top level", f"unknown key(s) {', '.join(sorted(unknown))}")
    kind = raw.get("kind", "card")
    if kind not in KINDS:
        fail("kind", f"unknown kind {kind!r} (card, badge)")
    width, height = CARD_WIDTH_MM, CARD_HEIGHT_MM
    if "size" in raw:
        size = raw["size"]
        if kind == "card":
            fail("size", "a card is always CR80 (85.60 × 53.98 mm)")
        if not isinstance(size, dict) or set(size) != {"w", "h"}:
            fail("size", "size is {\"w\": mm, \"h\": mm}")
        width, height = _number(size["w"], "size", "w", fail), _number(size["h"], "size", "h", fail)
        if not (20 <= width <= MAX_PAGE_MM[0] and 20 <= height <= MAX_PAGE_MM[1]):
            fail("size", f"{width} × {height} mm: a page is 20 mm to A4")
    page = (width, height, KINDS[kind])
    fonts = {}
    for key, file_name in (raw.get("fonts") or {"regular": "DejaVuSans.ttf"}).items():
        candidates = [source.parent / file_name, FONT_DIR / file_name]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            fail(f"fonts.{key}", f"font file {file_name} not found")
        fonts[key] = found
    faces = {}
    for face_name, face in (raw.get("faces") or {}).items():
        if face_name not in FACES:
            fail(f"faces.{face_name}", "a card has only a front and a back")
        if set(face) - {"background", "elements"}:
            fail(f"faces.{face_name}", f"unknown key(s) {', '.join(sorted(set(face) - {'background', 'elements'}))}")
        background = face.get("background", "#FFFFFF")
        if not _COLOR.match(str(background)):
            fail(f"faces.{face_name}.background", f"colour {background!r} is not #RRGGBB")
        elements = []
        for index, element in enumerate(face.get("elements") or []):
            elements.append(_element(element, f"faces.{face_name}.elements[{index}]", fonts, source, fail, page))
        faces[face_name] = Face(face_name, background, tuple(elements))
    if "front" not in faces:
        fail("faces", "the front face is missing")
    return Layout(layout_name, source, fonts, faces, kind, width, height)


def _number(value, where, key, fail) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(where, f"{key} must be a number of millimetres, not {value!r}")
    return float(value)


def _element(raw, where, fonts, source, fail, page) -> Element:
    width, height, fields = page
    if not isinstance(raw, dict):
        fail(where, "an element must be an object")
    kind = raw.get("type")
    if raw.get("name"):
        where = f"{where} ({raw['name']})"
    if kind not in _ALLOWED:
        fail(where, f"unknown element type {kind!r} (rect, text, barcode, qr, image)")
    unknown = set(raw) - _ALLOWED[kind]
    if unknown:
        fail(where, f"unknown field(s) {', '.join(sorted(unknown))}")
    missing = _REQUIRED[kind] - set(raw)
    if missing:
        fail(where, f"missing {', '.join(sorted(missing))}")
    x = _number(raw.get("x"), where, "x", fail)
    y = _number(raw.get("y"), where, "y", fail)
    if kind == "qr":
        w = h = _number(raw["size"], where, "size", fail)
    else:
        w = _number(raw["w"], where, "w", fail)
        h = _number(raw["h"], where, "h", fail)
    if w <= 0 or h <= 0:
        fail(where, "width and height must be positive")
    if x < 0 or y < 0 or x + w > width + 1e-6 or y + h > height + 1e-6:
        fail(where, f"the box {x}..{x + w} × {y}..{y + h} mm leaves the page ({width} × {height} mm)")
    props = {k: v for k, v in raw.items() if k not in ("type", "x", "y", "w", "h")}
    if "field" in props and props["field"] not in fields:
        fail(where, f"unknown data field {props['field']!r} (known: {', '.join(sorted(fields))})")
    if kind == "text":
        if ("text" in props) == ("field" in props):
            fail(where, "a text element needs either text or field")
        font = props.setdefault("font", "regular")
        if font not in fonts:
            fail(where, f"font {font!r} is not declared in fonts")
        size = _number(props.setdefault("size", 8), where, "size", fail)
        min_size = _number(props.setdefault("min_size", min(size, 5)), where, "min_size", fail)
        if not 3 <= min_size <= size:
            fail(where, "min_size must be between 3 pt and size")
        if not isinstance(props.setdefault("max_lines", 1), int) or props["max_lines"] < 1:
            fail(where, "max_lines must be a whole number ≥ 1")
        if props.setdefault("align", "left") not in ("left", "center", "right"):
            fail(where, "align must be left, center or right")
    for key in ("fill", "color", "stroke"):
        if key in props and not _COLOR.match(str(props[key])):
            fail(where, f"{key} {props[key]!r} is not #RRGGBB")
    if kind == "image":
        image = source.parent / props["path"]
        if not image.is_file():
            fail(where, f"image {props['path']} not found beside the layout")
        props["path"] = image
    return Element(kind, where, x, y, w, h, props)
