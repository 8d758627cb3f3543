"""Registry rules in plain Python: levels, categories, consent sections, roles, validation.

Nothing here touches the database or the web; adapters and services call these functions.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache

from stdnum.exceptions import ValidationError as StdnumValidationError
from stdnum.ru import inn as stdnum_inn

from unioncard.errors import ValidationError
from unioncard.i18n import N_


class Level(StrEnum):
    CENTRAL = "central"
    REGIONAL = "regional"
    TERRITORIAL = "territorial"
    PRIMARY = "primary"
    SUBDIVISION = "subdivision"


# Which levels may sit directly under which. Primary organisations of universities and
# colleges often report straight to the regional organisation, so both parents are allowed.
ALLOWED_PARENTS: dict[Level, tuple[Level, ...]] = {
    Level.CENTRAL: (),
    Level.REGIONAL: (Level.CENTRAL,),
    Level.TERRITORIAL: (Level.REGIONAL,),
    Level.PRIMARY: (Level.REGIONAL, Level.TERRITORIAL),
    Level.SUBDIVISION: (Level.PRIMARY,),
}

LEVEL_LABELS = {
    Level.CENTRAL: N_("Central organisation"),
    Level.REGIONAL: N_("Regional organisation"),
    Level.TERRITORIAL: N_("Territorial organisation"),
    Level.PRIMARY: N_("Primary organisation"),
    Level.SUBDIVISION: N_("Subdivision"),
}


class OrgKind(StrEnum):
    WORKERS = "workers"
    STUDENTS = "students"
    JOINT = "joint"


ORG_KIND_LABELS = {
    OrgKind.WORKERS: N_("of workers"),
    OrgKind.STUDENTS: N_("of students"),
    OrgKind.JOINT: N_("joint"),
}


class Category(StrEnum):
    """Rows of the statistical forms (форма 1–5 СП)."""

    WORKING = "working"
    STUDENT = "student"
    PENSIONER = "pensioner"
    UNEMPLOYED = "unemployed"


CATEGORY_LABELS = {
    Category.WORKING: N_("working"),
    Category.STUDENT: N_("student"),
    Category.PENSIONER: N_("non-working pensioner"),
    Category.UNEMPLOYED: N_("temporarily not working"),
}


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


SEX_LABELS = {Sex.MALE: N_("male"), Sex.FEMALE: N_("female")}


class LeaveReason(StrEnum):
    OWN_WISH = "own_wish"
    EXPELLED = "expelled"
    LEFT_JOB_OR_STUDIES = "left_job_or_studies"
    DIED = "died"
    TRANSFERRED = "transferred"


LEAVE_REASON_LABELS = {
    LeaveReason.OWN_WISH: N_("left of own wish"),
    LeaveReason.EXPELLED: N_("expelled"),
    LeaveReason.LEFT_JOB_OR_STUDIES: N_("left the job or studies"),
    LeaveReason.DIED: N_("died"),
    LeaveReason.TRANSFERRED: N_("transferred to another organisation"),
}


class ConsentSection(StrEnum):
    PROCESSING = "processing"
    PARTNER_TRANSFER = "partner_transfer"
    MESSAGING = "messaging"


CONSENT_SECTION_LABELS = {
    ConsentSection.PROCESSING: N_("1. Processing by union bodies"),
    ConsentSection.PARTNER_TRANSFER: N_("2. Transfer to the bonus-programme partner"),
    ConsentSection.MESSAGING: N_("3. SMS, PUSH and e-mail messages"),
}


class ConsentForm(StrEnum):
    PAPER = "paper"
    ELECTRONIC = "electronic"


CONSENT_FORM_LABELS = {
    ConsentForm.PAPER: N_("paper signature"),
    ConsentForm.ELECTRONIC: N_("simple electronic signature"),
}


class Role(StrEnum):
    CHAIRPERSON = "chairperson"
    REGISTRAR = "registrar"
    REGIONAL_STAFF = "regional_staff"
    BUREAU_OPERATOR = "bureau_operator"
    EVENT_STAFF = "event_staff"
    ADMIN = "admin"


ROLE_LABELS = {
    Role.CHAIRPERSON: N_("chairperson"),
    Role.REGISTRAR: N_("registry officer"),
    Role.REGIONAL_STAFF: N_("regional staff"),
    Role.BUREAU_OPERATOR: N_("card bureau operator"),
    Role.EVENT_STAFF: N_("event staff"),
    Role.ADMIN: N_("administrator"),
}


# What the history of a login shows, from its audit trail.
USER_ACTION_LABELS = {
    "user.create": N_("login created"),
    "user.role_change": N_("role or organisation changed"),
    "user.password_set": N_("new password"),
    "user.enable": N_("login enabled"),
    "user.disable": N_("login disabled"),
    "login.success": N_("logged in"),
    "login.failed": N_("wrong password"),
    "login.locked": N_("attempt while locked"),
    "login.expired": N_("attempt after the login ended"),
}


class Permission(StrEnum):
    VIEW_MEMBERS = "view_members"
    EDIT_MEMBERS = "edit_members"
    EDIT_ORGANISATIONS = "edit_organisations"
    MANAGE_USERS = "manage_users"
    MANAGE_KEYS = "manage_keys"
    ORDER_CARDS = "order_cards"
    APPROVE_CARDS = "approve_cards"
    PRODUCE_CARDS = "produce_cards"
    HAND_OUT_CARDS = "hand_out_cards"
    MANAGE_EVENTS = "manage_events"
    MANAGE_PARTNERS = "manage_partners"
    FILL_REPORTS = "fill_reports"        # the organisation's own statistical form and passport
    REVIEW_REPORTS = "review_reports"    # accept or return the forms of the organisations below
    OPEN_CAMPAIGNS = "open_campaigns"    # open a reporting year
    SEND_MAILINGS = "send_mailings"      # news to the members of the subtree who agreed (section 3)


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.CHAIRPERSON: frozenset({Permission.VIEW_MEMBERS, Permission.EDIT_MEMBERS, Permission.ORDER_CARDS,
                                 Permission.HAND_OUT_CARDS, Permission.FILL_REPORTS, Permission.SEND_MAILINGS}),
    Role.REGISTRAR: frozenset({Permission.VIEW_MEMBERS, Permission.EDIT_MEMBERS, Permission.ORDER_CARDS,
                               Permission.HAND_OUT_CARDS, Permission.FILL_REPORTS}),
    Role.REGIONAL_STAFF: frozenset(
        {Permission.VIEW_MEMBERS, Permission.EDIT_MEMBERS, Permission.EDIT_ORGANISATIONS, Permission.ORDER_CARDS,
         Permission.APPROVE_CARDS, Permission.HAND_OUT_CARDS, Permission.MANAGE_EVENTS, Permission.FILL_REPORTS,
         Permission.REVIEW_REPORTS, Permission.SEND_MAILINGS}
    ),
    Role.BUREAU_OPERATOR: frozenset({Permission.PRODUCE_CARDS}),
    Role.EVENT_STAFF: frozenset({Permission.MANAGE_EVENTS}),
    Role.ADMIN: frozenset(Permission),
}


def has_permission(role: str, permission: Permission) -> bool:
    """A member acting from their own page has no staff role, and so no permission."""
    try:
        role = Role(role)
    except ValueError:
        return False
    return permission in ROLE_PERMISSIONS.get(role, frozenset())


# --- scope -------------------------------------------------------------------------------

def child_path(parent_path: str | None, organisation_id: int) -> str:
    """Materialised path: '/1/23/456/'. A subtree is every path starting with its root's."""
    return f"{parent_path or '/'}{organisation_id}/"


def path_ids(path: str) -> list[int]:
    """Organisation ids from the root down: '/1/23/456/' → [1, 23, 456]; index 1 is the region."""
    return [int(part) for part in path.strip("/").split("/") if part]


def in_scope(scope_path: str, object_path: str) -> bool:
    return object_path.startswith(scope_path)


# --- names ---------------------------------------------------------------------------------

_HYPHENS = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"), "-")
# What phones and Word type for an apostrophe (’ ‘ ʼ `) is the same apostrophe as «'».
_HYPHENS.update(dict.fromkeys(map(ord, "\u2019\u2018\u02bc\u0060\u00b4"), "'"))
_SPACES = re.compile(r"\s+")
# Words of letters joined by single spaces, hyphens or apostrophes (d'Artagnan, Salтыков-Щедрин is not).
_NAME_PATTERN = re.compile(r"^[^\W\d_]+(?:[ '\-][^\W\d_]+)*$")


def _script(letter: str) -> str:
    """LATIN, CYRILLIC or another script's name, from the letter's Unicode name."""
    return unicodedata.name(letter, "UNKNOWN").split(" ")[0]


def mixed_script_letters(word: str) -> str | None:
    """For a word written in Cyrillic with a Latin look-alike letter or two (or the other way
    round), those odd letters; None for a word wholly in one script."""
    scripts = [_script(c) for c in word if c.isalpha()]
    if len(set(scripts)) <= 1:
        return None
    main = max(set(scripts), key=scripts.count)
    return "".join(sorted({c for c in word if c.isalpha() and _script(c) != main}))


def clean_name(value: str | None) -> str:
    """Tidy a name as typed: NFC, one kind of hyphen, single spaces, trimmed."""
    if value is None:
        return ""
    if isinstance(value, str) and len(value) <= 100:
        return _clean_short_name(value)
    return _clean(value)


@lru_cache(maxsize=200_000)
def _clean_short_name(value: str) -> str:
    # Names repeat: a registry of millions has a few hundred thousand distinct ones.
    return _clean(value)


def _clean(value) -> str:
    value = unicodedata.normalize("NFC", str(value)).translate(_HYPHENS)
    value = _SPACES.sub(" ", value).strip()
    return re.sub(r"\s*-\s*", "-", value)


def search_key(value: str | None) -> str:
    """The form used for matching and sorting: lower case, ё as е, tidy hyphens and spaces."""
    return clean_name(value).casefold().replace("ё", "е")


def sort_name(surname: str, given_name: str, patronymic: str | None) -> str:
    return " ".join(part for part in (search_key(surname), search_key(given_name), search_key(patronymic)) if part)


def identity_key(surname: str, given_name: str, patronymic: str | None, birth_date: date) -> str:
    """Who a person is for the registry: full name and birth date (the registry has no SNILS)."""
    return f"{sort_name(surname, given_name, patronymic)}|{birth_date.isoformat()}"


# --- validation -----------------------------------------------------------------------------

@dataclass(frozen=True)
class PersonName:
    surname: str
    given_name: str
    patronymic: str | None


def validate_person_name(surname, given_name, patronymic) -> PersonName:
    surname, given_name, patronymic = clean_name(surname), clean_name(given_name), clean_name(patronymic)
    if not surname:
        raise ValidationError(N_("Surname is required"), code="surname_required", field="surname")
    if not given_name:
        raise ValidationError(N_("Given name is required"), code="given_name_required", field="given_name")
    for field_name, value in (("surname", surname), ("given_name", given_name), ("patronymic", patronymic)):
        problem = _name_problem(value) if value else None
        if problem == "too_long":
            raise ValidationError(N_("The name “%(value)s” is longer than 100 characters"), code="name_too_long",
                                  field=field_name, value=value[:40] + "…")
        if problem == "invalid":
            raise ValidationError(
                N_("The name “%(value)s” may contain only letters, spaces, hyphens and apostrophes"),
                code="name_invalid",
                field=field_name,
                value=value,
            )
        if problem is not None:
            word, odd = problem
            raise ValidationError(
                N_("In “%(word)s” Russian and Latin letters are mixed (%(letters)s): type the word again "
                   "in one alphabet"), code="name_mixed_script", field=field_name, word=word, letters=odd)
    return PersonName(surname, given_name, patronymic or None)


@lru_cache(maxsize=100_000)
def _name_problem(value: str):
    """None for a good name part, "invalid", or (word, odd letters) for mixed scripts. Cached:
    a registry of millions has a few hundred thousand distinct surnames, names and patronymics,
    and the look-up of each letter's script is most of the cost of a member list's check."""
    if len(value) > 100:
        return "too_long"
    if not _NAME_PATTERN.match(value) or any(_script(c) not in ("LATIN", "CYRILLIC") for c in value if c.isalpha()):
        return "invalid"
    for word in re.split(r"[ '\-]", value):
        odd = mixed_script_letters(word)
        if odd:
            return word, odd
    return None


def validate_inn(value: str | None) -> str | None:
    """INN of an educational institution, checked with python-stdnum (10 or 12 digits)."""
    if value is None or str(value).strip() == "":
        return None
    try:
        return stdnum_inn.validate(str(value))
    except StdnumValidationError:
        raise ValidationError(
            N_("INN “%(value)s” is not valid: it must be 10 or 12 digits with correct check digits"),
            code="inn_invalid",
            field="inn",
            value=str(value).strip(),
        ) from None


def validate_birth_date(birth_date: date, today: date) -> date:
    if birth_date > today:
        raise ValidationError(
            N_("Birth date %(value)s is in the future"), code="birth_date_future", field="birth_date",
            value=birth_date.strftime("%d.%m.%Y"),
        )
    if birth_date.year < 1900:
        raise ValidationError(
            N_("Birth date %(value)s is too early"), code="birth_date_too_early", field="birth_date",
            value=birth_date.strftime("%d.%m.%Y"),
        )
    return birth_date


def validate_membership_dates(
    birth_date: date | None, join_date: date, leave_date: date | None, today: date
) -> None:
    if join_date > today:
        raise ValidationError(
            N_("Join date %(value)s is in the future"), code="join_date_future", field="join_date",
            value=join_date.strftime("%d.%m.%Y"),
        )
    if birth_date is not None and join_date < birth_date:
        raise ValidationError(
            N_("Join date %(value)s is before the birth date"), code="join_before_birth", field="join_date",
            value=join_date.strftime("%d.%m.%Y"),
        )
    if leave_date is not None and leave_date < join_date:
        raise ValidationError(
            N_("Leave date %(leave)s is before the join date %(join)s"), code="leave_before_join",
            field="leave_date", leave=leave_date.strftime("%d.%m.%Y"), join=join_date.strftime("%d.%m.%Y"),
        )
    if leave_date is not None and leave_date > today:
        raise ValidationError(
            N_("Leave date %(value)s is in the future"), code="leave_date_future", field="leave_date",
            value=leave_date.strftime("%d.%m.%Y"),
        )


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def validate_email(value: str | None) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    # «a@b.ru.» and «a@b..ru» are the same mailbox as «a@b.ru» to some servers and none to others.
    if not _EMAIL.match(value) or len(value) > 200 or ".." in value or value.endswith("."):
        raise ValidationError(N_("E-mail “%(value)s” is not valid"), code="email_invalid", field="email", value=value)
    return value.lower()


def validate_phone(value: str | None) -> str | None:
    """Russian phone numbers, stored as +7XXXXXXXXXX; 8XXXXXXXXXX and 10 bare digits accepted."""
    raw = (value or "").strip()
    if not raw:
        return None
    digits = re.sub(r"[\s()\-]", "", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    if not (digits.isascii() and digits.isdigit()):  # "١٢٣" and full-width digits are digits to Python
        raise ValidationError(N_("Phone “%(value)s” is not valid"), code="phone_invalid", field="phone", value=raw)
    if len(digits) == 10:
        digits = "7" + digits
    elif len(digits) == 11 and digits[0] == "8":
        digits = "7" + digits[1:]
    if len(digits) != 11 or digits[0] != "7":
        raise ValidationError(N_("Phone “%(value)s” is not valid"), code="phone_invalid", field="phone", value=raw)
    return "+" + digits


def visible_text(value: str | None) -> str:
    """The text with invisible characters (zero-width, direction marks, other format and control
    characters) taken out and spaces trimmed: what a reader would actually see."""
    return "".join(ch for ch in (value or "") if unicodedata.category(ch) not in ("Cf", "Cc", "Co")
                   or ch in "\n\t").strip()


def check_parent_level(level: Level, parent_level: Level | None) -> None:
    allowed = ALLOWED_PARENTS[level]
    if (parent_level is None and allowed) or (parent_level is not None and parent_level not in allowed):
        raise ValidationError(
            N_("An organisation of this level cannot be placed under that parent"),
            code="parent_level_invalid",
            field="parent",
        )
