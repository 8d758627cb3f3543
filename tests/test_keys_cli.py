"""The key ceremony commands on a real database, with audit entries, and the trust bundle checked
by a verifier written from docs/formats.md with nothing but json, base64 and cryptography."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from sqlalchemy import select

from unioncard.cli import main
from unioncard.registry.models import AuditEntry


@pytest.fixture
def ceremony_env(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("UNIONCARD_DATABASE_URL", database_url)
    monkeypatch.setenv("UNIONCARD_INSTANCE_DIR", str(tmp_path / "inst"))
    monkeypatch.setenv("UNIONCARD_KEYSTORE_SECRET", "operational passphrase")
    (tmp_path / "root-secret").write_text("root passphrase\n")
    monkeypatch.setenv("UNIONCARD_ROOT_KEYSTORE_SECRET_FILE", str(tmp_path / "root-secret"))
    monkeypatch.delenv("UNIONCARD_KEYSTORE", raising=False)
    monkeypatch.delenv("UNIONCARD_ROOT_KEYSTORE", raising=False)
    return tmp_path


def run(*args, input=None):
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    return result


def audit_actions(session_factory):
    with session_factory() as s:
        return [(a.action, a.object_id) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def independent_verify(bundle_bytes, root_pem, now):
    """docs/formats.md, section «Trust bundle», followed literally."""
    envelope = json.loads(bundle_bytes)
    assert envelope["format"] == "unioncard-trust-bundle/1"
    payload = b64url(envelope["payload"])
    root = load_pem_public_key(root_pem)
    assert isinstance(root, ed25519.Ed25519PublicKey)
    assert envelope["signature"]["algorithm"] == "Ed25519"
    message = b"UNIONCARD-SIG-1\x00" + b"root" + b"\x00" + payload
    root.verify(b64url(envelope["signature"]["value"]), message)  # raises if wrong
    body = json.loads(payload.decode("utf-8"))
    expires = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert now < expires
    for key in body["keys"]:
        load_der_public_key(base64.b64decode(key["public_key"]))
    return body


def test_key_ceremony_end_to_end(ceremony_env, session_factory):
    tmp = ceremony_env
    first = run("keys", "init")
    assert first.exit_code == 0, first.output
    assert "Отпечаток корневого ключа" in first.output
    again = run("keys", "init")
    assert again.exit_code == 0 and "ничего не создано" in again.output
    generated = [a for a in audit_actions(session_factory) if a[0] == "key.generate"]
    assert len(generated) == 6  # root + five operational roles
    # The root key is kept apart from the operational keys, and no private key is in the database.
    assert (tmp / "inst" / "root-key" / "keystore.json").exists()
    assert len(list((tmp / "inst" / "keys" / "keys").glob("*.json"))) == 5

    listing = run("keys", "list")
    assert listing.exit_code == 0 and "card_credential" in listing.output and "root" in listing.output

    export = run("keys", "export-trust", "--out", str(tmp / "trust-1.json"), "--days", "10",
                 "--root-public-key", str(tmp / "root.pem"))
    assert export.exit_code == 0, export.output
    assert "версии 1" in export.output
    body = independent_verify((tmp / "trust-1.json").read_bytes(), (tmp / "root.pem").read_bytes(),
                              datetime.now(timezone.utc))
    assert body["version"] == 1
    old_event_key = next(k["key_id"] for k in body["keys"] if k["role"] == "event_bundle")

    rotated = run("keys", "rotate", "--role", "event_bundle")
    assert rotated.exit_code == 0, rotated.output
    assert run("keys", "export-trust", "--out", str(tmp / "trust-2.json")).exit_code == 0
    body2 = independent_verify((tmp / "trust-2.json").read_bytes(), (tmp / "root.pem").read_bytes(),
                               datetime.now(timezone.utc))
    event_keys = {k["key_id"]: k["status"] for k in body2["keys"] if k["role"] == "event_bundle"}
    assert body2["version"] == 2 and event_keys[old_event_key] == "verify_only" and len(event_keys) == 2

    retired = run("keys", "retire", old_event_key, "--yes")
    assert retired.exit_code == 0, retired.output
    assert run("keys", "export-trust", "--out", str(tmp / "trust-3.json")).exit_code == 0
    body3 = independent_verify((tmp / "trust-3.json").read_bytes(), (tmp / "root.pem").read_bytes(),
                               datetime.now(timezone.utc))
    assert old_event_key not in {k["key_id"] for k in body3["keys"]}

    actions = [a for a, _ in audit_actions(session_factory)]
    assert actions.count("key.rotate") == 1 and actions.count("key.retire") == 1 and actions.count("trust.export") == 3
    # Private material never reaches the database: no audit row carries more than public data.
    with session_factory() as s:
        dumped = json.dumps([e.details for e in s.scalars(select(AuditEntry))])
    assert "private" not in dumped and "ciphertext" not in dumped


def test_wrong_passphrase_leaves_no_trace(ceremony_env, session_factory, monkeypatch):
    assert run("keys", "init").exit_code == 0
    before = audit_actions(session_factory)
    files_before = sorted(p.name for p in (ceremony_env / "inst" / "keys" / "keys").iterdir())
    monkeypatch.setenv("UNIONCARD_KEYSTORE_SECRET", "not the passphrase")
    result = run("keys", "rotate", "--role", "card_credential")
    assert result.exit_code == 2
    assert "Неверный пароль" in result.output
    assert audit_actions(session_factory) == before
    assert sorted(p.name for p in (ceremony_env / "inst" / "keys" / "keys").iterdir()) == files_before


def test_retiring_an_unknown_key(ceremony_env):
    assert run("keys", "init").exit_code == 0
    result = run("keys", "retire", "0000000000000000", "--yes")
    assert result.exit_code == 2 and "0000000000000000" in result.output


def test_missing_passphrase_is_named(ceremony_env, monkeypatch):
    monkeypatch.delenv("UNIONCARD_KEYSTORE_SECRET")
    result = run("keys", "init")
    assert result.exit_code == 2 and "software:" in result.output


def test_the_verifier_printed_in_formats_md_accepts_our_bundle(ceremony_env):
    """The example code in docs/formats.md is run as written, against a real exported bundle."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    namespace = {}
    exec(compile(code, "formats.md", "exec"), namespace)
    assert run("keys", "init").exit_code == 0
    tmp = ceremony_env
    assert run("keys", "export-trust", "--out", str(tmp / "t.json"), "--root-public-key", str(tmp / "r.pem")).exit_code == 0
    body = namespace["check_bundle"]((tmp / "t.json").read_bytes(), (tmp / "r.pem").read_bytes(),
                                     datetime.now(timezone.utc), 1)
    assert body["version"] == 1 and len(body["keys"]) == 4
    tampered = (tmp / "t.json").read_bytes().replace(b'"payload": "ey', b'"payload": "ez')
    with pytest.raises(Exception):
        namespace["check_bundle"](tampered, (tmp / "r.pem").read_bytes(), datetime.now(timezone.utc), 1)


def test_demo_sets_up_keys_once_without_questions(database_url, tmp_path, monkeypatch, session_factory):
    from unioncard import db
    from unioncard.cli import _demo_keys
    from unioncard.config import load_settings
    from unioncard.hsm import ceremony

    for name in ("KEYSTORE", "ROOT_KEYSTORE"):
        # set-then-delete so that monkeypatch restores the original state (the demo sets them)
        for variable in (f"UNIONCARD_{name}_SECRET", f"UNIONCARD_{name}_SECRET_FILE"):
            monkeypatch.setenv(variable, "")
            monkeypatch.delenv(variable)
    monkeypatch.setenv("UNIONCARD_DATABASE_URL", database_url)
    monkeypatch.setenv("UNIONCARD_INSTANCE_DIR", str(tmp_path / "inst"))
    settings = load_settings()
    engine = db.make_engine(database_url)
    _demo_keys(settings, engine)
    _demo_keys(settings, engine)
    engine.dispose()
    assert (tmp_path / "inst" / "demo-keystore-passphrase").stat().st_mode & 0o077 == 0
    with session_factory() as s:
        assert ceremony.latest_bundle(s).version == 1
    assert [a for a, _ in audit_actions(session_factory)].count("key.generate") == 6
