"""Template helpers: Russian number and date formats, labels for codes."""

from __future__ import annotations

from datetime import date, datetime

from flask_babel import get_locale, gettext

from unioncard.registry import domain as d


def number(value) -> str:
    """1 094 481 (non-breaking thin grouping as Russian typography writes it)."""
    return f"{int(value):,}".replace(",", "\u00a0")


def percent(value) -> str:
    """99,7 / 100 / 0,2 — one decimal, Russian comma, no trailing zero (as the union's tables)."""
    return f"{value:.1f}".rstrip("0").rstrip(".").replace(".", ",")


def viewer_zone() -> str:
    """The time zone of the person looking at the page (their region's), Moscow when unknown."""
    from flask import g
    from flask_login import current_user

    from unioncard.registry.timezones import MOSCOW

    # A member on their own page is not a logged-in user: their view sets the zone of their region.
    return g.get("viewer_zone") or getattr(current_user, "time_zone", None) or MOSCOW


def day(value) -> str:
    """A date as 01.12.2026; a moment (stored in UTC) as local time with its zone, «01.12.2026 15:30 (МСК+2)»."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        from unioncard.registry.timezones import shown

        return shown(value, viewer_zone())
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    return str(value)


from unioncard.issuer import cardnumber  # noqa: E402
from unioncard.issuer import domain as card_domain  # noqa: E402


def label(mapping_name: str, value) -> str:
    mapping = {
        "level": d.LEVEL_LABELS, "kind": d.ORG_KIND_LABELS, "category": d.CATEGORY_LABELS, "sex": d.SEX_LABELS,
        "leave_reason": d.LEAVE_REASON_LABELS, "consent_section": d.CONSENT_SECTION_LABELS,
        "consent_form": d.CONSENT_FORM_LABELS, "role": d.ROLE_LABELS, "user_action": d.USER_ACTION_LABELS,
        "card_status": card_domain.STATUS_LABELS, "card_kind": card_domain.KIND_LABELS,
    }[mapping_name]
    if value is None:
        return ""
    try:
        return gettext(mapping[type(next(iter(mapping)))(value)])
    except (ValueError, KeyError):
        return str(value)


def hour_local(value: datetime) -> str:
    """The hour (00–23) a UTC moment falls in, in the viewer's zone."""
    from unioncard.registry.timezones import local

    return local(value, viewer_zone()).strftime("%H")


def clock_time(value) -> str:
    """A moment as «15:30:12» in the viewer's zone (for lists where the zone is in the heading)."""
    from unioncard.registry.timezones import local

    return local(value, viewer_zone()).strftime("%d.%m %H:%M:%S") if value else ""


def zone_name() -> str:
    from unioncard.registry.timezones import msk_offset

    from unioncard import clock

    return msk_offset(clock.now(), viewer_zone())


def card_reason(reason: str | None) -> str:
    """A reason in a card's history, in the reader's language when the system wrote it."""
    if not reason:
        return ""
    if reason in (card_domain.REASON_CONSENT_WITHDRAWN, card_domain.REASON_MIGRATED):
        return gettext(card_domain.SYSTEM_REASONS[reason])
    if reason.startswith(card_domain.REASON_MEMBERSHIP_ENDED):
        why = reason[len(card_domain.REASON_MEMBERSHIP_ENDED):]
        return gettext(card_domain.SYSTEM_REASONS[card_domain.REASON_MEMBERSHIP_ENDED]) + (
            f": {label('leave_reason', why)}" if why else "")
    return reason


def qr_svg(text: str) -> str:
    """A QR code as inline SVG that fills its box (virtual cards, the member's page)."""
    import re

    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2,
                        error_correction=qrcode.constants.ERROR_CORRECT_M)
    # The code fills whatever box it is put in (its viewBox scales), not a fixed 53 mm in a corner.
    return re.sub(r'^<svg width="[^"]*" height="[^"]*"', '<svg width="100%" height="100%"',
                  image.to_string(encoding="unicode").split("?>", 1)[-1].lstrip(), count=1)


def install(app) -> None:
    app.jinja_env.filters["number"] = number
    app.jinja_env.filters["day"] = day
    app.jinja_env.filters["percent"] = percent
    app.jinja_env.filters["cardnumber"] = cardnumber.format
    app.jinja_env.filters["card_reason"] = card_reason
    app.jinja_env.filters["clock"] = clock_time
    app.jinja_env.filters["hour_local"] = hour_local
    app.jinja_env.globals["label"] = label
    app.jinja_env.globals["zone_name"] = zone_name
    app.jinja_env.globals["get_locale"] = lambda: str(get_locale() or "ru")
