"""Settings from the environment (UNIONCARD_*), with the embedded defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from unioncard.files import read_or_create_secret
from unioncard.issuer.cardnumber import legacy_prefixes


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    instance_dir: Path
    database_url: str
    secret_key: str
    session_timeout_minutes: int = 30
    # However active, a login session ends this many hours after it began.
    session_max_hours: int = 12
    login_lockout_threshold: int = 5
    login_lockout_minutes: int = 15
    max_upload_bytes: int = 10 * 1024 * 1024
    # An uploaded member list waits this long for its preview to be confirmed, then is deleted.
    upload_ttl_minutes: int = 60
    default_locale: str = "ru"
    # Secure cookies need HTTPS; the embedded demo runs on plain http://127.0.0.1.
    secure_cookies: bool = False
    # Key stores (see unioncard.hsm): operational keys and, kept apart, the root key.
    keystore_url: str = ""
    root_keystore_url: str = ""
    trust_bundle_days: int = 30
    # First six digits of every card number: 9 + 643 (Russia) + two issuer digits.
    card_issuer_prefix: str = "964301"
    # The issuer prefixes of cards the union's earlier registry (АИС) issued, which stay valid
    # after the move (docs/migration.md): UNIONCARD_LEGACY_CARD_PREFIXES="643100,7000-7009".
    legacy_card_prefixes: tuple[str, ...] = ()
    # The bureau's devices (unioncard.hardware): printer cups:QUEUE or file:DIR; chip reader
    # pcsc:NAME or sim:; the card layout (a built-in name or a JSON file).
    bureau_printer: str = ""
    bureau_reader: str = "sim:"
    bureau_layout: str = "union"
    # Rate limits (Flask-Limiter): where the counters live (memory:// is per process; give
    # redis://host:6379 when several server processes run), and how many failures one address
    # may make before it has to wait: wrong passwords on the login page, wrong partner API keys.
    rate_limit_storage: str = "memory://"
    login_failures_per_address: str = "20 per 10 minutes"
    api_key_failures_per_address: str = "10 per 10 minutes"
    # Members asking for sign-in codes from one address (each contact has its own limit too).
    member_codes_per_address: str = "10 per 10 minutes"
    # Where messages to members go (unioncard.messaging): e-mail by smtp://user:pass@host:port
    # (?starttls=1&from=…) or file:DIR (.eml files, the demo); SMS by sms+http(s)://gateway/path
    # or file:DIR. And how many each channel may send a second.
    mail_channel: str = ""
    sms_channel: str = ""
    # Where members reach the web app: the unsubscribe links in mailings point there.
    public_url: str = "http://127.0.0.1:5000"
    mail_per_second: float = 20.0
    sms_per_second: float = 5.0
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto to believe (0: none).
    proxy_hops: int = 0
    # Long work (exports, mailings) runs as jobs (unioncard.jobs): rq+redis://host:6379/0 with
    # `unioncard jobs worker` processes, or thread: (a worker thread of the app, the embedded
    # demo's default). A job whose worker gave no sign of life for the lease is taken up again.
    job_queue: str = "thread:"
    job_lease_seconds: float = 120.0
    # Rows a job handles per committed step (its checkpoint): smaller means finer progress.
    job_step_rows: int = 20_000
    # A pause after each committed step, leaving the database to the web for a moment (SQLite
    # has one writer at a time; 0 on PostgreSQL).
    job_step_pause_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def card_prefixes(self) -> tuple[str, ...]:
        """Every prefix a valid card number may start with: ours first, then the legacy ones."""
        return tuple(dict.fromkeys((self.card_issuer_prefix, *self.legacy_card_prefixes)))

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)


def _secret_key(instance_dir: Path) -> str:
    """A per-installation secret kept in the instance folder (mode 0600), made on first use."""
    value = os.environ.get("UNIONCARD_SECRET_KEY")
    if value:
        return value
    return read_or_create_secret(instance_dir / "secret_key", 48)


def keystore_secret(name: str) -> str | None:
    """A key store's passphrase or PIN: from UNIONCARD_<NAME>_SECRET, or from the file named by
    UNIONCARD_<NAME>_SECRET_FILE (so it need not sit in the environment of every process)."""
    value = os.environ.get(f"UNIONCARD_{name}_SECRET")
    if value:
        return value
    path = os.environ.get(f"UNIONCARD_{name}_SECRET_FILE")
    if path and Path(path).exists():
        return Path(path).read_text(encoding="utf-8").strip()
    # The demo (`unioncard demo`) keeps its generated passphrases in the instance folder, so the
    # commands the README shows after it (bureau run, keys list…) work in the same folder too.
    demo_file = Path(os.environ.get("UNIONCARD_INSTANCE_DIR", "var")).resolve() / demo_secret_file_name(name)
    if demo_file.exists():
        return demo_file.read_text(encoding="utf-8").strip()
    return None


def demo_secret_file_name(name: str) -> str:
    return f"demo-{name.lower().replace('_', '-')}-passphrase"


def load_settings(**overrides) -> Settings:
    instance_dir = Path(os.environ.get("UNIONCARD_INSTANCE_DIR", "var")).resolve()
    database_url = os.environ.get("UNIONCARD_DATABASE_URL") or f"sqlite:///{instance_dir / 'unioncard.db'}"
    settings = Settings(
        instance_dir=instance_dir,
        database_url=database_url,
        secret_key=_secret_key(instance_dir),
        session_timeout_minutes=_env_int("UNIONCARD_SESSION_TIMEOUT_MINUTES", 30),
        session_max_hours=_env_int("UNIONCARD_SESSION_MAX_HOURS", 12),
        login_lockout_threshold=_env_int("UNIONCARD_LOGIN_LOCKOUT_THRESHOLD", 5),
        login_lockout_minutes=_env_int("UNIONCARD_LOGIN_LOCKOUT_MINUTES", 15),
        max_upload_bytes=_env_int("UNIONCARD_MAX_UPLOAD_BYTES", 10 * 1024 * 1024),
        upload_ttl_minutes=_env_int("UNIONCARD_UPLOAD_TTL_MINUTES", 60),
        default_locale=os.environ.get("UNIONCARD_LOCALE", "ru"),
        secure_cookies=os.environ.get("UNIONCARD_SECURE_COOKIES", "0") == "1",
        keystore_url=os.environ.get("UNIONCARD_KEYSTORE") or f"software:{instance_dir / 'keys'}",
        root_keystore_url=os.environ.get("UNIONCARD_ROOT_KEYSTORE") or f"software:{instance_dir / 'root-key'}",
        trust_bundle_days=_env_int("UNIONCARD_TRUST_BUNDLE_DAYS", 30),
        card_issuer_prefix=os.environ.get("UNIONCARD_CARD_ISSUER_PREFIX", "964301"),
        legacy_card_prefixes=legacy_prefixes(os.environ.get("UNIONCARD_LEGACY_CARD_PREFIXES"),
                                             os.environ.get("UNIONCARD_CARD_ISSUER_PREFIX", "964301")),
        bureau_printer=os.environ.get("UNIONCARD_BUREAU_PRINTER") or f"file:{instance_dir / 'printed'}",
        bureau_reader=os.environ.get("UNIONCARD_BUREAU_READER", "sim:"),
        bureau_layout=os.environ.get("UNIONCARD_BUREAU_LAYOUT", "union"),
        rate_limit_storage=os.environ.get("UNIONCARD_RATE_LIMIT_STORAGE", "memory://"),
        login_failures_per_address=os.environ.get("UNIONCARD_LOGIN_FAILURES_PER_ADDRESS", "20 per 10 minutes"),
        api_key_failures_per_address=os.environ.get("UNIONCARD_API_KEY_FAILURES_PER_ADDRESS", "10 per 10 minutes"),
        proxy_hops=_env_int("UNIONCARD_PROXY_HOPS", 0),
        member_codes_per_address=os.environ.get("UNIONCARD_MEMBER_CODES_PER_ADDRESS", "10 per 10 minutes"),
        mail_channel=os.environ.get("UNIONCARD_MAIL") or f"file:{instance_dir / 'outbox'}",
        sms_channel=os.environ.get("UNIONCARD_SMS") or f"file:{instance_dir / 'outbox'}",
        public_url=(os.environ.get("UNIONCARD_PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/"),
        mail_per_second=float(os.environ.get("UNIONCARD_MAIL_PER_SECOND") or 20),
        sms_per_second=float(os.environ.get("UNIONCARD_SMS_PER_SECOND") or 5),
        job_queue=os.environ.get("UNIONCARD_JOB_QUEUE") or "thread:",
        job_lease_seconds=float(os.environ.get("UNIONCARD_JOB_LEASE_SECONDS") or 120),
        job_step_rows=_env_int("UNIONCARD_JOB_STEP_ROWS", 20_000),
        job_step_pause_seconds=float(os.environ.get("UNIONCARD_JOB_STEP_PAUSE_SECONDS") or 0),
    )
    return settings.with_overrides(**overrides) if overrides else settings
