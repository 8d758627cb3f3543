"""Every door besides the web pages, with another organisation's ids and with hostile values:
the desk API, the partner API and the command line. (The web pages' sweep is test_access_sweep.py;
the names a desk may learn are in test_hardening.py.) Nothing here may answer with a 5xx or a
traceback, and nothing may tell a door more than its principal is owed."""

from __future__ import annotations

import json
import uuid

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.station_support import enrol, export_trust, issued_cards, make_event
from tests.support import union_keys
from unioncard import clock
from unioncard.hsm.trust import timestamp


@pytest.fixture
def desk(app, make_uow, tree, tmp_path):
    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    app.extensions["unioncard"]._signer = stores.operational
    own = issued_cards(make_uow, tree, 1, stores.operational, prefix="Делегатова")[0]
    foreign = issued_cards(make_uow, tree, 1, stores.operational, organisation="primary_b", prefix="Чужакова")[0]
    event_id = make_event(make_uow, tree, stores, roster=[own.number])
    _station_id, token = enrol(make_uow, event_id, "Стол 1")
    return app.test_client(), token, own, foreign, event_id


def _entry(card_number, **changes):
    entry = {"nonce": uuid.uuid4().hex, "kind": "checkin", "number": card_number,
             "station_clock": timestamp(clock.now())}
    entry.update(changes)
    return entry


HOSTILE_VALUES = ["", "9" * 40, -1, 2 ** 70, 1e308, float("inf"), float("nan"), None, [], {}, True, "x" * 5000,
                  "2026-13-45T99:99:99Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"]


def test_the_desk_api_answers_every_hostile_value_with_a_code(desk):
    client, token, own, foreign, _event_id = desk
    auth = {"Authorization": f"Bearer {token}"}
    answers = []
    for value in HOSTILE_VALUES:
        text = json.dumps(value, allow_nan=True) if not isinstance(value, str) else value
        answers.append(client.get("/station-api/v1/bundle", query_string={"have": str(text)}, headers=auth))
        for field in ("after", "clock_offset"):
            answers.append(client.post("/station-api/v1/journal", headers=auth,
                                       data=json.dumps({"entries": [], field: value}, allow_nan=True),
                                       content_type="application/json"))
        for field in ("nonce", "kind", "number", "station_clock", "clock_offset", "ref_nonce", "role",
                      "region_code", "verdict", "source", "credential"):
            body = {"entries": [_entry(own.number, **{field: value})]}
            answers.append(client.post("/station-api/v1/journal", headers=auth,
                                       data=json.dumps(body, allow_nan=True), content_type="application/json"))
    for body in ("not json", "[]", '{"entries": 5}', '{"entries": [1, "a", null]}', "{" * 5000):
        answers.append(client.post("/station-api/v1/journal", headers=auth, data=body,
                                   content_type="application/json"))
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {token}x"},
                    {"Authorization": "Bearer 1." + "a" * 10000}):
        answers.append(client.get("/station-api/v1/hello", headers=headers))
    assert len(answers) > 150
    for response in answers:
        assert response.status_code < 500, response.get_data(as_text=True)[:300]
        if response.status_code >= 400:
            assert response.get_json()["error"]["code"]


def test_a_desk_learns_numbers_only_for_cards_off_its_roster(desk):
    client, token, own, foreign, _event_id = desk
    auth = {"Authorization": f"Bearer {token}"}
    response = client.post("/station-api/v1/journal", headers=auth,
                           json={"entries": [_entry(foreign.number), _entry(own.number)], "after": 0})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Чужакова" not in text and "Делегатова" not in text  # the desk API returns no names at all
    hello = client.get("/station-api/v1/hello", headers=auth).get_data(as_text=True)
    assert "Чужакова" not in hello


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.fixed_dictionaries({}, optional={
    "nonce": st.one_of(st.just(uuid.uuid4().hex), json_values), "kind": st.sampled_from(["checkin", "undo", "x"]),
    "number": st.one_of(st.just("9643012300000014"), json_values), "station_clock": st.one_of(
        st.just("2026-12-01T10:00:00Z"), json_values), "clock_offset": json_values, "credential": json_values,
    "ref_nonce": json_values}), max_size=5))
def test_journal_entries_are_taken_or_refused_with_a_code(desk, make_uow, entries):
    from unioncard.checkin import services as checkin
    from unioncard.errors import UnionCardError

    _client, token, *_ = desk
    with make_uow() as uow:
        station = checkin.authenticate_station(uow.session, token)
        try:
            checkin.take_journal(uow, station, entries)
        except UnionCardError as refused:
            assert refused.code
        uow.rollback()


def test_the_partner_api_tells_only_validity_for_any_card_of_any_region(app, make_uow, tree, tmp_path):
    from unioncard.partner import services as partners

    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    cards = (issued_cards(make_uow, tree, 1, stores.operational, prefix="Своя")
             + issued_cards(make_uow, tree, 1, stores.operational, organisation="primary_b", prefix="Чужакова"))
    with make_uow() as uow:
        _key, secret = partners.create_key(uow.session, tree.actors["admin"], "Магазин", "general", 1000)
        uow.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    for card in cards:
        for surname in ("Своя-А", "Чужакова-А", "Иванов"):
            for path, body in (("/api/v1/partner/verify", {"card_number": card.number, "surname": surname}),
                               ("/api/v1/partner/verify-credential", {"credential": card.credential})):
                response = client.post(path, json=body, headers=headers)
                assert response.status_code == 200
                assert set(response.get_json()) == {"valid", "checked_at", "reference"}
                assert "Анна" not in response.get_data(as_text=True)


# --- the command line -----------------------------------------------------------------------------

def _leaves(command, path=()):
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _leaves(sub, path + (name,))
    else:
        yield path, command


# Commands that take an id of something, with an id that is not there (or not the caller's).
FOREIGN_ID_CALLS = {
    ("bureau", "run"): ["bureau", "run", "987654"],
    ("bureau", "manifest"): ["bureau", "manifest", "987654", "--out", "{tmp}/m"],
    ("bureau", "ship"): ["bureau", "ship", "987654"],
    ("partner", "revoke-key"): ["partner", "revoke-key", "987654"],
    ("keys", "retire"): ["keys", "retire", "no-such-key", "--yes"],
    ("import-members",): ["import-members", "{tmp}/members.csv", "--org-code", "99-999-9999"],
    ("user", "create"): ["user", "create", "--login", "x1", "--role", "admin", "--org-code", "99-999",
                         "--full-name", "X", "--password", "long enough password"],
    ("user", "appoint-chairperson"): ["user", "appoint-chairperson", "--org-code", "23-01-001", "--person-id",
                                      "987654", "--from", "2026-01-01", "--to", "2027-01-01"],
    ("user", "set-password"): ["user", "set-password", "--login", "nobody", "--password", "long enough password"],
    ("user", "disable"): ["user", "disable", "--login", "nobody"],
    ("station", "load-bundle"): ["station", "load-bundle", "{tmp}/none.ucb", "--home", "{tmp}/desk",
                                 "--root-key", "{tmp}/none.pem"],
    ("station", "switch-event"): ["station", "switch-event", "{tmp}/none.ucb", "--home", "{tmp}/desk",
                                  "--root-key", "{tmp}/none.pem", "--yes"],
}
# Commands that serve forever or need a server; their refusals are tested where they live.
LONG_RUNNING = {("run",), ("demo",), ("station", "run"), ("station", "enrol")}


def test_every_command_has_help_and_refuses_unknown_ids_without_a_traceback(database_url, tree, monkeypatch,
                                                                             tmp_path):
    from unioncard import cli

    monkeypatch.setenv("UNIONCARD_DATABASE_URL", database_url)
    monkeypatch.setenv("UNIONCARD_INSTANCE_DIR", str(tmp_path / "instance"))
    monkeypatch.setenv("UNIONCARD_KEYSTORE_SECRET", "s")
    monkeypatch.setenv("UNIONCARD_ROOT_KEYSTORE_SECRET", "r")
    (tmp_path / "members.csv").write_text("Фамилия;Имя\nИванов;Иван\n", encoding="utf-8")
    runner = CliRunner()
    leaves = list(_leaves(cli.main))
    for path, _command in leaves:
        result = runner.invoke(cli.main, list(path) + ["--help"])
        assert result.exit_code == 0 and result.exception is None, (path, result.output)
    id_taking = {path for path, command in leaves
                 if {p.name for p in command.params} & {"batch_id", "key_id", "org_code", "login", "person_id", "path"}}
    assert id_taking - LONG_RUNNING <= set(FOREIGN_ID_CALLS), "add the new command to FOREIGN_ID_CALLS"
    for path, args in FOREIGN_ID_CALLS.items():
        result = runner.invoke(cli.main, [a.replace("{tmp}", str(tmp_path)) for a in args])
        assert result.exit_code != 0, (path, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (path, repr(result.exception))
        assert "Traceback" not in result.output and result.output.strip(), path


# --- found by the outside attacker's probe ----------------------------------------------------------

def test_roles_without_the_members_right_open_no_card_or_member_page(web, tree, make_uow, system):
    """The bureau and event staff see the whole union's tree by scope, but a card page (number and
    holder) or a member page is not theirs: every such route answers 404 for every id."""
    from tests.test_access_sweep import _cards, fill, routes
    from unioncard.registry import services

    card_ids = _cards(tree, make_uow, system)
    with make_uow() as uow:
        services.create_user(uow, system, login="events", password="correct horse battery", full_name="events",
                             role="event_staff", organisation_id=tree.central)
        uow.commit()
    for login in ("bureau", "events"):
        web.login(login)
        checked = 0
        for rule in routes(web.app):
            params = set(rule.arguments)
            if not params & {"membership_id", "card_id"} or "GET" not in rule.methods:
                continue
            for card_id in card_ids.values():
                path = fill(rule, {"card_id": card_id, "membership_id": tree.members["ivanov"],
                                   "organisation_id": tree.primary_a})
                response = web.client.get(path)
                assert response.status_code == 404, f"{login}: {path} answered {response.status_code}"
                assert "Иванов" not in response.get_data(as_text=True)
                checked += 1
        assert checked >= 3
        web.client.post("/logout", data={"csrf_token": web.token("/")})


def test_where_someone_outside_ones_scope_is_registered_is_not_said(tree, make_uow, web):
    from tests.support import person
    from tests.test_import_export import csv_bytes
    from unioncard.errors import Conflict
    from unioncard.registry import importer, services

    sidorova = ["Сидорова", "Мария", "Олеговна", "10.09.2003", "ж", "работающий", "", "", "01.09.2021", "да", "", "",
                "01.09.2021", "бумажная"]
    with make_uow() as uow:
        plan = importer.plan_import(uow.session, tree.actors["chair_a"], tree.primary_a, csv_bytes([sidorova]), "m.csv",
                                    transfer=True)
    message = " ".join(e.message for e in plan.errors)
    assert "за пределами вашей части" in message
    assert "Чувашского" not in message and "21-001" not in message
    assert not any(r.action == "transfer" for r in plan.rows)  # nor can it be taken over from there
    with make_uow() as uow, pytest.raises(Conflict) as refused:
        services.register_member(uow, tree.actors["chair_a"], tree.primary_a,
                                 person("Сидорова", "Мария", "Олеговна", __import__("datetime").date(2003, 9, 10)),
                                 category="working", join_date=__import__("datetime").date(2021, 9, 1), transfer=True)
    assert "Чувашского" not in refused.value.render() and "21-001" not in refused.value.render()
    # Someone who may see both organisations is told where the person is.
    with make_uow() as uow:
        plan = importer.plan_import(uow.session, tree.actors["admin"], tree.primary_a, csv_bytes([sidorova]), "m.csv")
    assert "Чувашского" in " ".join(e.message for e in plan.errors)


def test_ids_beyond_the_database_and_deep_or_long_json_are_4xx(web, tree, app, desk):
    client, token, own, _foreign, _event_id = desk
    web.login("admin")
    huge = "9" * 25
    for path in (f"/registry/org/{huge}", f"/registry/member/{huge}", f"/cards/{huge}", f"/events/{huge}",
                 f"/bureau/batches/{huge}", f"/partners/{huge}", f"/registry/org/{2 ** 31}"):
        assert web.get(path).status_code == 404, path
    order = web.post(f"/cards/org/{tree.primary_a}/order", token_from=f"/cards/org/{tree.primary_a}",
                     data={"membership_id": [huge, str(2 ** 63), "-1", "x"]})
    assert order.status_code < 500
    deep = "[" * 5000 + "]" * 5000
    long_number = "9" * 5000
    for path, headers in (("/api/v1/partner/verify", {"Authorization": "Bearer ucp_x"}),
                          ("/station-api/v1/journal", {"Authorization": f"Bearer {token}"})):
        for body in ('{"card_number": %s, "surname": "a"}' % deep, '{"card_number": %s, "surname": "a"}' % long_number,
                     '{"entries": %s}' % deep):
            response = client.post(path, data=body, headers=headers, content_type="application/json")
            assert response.status_code == 400, (path, body[:40], response.status_code)
            assert response.get_json()["error"]["code"] == "malformed_json"


def test_event_dates_that_cannot_be_signed_are_refused(tree, make_uow):
    from datetime import date

    from unioncard.checkin import services as checkin
    from unioncard.errors import ValidationError

    for starts, ends in ((date(9999, 12, 30), date(9999, 12, 31)), (date(1, 1, 1), date(1, 1, 2))):
        with make_uow() as uow, pytest.raises(ValidationError) as refused:
            checkin.create_event(uow, tree.actors["admin"], code=f"X{starts.year}", name="x", kind="seminar",
                                 organisation_id=tree.central, starts_on=starts, ends_on=ends, venue="x",
                                 admission="members")
        assert refused.value.code == "event_dates_range"


def test_the_desks_claims_of_role_and_region_are_not_kept(desk, session_factory):
    from unioncard.checkin.models import CheckIn

    client, token, own, foreign, event_id = desk
    entries = [_entry(foreign.number, role="delegate", region_code="12"), _entry(own.number, role="guest",
                                                                                   region_code="99")]
    assert client.post("/station-api/v1/journal", json={"entries": entries},
                       headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with session_factory() as s:
        kept = {c.number: (c.role, c.region_code) for c in s.query(CheckIn).filter_by(event_id=event_id)}
    assert kept == {foreign.number: ("member", foreign.number[6:8]), own.number: ("delegate", own.number[6:8])}


def test_desk_commands_refuse_bad_key_files_and_addresses_and_leave_no_half_made_desk(tmp_path, make_uow, tree):
    from tests.station_support import publish, root_pem
    from unioncard import cli

    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    other_stores = union_keys(tmp_path / "other")
    event_id = make_event(make_uow, tree, stores, admission="members")
    (tmp_path / "event.ucb").write_bytes(publish(make_uow, event_id, stores))
    (tmp_path / "bad.pem").write_text("garbage")
    wrong_root = root_pem(other_stores, tmp_path / "other.pem")
    runner = CliRunner()
    home = tmp_path / "fresh-desk"
    calls = [["station", "load-bundle", str(tmp_path / "event.ucb"), "--home", str(home), "--root-key",
              str(tmp_path / "bad.pem")],
             ["station", "enrol", "--home", str(home), "--server", "notaurl", "--token", "1.x"],
             ["station", "enrol", "--home", str(home), "--server", "http://127.0.0.1:9", "--token", "1.x",
              "--root-key", str(tmp_path / "bad.pem")],
             ["station", "load-bundle", str(tmp_path / "event.ucb"), "--home", str(home), "--root-key", wrong_root]]
    for args in calls:
        result = runner.invoke(cli.main, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert not home.exists(), args
    for args in (["bureau", "run", "9" * 25], ["partner", "revoke-key", "9" * 25],
                 ["user", "appoint-chairperson", "--org-code", "x", "--person-id", "9" * 25, "--from", "2026-01-01",
                  "--to", "2027-01-01"]):
        result = runner.invoke(cli.main, args)
        assert result.exit_code == 2 and "Traceback" not in result.output, (args, result.output)


def test_files_with_personal_data_are_private(database_url, tree, make_uow, monkeypatch, tmp_path):
    import stat

    from tests.support import approved_cards
    from unioncard import cli
    from unioncard.personalization import services as bureau

    approved_cards(make_uow, tree, 2)
    with make_uow() as uow:
        batch = bureau.create_batches(uow, tree.actors["bureau"])[0]
        uow.commit()
    monkeypatch.setenv("UNIONCARD_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    monkeypatch.setenv("UNIONCARD_INSTANCE_DIR", str(tmp_path / "instance"))
    import os

    old = os.umask(0o022)
    try:
        assert CliRunner().invoke(cli.main, ["db", "upgrade"]).exit_code == 0
        monkeypatch.setenv("UNIONCARD_DATABASE_URL", database_url)
        result = CliRunner().invoke(cli.main, ["bureau", "manifest", str(batch.id), "--out", str(tmp_path / "m")])
        assert result.exit_code == 0, result.output
    finally:
        os.umask(old)
    for path in [tmp_path / "fresh.db", *(tmp_path / "m").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    # A database made readable by others before (an older version) is made private when opened.
    from unioncard import db

    (tmp_path / "fresh.db").chmod(0o644)
    db.make_engine(f"sqlite:///{tmp_path / 'fresh.db'}").dispose()
    assert stat.S_IMODE((tmp_path / "fresh.db").stat().st_mode) == 0o600
