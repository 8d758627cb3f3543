"""ЭПБ card number: 16 digits in the ISO/IEC 7812 shape, in the style of python-stdnum.

    PPPPPP RR SSSSSSS C
    │      │  │       └ Luhn check digit (python-stdnum's luhn)
    │      │  └ serial within the region, 7 digits, never reused
    │      └ regional code (the region's two-digit code, e.g. 23 for Krasnodar)
    └ issuer prefix, 6 digits: 9 (national assignment), 643 (ISO 3166 numeric for Russia), 2 issuer digits

>>> validate('9643 0123 0000 0014')
'9643012300000014'
>>> format('9643012300000014')
'9643 0123 0000 0014'
"""

from __future__ import annotations

from stdnum import luhn
from stdnum.util import clean

from unioncard.errors import ValidationError as _BaseValidationError
from unioncard.i18n import N_

LENGTH = 16
DEFAULT_ISSUER_PREFIX = "964301"
SERIAL_DIGITS = 7
MAX_SERIAL = 10 ** SERIAL_DIGITS - 1


class ValidationError(_BaseValidationError):
    code = "card_number_invalid"
    message = N_("The card number is not valid")


class InvalidFormat(ValidationError):
    code = "card_number_format"
    message = N_("A card number has digits only (spaces and dashes are allowed between groups)")


class InvalidLength(ValidationError):
    code = "card_number_length"
    message = N_("A card number has 16 digits, this one has %(length)s")


class InvalidChecksum(ValidationError):
    code = "card_number_checksum"
    message = N_("The card number has a typing error: its check digit does not match")


class InvalidComponent(ValidationError):
    code = "card_number_issuer"
    message = N_("This is not a number of our union's cards (it does not start with %(prefix)s)")


# What people type between digits: spaces, hyphens, dots, no-break spaces.
SEPARATORS = " -.\u00a0"


def compact(number: str) -> str:
    """The number without spaces, dashes, dots or surrounding blanks."""
    return clean(str(number), SEPARATORS).strip()


def pattern(issuer_prefix: str | tuple[str, ...] = DEFAULT_ISSUER_PREFIX) -> str:
    """A regular expression (JSON-schema dialect) for a number with this issuer prefix (or one of
    these): 16 digits starting with the prefix, separators allowed between them. The check digit
    is not a pattern."""
    gap = "[" + "".join("\\" + c if c == "-" else c for c in SEPARATORS) + "]*"
    prefixes = (issuer_prefix,) if isinstance(issuer_prefix, str) else tuple(issuer_prefix)
    shapes = ["".join(d + gap for d in prefix) + "(?:[0-9]" + gap + "){%d}" % (LENGTH - len(prefix))
              for prefix in prefixes]
    return "^" + gap + (shapes[0] if len(shapes) == 1 else "(?:" + "|".join(shapes) + ")") + "$"


# The most prefixes a legacy list may expand to: ranges of leading digits are written out.
MAX_PREFIXES = 100


class InvalidPrefixList(_BaseValidationError):
    code = "card_prefixes_invalid"
    message = N_("The list of card number prefixes “%(value)s” is not valid: write prefixes of 1 to 15 digits "
                 "or ranges of equal length such as 643100-643109, separated by commas, at most 100 in all")


class OverlappingPrefix(_BaseValidationError):
    code = "card_prefixes_overlap"
    message = N_("The legacy card number prefix %(prefix)s overlaps the union's own prefix %(own)s: the earlier "
                 "registry's numbers must be told apart from ours")


def legacy_prefixes(text: str | None, own: str = DEFAULT_ISSUER_PREFIX) -> tuple[str, ...]:
    """The legacy prefixes of a setting, none of them overlapping our own (or a number could be
    both ours and the earlier registry's)."""
    prefixes = parse_prefixes(text)
    for prefix in prefixes:
        if prefix.startswith(own) or own.startswith(prefix):
            raise OverlappingPrefix(prefix=prefix, own=own)
    return prefixes


def parse_prefixes(text: str | None) -> tuple[str, ...]:
    """«643100, 7000-7009» → ('643100', '7000', '7001', …, '7009'): the legacy system's issuer
    prefixes, each a prefix of digits or an inclusive range of equally long prefixes, separated
    by commas (or semicolons); at most ``MAX_PREFIXES`` in all."""
    prefixes: list[str] = []
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        low, high = low.strip(), (high.strip() or low.strip())
        if not (low.isascii() and high.isascii() and low.isdigit() and high.isdigit()) or len(low) != len(high) \
                or not 1 <= len(low) < LENGTH or int(high) < int(low) \
                or len(prefixes) + int(high) - int(low) + 1 > MAX_PREFIXES:
            raise InvalidPrefixList(value=text)
        prefixes.extend(f"{value:0{len(low)}d}" for value in range(int(low), int(high) + 1))
    return tuple(dict.fromkeys(prefixes))


def calc_check_digit(number: str) -> str:
    """The Luhn check digit for the first 15 digits."""
    return luhn.calc_check_digit(number)


def validate(number: str, issuer_prefix: str | tuple[str, ...] | None = None) -> str:
    """Return the compact number or raise a ValidationError subclass saying what is wrong.
    ``issuer_prefix``: the prefix the number must start with, or a tuple of accepted prefixes
    (our own and the legacy system's, see :func:`parse_prefixes`)."""
    number = compact(number)
    if not number.isdigit() or not number.isascii():
        raise InvalidFormat()
    if len(number) != LENGTH:
        raise InvalidLength(length=len(number))
    if calc_check_digit(number[:-1]) != number[-1]:
        raise InvalidChecksum()
    if issuer_prefix is not None and not number.startswith(issuer_prefix):
        raise InvalidComponent(prefix=issuer_prefix if isinstance(issuer_prefix, str) else ", ".join(issuer_prefix))
    return number


def is_valid(number: str, issuer_prefix: str | tuple[str, ...] | None = None) -> bool:
    try:
        return bool(validate(number, issuer_prefix))
    except ValidationError:
        return False


def format(number: str) -> str:  # noqa: A001 - the python-stdnum name
    number = compact(number)
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4))


def build(issuer_prefix: str, region_code: str, serial: int) -> str:
    """The full number for a serial; the caller guarantees the serial was never used."""
    if len(issuer_prefix) != 6 or not issuer_prefix.isdigit():
        raise ValueError(f"issuer prefix must be 6 digits: {issuer_prefix!r}")
    if len(region_code) != 2 or not region_code.isdigit():
        raise ValueError(f"region code must be 2 digits: {region_code!r}")
    if not 0 < serial <= MAX_SERIAL:
        raise ValueError(f"serial out of range: {serial}")
    body = f"{issuer_prefix}{region_code}{serial:07d}"
    return body + calc_check_digit(body)


def region_of(number: str) -> str:
    return compact(number)[6:8]
