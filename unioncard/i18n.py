"""Message translation usable both inside Flask (Flask-Babel) and outside it (CLI, importer).

Messages are English msgids marked with :func:`N_`; the Russian catalogue lives in
``checkin_web/translations``. Domain code never translates: it raises errors carrying a msgid
and parameters, and the edge (web page, CLI, API) renders them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel.support import NullTranslations, Translations

TRANSLATIONS_DIR = Path(__file__).parent / "checkin_web" / "translations"
DEFAULT_LOCALE = "ru"


def N_(message: str) -> str:
    """Mark a string for extraction without translating it now."""
    return message


@lru_cache(maxsize=8)
def catalogue(locale: str) -> NullTranslations:
    return Translations.load(str(TRANSLATIONS_DIR), [locale], domain="messages")


def _in_web_request() -> bool:
    """Inside the main web app's requests (the user's language); the desk app has no Babel and
    speaks Russian, as do the CLI and the importer."""
    from flask import current_app, has_request_context

    return has_request_context() and "babel" in current_app.extensions


def translate(message: str, locale: str | None = None, **params) -> str:
    """Translate with Flask-Babel inside a request, else with the given/default locale."""
    if locale is None:
        if _in_web_request():
            from flask_babel import gettext

            return gettext(message, **params)
        locale = DEFAULT_LOCALE
    text = catalogue(locale).gettext(message)
    return text % params if params else text


def translate_plural(singular: str, plural: str, count: int, locale: str | None = None, **params) -> str:
    """«1 карта», «2 карты», «5 карт»: the catalogue's plural forms (Russian has three), with
    ``%(num)s`` the count. Inside a request the user's language, else the given/default one."""
    if locale is None:
        if _in_web_request():
            from flask_babel import ngettext

            return ngettext(singular, plural, count, **params)
        locale = DEFAULT_LOCALE
    return catalogue(locale).ngettext(singular, plural, count) % {"num": count, **params}
