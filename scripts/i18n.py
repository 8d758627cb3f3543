"""Message catalogues: extract msgids, merge into ru/messages.po, compile .mo.

    python scripts/i18n.py update   # after changing UI text; then translate the new entries
    python scripts/i18n.py compile  # writes messages.mo (committed; a test checks it is current)
    python scripts/i18n.py check    # fails if any msgid has no Russian translation
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "unioncard" / "checkin_web" / "translations"
POT = TRANSLATIONS / "messages.pot"
PO = TRANSLATIONS / "ru" / "LC_MESSAGES" / "messages.po"
KEYWORDS = ["-k", "N_", "-k", "_", "-k", "gettext", "-k", "lazy_gettext", "-k", "translate_plural:1,2"]


def pybabel(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", *args], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def extract() -> None:
    pybabel("extract", "-F", "babel.cfg", *KEYWORDS, "--no-location", "--sort-output", "--omit-header",
            "-o", str(POT), ".")


def update() -> None:
    extract()
    if PO.exists():
        pybabel("update", "-i", str(POT), "-d", str(TRANSLATIONS), "-l", "ru", "--no-fuzzy-matching",
                "--ignore-obsolete")
    else:
        pybabel("init", "-i", str(POT), "-d", str(TRANSLATIONS), "-l", "ru")


def compile_mo() -> None:
    pybabel("compile", "-d", str(TRANSLATIONS), "-l", "ru")


def untranslated() -> list[str]:
    from babel.messages.pofile import read_po

    with PO.open("rb") as handle:
        catalogue = read_po(handle)
    def missing(message) -> bool:
        # A plural entry needs every one of its forms (Russian has three).
        forms = message.string if isinstance(message.string, (tuple, list)) else [message.string]
        return not all(forms) or message.fuzzy

    return [m.id for m in catalogue if m.id and missing(m)]


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "check"
    if command == "update":
        update()
    elif command == "compile":
        compile_mo()
    missing = untranslated()
    for msgid in missing:
        print(f"untranslated: {msgid!r}")
    sys.exit(1 if missing and command == "check" else 0)
