"""Delivery channels, chosen by a config string (see ``domain.parse_channel``). Whatever a server
or a socket says becomes one of our three failures here, at the adapter:

- ``PermanentFailure``: this address will never take it (SMTP 5xx for the recipient, HTTP 4xx);
- ``TemporaryFailure``: try this message again later (4xx, timeouts, a dropped connection);
- ``ChannelDown``: nothing can go through this channel now (refused login, no server)."""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from unioncard.messaging import domain as d


class DeliveryError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason[:300]


class PermanentFailure(DeliveryError):
    pass


class TemporaryFailure(DeliveryError):
    pass


class ChannelDown(DeliveryError):
    pass


@dataclass(frozen=True)
class Outgoing:
    id: int
    channel: str
    address: str
    subject: str
    body: str
    unsubscribe_url: str | None = None


def email_message(message: Outgoing, sender: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.address
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(idstring=f"outbox-{message.id}", domain="unioncard.invalid")
    if message.unsubscribe_url:
        # RFC 8058: mail programs show their own «unsubscribe» button and post to the link.
        mail["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail.set_content(message.body)
    return mail


class Sender:
    """One open channel: ``send`` each message, then ``close``."""

    def send(self, message: Outgoing) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FolderSender(Sender):
    """The demo's outbox: each e-mail an .eml file, each SMS a .txt file, named by the message."""

    def __init__(self, address: d.FolderAddress):
        self.folder = Path(address.path)

    def send(self, message: Outgoing) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if message.channel == d.Channel.EMAIL:
                data = bytes(email_message(message, d.DEFAULT_SENDER))
                (self.folder / f"{message.id:08d}.eml").write_bytes(data)
            else:
                (self.folder / f"{message.id:08d}-sms.txt").write_text(f"{message.address}\n\n{message.body}\n",
                                                                      encoding="utf-8")
        except OSError as exc:
            raise ChannelDown(f"outbox folder: {exc.strerror or exc}") from exc


class SmtpSender(Sender):
    """One SMTP connection for a run of messages; STARTTLS and login when the address asks."""

    TIMEOUT = 30

    def __init__(self, address: d.SmtpAddress, tls_context: ssl.SSLContext | None = None):
        self.address = address
        self.tls_context = tls_context or ssl.create_default_context(cafile=address.cafile)
        self.connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self.connection is not None:
            return self.connection
        a = self.address
        try:
            connection = smtplib.SMTP(a.host, a.port, timeout=self.TIMEOUT)
            connection.ehlo()
            if a.starttls:
                connection.starttls(context=self.tls_context)
                connection.ehlo()
            if a.username:
                connection.login(a.username, a.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelDown(f"SMTP login refused: {exc.smtp_code}") from exc
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise ChannelDown(f"SMTP server {a.host}:{a.port}: {exc}") from exc
        self.connection = connection
        return connection

    def send(self, message: Outgoing) -> None:
        connection = self._connect()
        mail = email_message(message, self.address.sender)
        try:
            refused = connection.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _by_code(code, text) from exc
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            raise _by_code(exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPServerDisconnected, OSError, socket.timeout) as exc:
            self.connection = None
            raise TemporaryFailure(f"SMTP connection lost: {exc}") from exc
        except smtplib.SMTPException as exc:
            raise TemporaryFailure(f"SMTP: {exc}") from exc
        if refused:
            code, text = next(iter(refused.values()))
            raise _by_code(code, text)

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self.connection = None


def _by_code(code: int, text) -> DeliveryError:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    reason = f"SMTP {code}: {text}"
    return PermanentFailure(reason) if 500 <= code < 600 else TemporaryFailure(reason)


class HttpSmsSender(Sender):
    """An SMS gateway taking ``POST {"to": "+7…", "text": "…"}`` as JSON; 2xx means accepted."""

    TIMEOUT = 15

    def __init__(self, address: d.HttpGatewayAddress):
        self.url = address.url

    def send(self, message: Outgoing) -> None:
        body = json.dumps({"to": message.address, "text": message.body, "id": message.id},
                          ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with urllib.request.urlopen(request, timeout=self.TIMEOUT) as response:
                response.read(4096)
        except urllib.error.HTTPError as exc:
            reason = f"SMS gateway {exc.code}"
            if exc.code == 429 or exc.code >= 500:
                raise TemporaryFailure(reason) from exc
            raise PermanentFailure(reason) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ChannelDown(f"SMS gateway unreachable: {getattr(exc, 'reason', exc)}") from exc


def open_sender(text: str, *, tls_context: ssl.SSLContext | None = None) -> Sender:
    address = d.parse_channel(text)
    if isinstance(address, d.FolderAddress):
        return FolderSender(address)
    if isinstance(address, d.SmtpAddress):
        return SmtpSender(address, tls_context)
    return HttpSmsSender(address)
