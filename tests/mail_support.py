"""The suite's own mail and SMS servers: a real SMTP server (aiosmtpd) on a local port, with
STARTTLS and login when asked, keeping what it receives; and a local HTTP stand-in for an SMS
gateway answering as it is told. Nothing of the sending code is mocked."""

from __future__ import annotations

import datetime
import email
import email.policy
import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mailbox:
    messages: list = field(default_factory=list)
    # Recipients the server refuses: address → (code, text), e.g. 550 for good, 451 for now.
    refuse: dict = field(default_factory=dict)

    def to(self, address: str) -> list:
        return [m for m in self.messages if m["To"] == address]

    def code_for(self, address: str) -> str:
        body = self.to(address)[-1].get_body(("plain",)).get_content()
        return re.search(r"\b(\d{6})\b", body).group(1)


class _Handler:
    def __init__(self, mailbox: Mailbox):
        self.mailbox = mailbox

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.mailbox.refuse:
            code, text = self.mailbox.refuse[address]
            return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.mailbox.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted"


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class SmtpServer:
    """``with SmtpServer() as server:`` … ``server.url`` for UNIONCARD_MAIL, ``server.mailbox``."""

    def __init__(self, tls_folder: Path | None = None, login: tuple[str, str] | None = None):
        self.mailbox = Mailbox()
        self.port = free_port()
        self.login = login
        self.client_tls: ssl.SSLContext | None = None
        self.cafile: Path | None = None
        kwargs = {}
        if tls_folder is not None:
            cert, key = self_signed(tls_folder)
            server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_tls.load_cert_chain(cert, key)
            self.client_tls = ssl.create_default_context(cafile=str(cert))
            self.cafile = cert
            kwargs.update(tls_context=server_tls, require_starttls=True)
        if login is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=tls_folder is not None)
        self.controller = Controller(_Handler(self.mailbox), hostname="127.0.0.1", port=self.port,
                                     server_hostname="localhost", **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == self.login
        return AuthResult(success=ok)

    @property
    def url(self) -> str:
        user = f"{quote(self.login[0], safe='')}:{quote(self.login[1], safe='')}@" if self.login else ""
        if self.cafile:
            return f"smtp://{user}localhost:{self.port}?starttls=1&cafile={self.cafile}"
        return f"smtp://{user}127.0.0.1:{self.port}"

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


class SmsGateway:
    """An HTTP SMS gateway stand-in: keeps each POSTed JSON; answers with ``status_for[phone]``
    (200 unless told otherwise)."""

    def __init__(self):
        self.received: list[dict] = []
        self.status_for: dict[str, int] = {}
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length).decode("utf-8"))
                status = gateway.status_for.get(body.get("to"), 200)
                if status == 200:
                    gateway.received.append(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": %s}' % (b"true" if status == 200 else b"false"))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"sms+http://127.0.0.1:{self.server.server_port}/send"

    def __enter__(self) -> "SmsGateway":
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def code_in_eml(folder: Path) -> str:
    """The sign-in code in the newest .eml file the file: outbox wrote."""
    newest = sorted(folder.glob("*.eml"))[-1]
    mail = email.message_from_bytes(newest.read_bytes(), policy=email.policy.default)
    return re.search(r"\b(\d{6})\b", mail.get_body(("plain",)).get_content()).group(1)
