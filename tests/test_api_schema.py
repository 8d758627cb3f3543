"""Schemathesis against /api/v1/openapi.json, in process: generated valid and invalid requests to
every operation, with a real partner key and real issued cards in the database. Every response
must be one the document declares, match its schema and content type, and never be a 5xx; a
request without a key must be refused."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.test_partner_api import issue_virtual, new_key


@pytest.fixture
def partner_app(database_url, tmp_path, tree, make_uow, system):
    from unioncard.checkin_web import create_app
    from unioncard.config import Settings

    from tests.support import union_keys
    from unioncard.hsm import ceremony

    issue_virtual(make_uow, tree, system, "ivanov")
    with make_uow() as uow:  # the trust bundle QR codes are checked against
        ceremony.export_trust(uow, tree.actors["admin"], union_keys(tmp_path), timedelta(days=30))
        uow.commit()
    # Schemathesis sends hundreds of keyless requests on purpose; the address back-off would
    # turn the rest of the run into 429s, which is tested on its own (test_partner_api).
    app = create_app(Settings(instance_dir=tmp_path / "instance", database_url=database_url, secret_key="t",
                              api_key_failures_per_address="1000000 per minute"))
    app.config["UNIONCARD_TEST_PARTNER_KEY"] = new_key(make_uow, tree, per_minute=1_000_000)
    yield app
    app.extensions["unioncard"].engine.dispose()


def _card_numbers():
    """Numbers as partners type them: the union's issuer, any serial, the right check digit,
    grouped by spaces or not. Most are unknown (answered «not valid»), which is the point."""
    from hypothesis import strategies as st

    from unioncard.issuer import cardnumber

    def build(serial: int, grouped: bool) -> str:
        body = f"964301{serial:09d}"
        number = body + cardnumber.calc_check_digit(body)
        return cardnumber.format(number) if grouped else number

    return st.builds(build, st.integers(0, 10 ** 9 - 1), st.booleans())


def _credentials():
    """Well-formed card codes whose signatures are random bytes: readable, never genuine."""
    from hypothesis import strategies as st

    from unioncard.issuer import credential

    def build(serial: int, signature: bytes) -> str:
        from unioncard.issuer import cardnumber

        body = f"964301{serial:09d}"
        payload = credential.payload_for(body + cardnumber.calc_check_digit(body), "Иванов", "Иван", "Иванович", "23",
                                         date(2026, 1, 1), "0123456789abcdef", "virtual")
        return credential.decode_record(payload + signature).qr_text

    return st.builds(build, st.integers(0, 10 ** 9 - 1), st.binary(min_size=64, max_size=64))


schemathesis.openapi.format("card-number", _card_numbers())
schemathesis.openapi.format("card-credential", _credentials())
OPERATIONS = [("/api/v1/partner/verify", "POST"), ("/api/v1/partner/verify-credential", "POST")]


def test_the_document_lists_exactly_these_operations(partner_app):
    document = partner_app.test_client().get("/api/v1/openapi.json").get_json()
    assert sorted((path, method.upper()) for path, item in document["paths"].items() for method in item) \
        == sorted(OPERATIONS)


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("path, method", OPERATIONS)
def test_the_api_keeps_its_document(partner_app, path, method, mode):
    from hypothesis import given

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", partner_app)
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {partner_app.config['UNIONCARD_TEST_PARTNER_KEY']}"}
    seen = set()

    @given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def run(case):
        response = case.call_and_validate(headers=headers)
        seen.add(response.status_code)

    run()
    if mode == "positive":  # valid requests reached the database and got real answers
        assert 200 in seen, seen
    else:  # invalid bodies were refused (schemathesis's own check fails any that was accepted)
        assert seen & {400, 422}, seen
