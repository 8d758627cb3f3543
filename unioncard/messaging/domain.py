"""Messaging rules in plain Python: channel addresses, the retry schedule, address normalising."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit

from unioncard.errors import ValidationError
from unioncard.registry import domain as rd


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class Status(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"          # given up: a permanent refusal or too many attempts
    SUPPRESSED = "suppressed"  # never tried: the address failed permanently before


class Kind(StrEnum):
    SIGN_IN_CODE = "sign_in_code"
    CARD_READY = "card_ready"
    CARD_BLOCKED = "card_blocked"
    EVENT_INVITATION = "event_invitation"
    APPLICATION_ACCEPTED = "application_accepted"
    APPLICATION_REFUSED = "application_refused"
    MAILING = "mailing"


# After the n-th failed attempt the next one waits RETRY_DELAYS[n-1]; after the last, it is failed.
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                timedelta(hours=12))
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1


def next_attempt(attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failed tries; None when it is time to give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return now + RETRY_DELAYS[attempts - 1]


class ChannelAddressInvalid(ValueError):
    pass


@dataclass(frozen=True)
class SmtpAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool
    sender: str
    # A private CA for the relay's certificate (otherwise the system's CAs are trusted).
    cafile: str | None = None


@dataclass(frozen=True)
class HttpGatewayAddress:
    url: str


@dataclass(frozen=True)
class FolderAddress:
    path: str


DEFAULT_SENDER = "UnionCard <no-reply@unioncard.invalid>"


def parse_channel(text: str):
    """``smtp://user:password@host:587?starttls=1&from=…&cafile=/etc/relay-ca.pem``, ``sms+http://host:port/path`` (also
    ``sms+https://``), or ``file:/folder`` (the demo's outbox: one file per message)."""
    if text.startswith("file:"):
        path = text[len("file:"):]
        if not path:
            raise ChannelAddressInvalid("file: needs a folder")
        return FolderAddress(path)
    parts = urlsplit(text)
    if parts.scheme == "smtp":
        if not parts.hostname:
            raise ChannelAddressInvalid("smtp:// needs a host")
        query = parse_qs(parts.query)
        try:
            port = parts.port or 25
        except ValueError as exc:
            raise ChannelAddressInvalid(str(exc)) from exc
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if not ((username or "") + (password or "")).isascii():
            # SMTP AUTH as Python's smtplib speaks it (and most relays take it) is ASCII only.
            raise ChannelAddressInvalid("the SMTP login and password must be in Latin letters, digits and signs")
        return SmtpAddress(parts.hostname, port, username, password,
                           query.get("starttls", ["0"])[0] in ("1", "true", "yes"),
                           query.get("from", [DEFAULT_SENDER])[0], query.get("cafile", [None])[0])
    if parts.scheme in ("sms+http", "sms+https"):
        if not parts.hostname:
            raise ChannelAddressInvalid("sms+http:// needs a host")
        return HttpGatewayAddress(text.split("+", 1)[1])
    raise ChannelAddressInvalid(f"unknown channel: {text.split(':', 1)[0]}")


def normalise_contact(text: str) -> tuple[Channel, str] | None:
    """An e-mail address or a phone number, whichever the text is, as the registry stores it
    (the registry's own rules: one place owns each)."""
    text = (text or "").strip()
    if not text or len(text) > 200:
        return None
    try:
        if "@" in text:
            return Channel.EMAIL, rd.validate_email(text)
        return Channel.SMS, rd.validate_phone(text)
    except ValidationError:
        return None


# --- unsubscribe links ----------------------------------------------------------------------
# A link names the section-3 consent the message went out under, signed with the installation's
# secret: a changed digit is refused, and once that consent is withdrawn the link has nothing left
# to do (a consent given again later is a new consent, which an old link cannot touch).

def unsubscribe_token(secret: str, consent_id: int) -> str:
    import hashlib
    import hmac

    mac = hmac.new(secret.encode(), f"unsubscribe:{consent_id}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{consent_id}-{mac}"


def consent_of_token(secret: str, token: str) -> int | None:
    import hmac

    head, _, _mac = (token or "").partition("-")
    if not head.isascii() or not head.isdigit() or len(head) > 12:
        return None
    consent_id = int(head)
    return consent_id if hmac.compare_digest(unsubscribe_token(secret, consent_id), token) else None


MAILING_SUBJECT_MAX = 200
MAILING_BODY_MAX = 5000
# A mailing's SMS carries its subject and the start of its text (three SMS parts in Cyrillic).
SMS_TEXT_MAX = 180
