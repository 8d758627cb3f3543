"""The card face as printers and people need it: machine-read parts keep a 3 mm safe margin from
every edge (printers that do not print to the edge), names never shrink below 7 pt (a double
surname wraps at its hyphen first), and the date printed is called what it is."""

from __future__ import annotations

import pytest

from unioncard.card_layouts.model import CARD_HEIGHT_MM, CARD_WIDTH_MM, builtin
from unioncard.card_layouts.render import fit_text, register_font

SAFE_MM = 3.0
MM = 72 / 25.4


def _box(element):
    return element.x, element.y, element.w, element.h


@pytest.mark.parametrize("face", ["front", "back"])
def test_barcode_and_qr_keep_the_safe_margin(face):
    layout = builtin()
    machine_read = [e for e in layout.faces[face].elements if e.type in ("barcode", "qr")]
    for element in machine_read:
        x, y, w, h = _box(element)
        assert min(x, y, CARD_WIDTH_MM - (x + w), CARD_HEIGHT_MM - (y + h)) >= SAFE_MM, element.get("name")
    assert face == "back" or len(machine_read) == 2


def test_a_62_character_double_surname_stays_legible():
    layout = builtin()
    element = next(e for e in layout.faces["front"].elements if e.get("name") == "surname")
    font, _ = register_font(layout.fonts[element.get("font")])
    surname = "Константинопольская-Длиннофамильная-Великолепненская"[:62].upper()
    _x, _y, w, h = _box(element)
    size, lines = fit_text(surname, font, float(element.get("size")), float(element.get("min_size")),
                           int(element.get("max_lines")), w * MM, h * MM)
    assert size >= 7
    assert "".join(lines).replace("…", "") in surname and lines[0].endswith("-")


def test_the_printed_date_is_called_the_making_date():
    layout = builtin()
    labels = [e.get("text") for e in layout.faces["front"].elements if e.get("name") == "issued label"]
    assert labels == ["изготовлен"]


@pytest.mark.parametrize("credential_text", [
    "UC1:" + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:" * 4,   # alphanumeric, as every credential
    "https://epb.example.org/c/Ab12-é",                              # anything else: byte mode
])
def test_an_independent_reader_scans_what_the_face_prints(tmp_path, credential_text):
    """zbar reads the printed QR code and barcode back as the card's values (the encoder and the
    drawing of modules and bars are the product's own; a reader is the judge)."""
    import subprocess

    from unioncard.card_layouts.render import CardFace, CardRenderer
    from unioncard.issuer import cardnumber

    number = cardnumber.build("964301", "23", 4711)
    face = CardFace({"surname": "Иванова", "given_names": "Мария Петровна", "number": cardnumber.format(number),
                     "credential": credential_text, "region_name": "Краснодарская краевая организация",
                     "issued_on": "22.11.2026", "union_name": "Профсоюз"})
    pdf = tmp_path / "card.pdf"
    pdf.write_bytes(CardRenderer(builtin()).pdf([face]))
    subprocess.run(["pdftoppm", "-r", "300", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "face")],
                   check=True)
    png = next(tmp_path.glob("face*.png"))
    scanned = subprocess.run(["zbarimg", "-q", "--raw", "-Sbinary=0", str(png)], capture_output=True,
                             text=True).stdout.splitlines()
    assert credential_text in scanned and number in scanned, scanned
