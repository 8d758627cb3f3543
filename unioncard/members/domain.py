"""Rules of the members' own door, in plain Python."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from unioncard.i18n import N_

CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=10)
ATTEMPTS_PER_CODE = 5
# However many addresses ask, one contact gets at most this many codes in the window: a flood
# of requests cannot turn the union into a spam cannon aimed at somebody's phone.
CODES_PER_CONTACT = 3
CODES_WINDOW = timedelta(minutes=15)
CODES_PER_CONTACT_PER_DAY = 10
CODES_DAY = timedelta(days=1)


def new_code() -> str:
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(secret: str, contact: str, code: str) -> str:
    """Keyed by the installation's secret and bound to the contact, so a code copied from one
    row opens nothing else, and a copy of the table alone cannot be searched for codes."""
    return hmac.new(secret.encode(), f"{contact}\x00{code}".encode(), hashlib.sha256).hexdigest()


def may_try(expires_at, attempts: int, now) -> bool:
    """A code may be tried while it is fresh and has tries left (sign-in codes and application
    codes alike); each try, right or wrong, counts."""
    return expires_at > now and attempts < ATTEMPTS_PER_CODE


def codes_match(expected_hash: str, secret: str, contact: str, code: str) -> bool:
    code = (code or "").strip().replace(" ", "")
    if len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        return False
    return hmac.compare_digest(expected_hash, code_hash(secret, contact, code))


# Reads of a member's personal data shown on «Кто видел мои данные» (152-FZ art. 14).
READ_ACTIONS = {
    "member.view": N_("your registry card was opened"),
    "member.export": N_("a member list with you in it was downloaded"),
}


# --- online joining ---------------------------------------------------------------------------

class ApplicationStatus:
    UNCONFIRMED = "unconfirmed"  # the code sent to the contact not yet entered
    WAITING = "waiting"          # in the chairperson's queue
    ACCEPTED = "accepted"
    REFUSED = "refused"


# Applications one contact may start in a day (each sends a code).
APPLICATIONS_PER_CONTACT_PER_DAY = 3
