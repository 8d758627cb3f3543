"""What people read is Russian: the desk's status, a print job's state, the reasons the system
writes into a card's history."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tests.station_support import export_trust, issued_cards, make_event, publish, root_pem
from tests.support import union_keys
from unioncard.clock import today as union_today


def test_station_status_speaks_russian_and_json_on_request(make_uow, tree, tmp_path):
    from unioncard import cli

    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    event_id = make_event(make_uow, tree, stores, admission="members")
    (tmp_path / "event.ucb").write_bytes(publish(make_uow, event_id, stores))
    home = str(tmp_path / "desk")
    runner = CliRunner()
    loaded = runner.invoke(cli.main, ["station", "load-bundle", str(tmp_path / "event.ucb"), "--home", home,
                                      "--root-key", root_pem(stores, tmp_path / "root.pem")])
    assert loaded.exit_code == 0, loaded.output
    shown = runner.invoke(cli.main, ["station", "status", "--home", home])
    assert shown.exit_code == 0 and "Мероприятие: «XI съезд Профсоюза»" in shown.output
    assert "Отметок за этим столом: 0" in shown.output and "{" not in shown.output
    as_json = runner.invoke(cli.main, ["station", "status", "--home", home, "--json"])
    assert json.loads(as_json.output)["bundle"]["event"] == "XI съезд Профсоюза"


def test_the_card_history_says_in_russian_why_the_system_revoked_it(web, tree, make_uow, tmp_path, system):
    from unioncard.registry import services as registry

    stores = union_keys(tmp_path)
    card = issued_cards(make_uow, tree, 1, stores.operational)[0]
    with make_uow() as uow:
        membership_id = registry.active_membership(uow.session, card.person_id).id
        registry.withdraw_consent(uow, system, membership_id, "processing", union_today())
        uow.commit()
    web.login("chair_a")
    page = web.get(f"/cards/{card.id}").get_data(as_text=True)
    assert "отозвано согласие на обработку" in page and "consent to processing withdrawn" not in page


def test_times_are_shown_in_the_viewers_region_with_its_zone(tree, make_uow, app):
    """Russia spans eleven zones: a Krasnodar user sees Moscow time, one in Kamchatka МСК+9."""
    from datetime import datetime

    from tests.support import PASSWORD
    from unioncard.registry import services
    from unioncard.registry.timezones import shown, zone_of_region

    moment = datetime(2026, 12, 1, 12, 0)
    assert shown(moment, zone_of_region("23")) == "01.12.2026 15:00 (МСК)"
    assert shown(moment, zone_of_region("41")) == "02.12.2026 00:00 (МСК+9)"
    assert shown(moment, zone_of_region("39")) == "01.12.2026 14:00 (МСК−1)"
    with make_uow() as uow:
        kamchatka = services.create_organisation(uow, tree.actors["admin"], code="41", name="Камчатская краевая",
                                                 level="regional", parent_id=tree.central, region_code="41")
        services.create_user(uow, tree.actors["admin"], login="kam", password=PASSWORD, full_name="Камчатка",
                             role="regional_staff", organisation_id=kamchatka.id)
        uow.commit()
    from unioncard.checkin_web import formatting
    from unioncard.checkin_web.auth import load_user
    from unioncard.registry import sessions
    from unioncard.registry.models import UserAccount

    with make_uow() as uow:
        user_id = uow.session.query(UserAccount).filter_by(login="kam").one().id
        token = sessions.start(uow, user_id, "127.0.0.1")
        uow.commit()
    with app.test_request_context():
        from flask_login import login_user

        user = load_user(f"{user_id}.{token}")
        assert user.time_zone == "Asia/Kamchatka"
        login_user(user)
        assert formatting.day(moment) == "02.12.2026 00:00 (МСК+9)"


def test_counts_take_the_russian_plural_forms():
    """«1 карта», «2 карты», «5 карт», «11 карт», «21 карта»: three forms, never «карт(ы)»."""
    from unioncard.i18n import translate_plural

    said = {n: translate_plural("%(num)s card", "%(num)s cards", n) for n in (1, 2, 4, 5, 11, 12, 21, 22, 25, 111)}
    assert said == {1: "1 карта", 2: "2 карты", 4: "4 карты", 5: "5 карт", 11: "11 карт", 12: "12 карт",
                    21: "21 карта", 22: "22 карты", 25: "25 карт", 111: "111 карт"}
    assert translate_plural("%(num)s person", "%(num)s people", 3) == "3 человека"


def test_no_template_or_message_writes_a_bracketed_plural():
    """«карт(ы)», «человек(а)»: the catalogue's plural forms say it properly."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "unioncard"
    offenders = [f"{path.relative_to(root)}: {match.group(0)}"
                 for path in list(root.rglob("*.py")) + list(root.rglob("*.html")) + list(root.rglob("*.po"))
                 for match in re.finditer(r"[а-яё]+\((?:ы|а|ов|и|ей|ек)\)", path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_a_real_device_without_its_driver_is_a_named_error(monkeypatch):
    """The demo is installed without pyscard and pycups; configuring pcsc: or cups: then says what
    to install, in Russian, instead of an ImportError."""
    import importlib.util

    import pytest as _pytest

    from unioncard.hardware.errors import DriverMissing
    from unioncard.hardware.printers import CupsPrinter
    from unioncard.hardware.smartcard import PcscReader

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("cups", "smartcard") else real(name, *a))
    for make in (lambda: CupsPrinter("cards"), lambda: PcscReader("")):
        with _pytest.raises(DriverMissing) as info:
            make()
        assert info.value.code == "device_driver_missing" and "setup.sh --devices" in info.value.render()


def test_the_command_line_helps_in_russian():
    """A bureau operator works in the CLI too: its help, option help and click's own words are
    Russian (UNIONCARD_LOCALE=en gives the English)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "UNIONCARD_LOCALE")}
    said = subprocess.run([sys.executable, "-m", "unioncard", "bureau", "run", "--help"], capture_output=True,
                          text=True, env=env, check=True).stdout
    assert "Запуск: " in said and "Параметры:" in said and "Записать чипы и напечатать партию" in said
    assert "Карт в одном задании печати" in said and "Show this message" not in said
    wrong = subprocess.run([sys.executable, "-m", "unioncard", "user", "create"], capture_output=True, text=True,
                           env=env)
    assert wrong.returncode == 2 and "Ошибка: Не хватает параметра" in wrong.stderr
    english = subprocess.run([sys.executable, "-m", "unioncard", "--help"], capture_output=True, text=True,
                             env={**env, "UNIONCARD_LOCALE": "en"}, check=True).stdout
    assert "Usage:" in english and "Serve the web application." in english
