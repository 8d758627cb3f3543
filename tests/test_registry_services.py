from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text

from unioncard.clock import today as union_today
from unioncard.errors import Conflict, NotFound, ValidationError
from unioncard.registry import services
from unioncard.registry.models import AuditEntry, Membership, Organisation, OrganisationParentHistory, Person
from tests.support import person


def count(session_factory, model, *where):
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_register_and_list_with_yo_search(tree, make_uow, session_factory):
    actor = tree.actors["chair_a"]
    with session_factory() as s:
        rows, total = services.list_members(s, actor, tree.primary_a, query="щел")
        assert total == 1 and rows[0].person.surname == "Щёлокова"
        rows, total = services.list_members(s, actor, tree.primary_a, query="ЩЁЛ")
        assert total == 1
        rows, total = services.list_members(s, actor, tree.primary_a)
        assert [r.person.surname for r in rows] == ["Иванов", "Щёлокова"]


def test_registered_elsewhere_is_refused_and_nothing_changes(tree, make_uow, session_factory):
    before = count(session_factory, Membership)
    with make_uow() as uow, pytest.raises(Conflict) as info:
        services.register_member(uow, tree.actors["admin"], tree.primary_b, person(), category="working",
                                 join_date=date(2020, 1, 1))
    assert info.value.code == "registered_elsewhere"
    assert "ППО школы № 1" in info.value.render("ru")
    assert count(session_factory, Membership) == before


def test_transfer_ends_old_membership(tree, make_uow, session_factory):
    ended = []
    with make_uow(subscribers=[ended.append]) as uow:
        new = services.register_member(uow, tree.actors["admin"], tree.primary_b, person(), category="working",
                                       join_date=date(2024, 1, 1), transfer=True)
        uow.commit()
    with session_factory() as s:
        old = s.get(Membership, tree.members["ivanov"])
        assert not old.is_active and old.leave_reason == "transferred" and old.leave_date == date(2024, 1, 1)
        assert s.get(Membership, new.id).is_active
        assert s.scalar(select(func.count()).select_from(Membership).where(
            Membership.person_id == old.person_id, Membership.is_active)) == 1
    assert [e.reason for e in ended] == ["transferred"]


def test_one_active_membership_enforced_by_database(tree, session_factory):
    with session_factory() as s:
        old = s.get(Membership, tree.members["ivanov"])
        s.add(Membership(person_id=old.person_id, organisation_id=tree.primary_b, org_path="/x/", sort_name="x",
                         category="working", join_date=date(2020, 1, 1), is_active=True))
        with pytest.raises(Exception):
            s.commit()


def test_out_of_scope_member_looks_missing(tree, make_uow):
    with make_uow() as uow, pytest.raises(NotFound):
        services.view_member(uow, tree.actors["chair_a"], tree.members["sidorova"])
    with make_uow() as uow, pytest.raises(NotFound):
        services.view_member(uow, tree.actors["chair_a"], tree.members["petrov"])  # sibling primary


def test_regional_staff_sees_subtree(tree, session_factory):
    with session_factory() as s:
        rows, total = services.list_members(s, tree.actors["region_a"], tree.region_a)
        assert total == 3
        with pytest.raises(NotFound):
            services.list_members(s, tree.actors["region_a"], tree.region_b)


def test_member_view_is_audited(tree, make_uow, session_factory):
    with make_uow() as uow:
        services.view_member(uow, tree.actors["chair_a"], tree.members["ivanov"])
        uow.commit()
    with session_factory() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "member.view")).one()
        assert entry.actor == "chair_a" and entry.object_id == str(tree.members["ivanov"])


def test_audit_log_is_append_only(tree, engine):
    with pytest.raises(Exception):
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_entry SET actor = 'x'"))
    with pytest.raises(Exception):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_entry"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_entry WHERE actor = 'test'")).scalar() > 0


def test_future_birth_date_and_bad_dates_refused(tree, make_uow, session_factory):
    before = count(session_factory, Person)
    with make_uow() as uow, pytest.raises(ValidationError) as info:
        services.register_member(uow, tree.actors["chair_a"], tree.primary_a,
                                 person("Новиков", birth=union_today() + timedelta(days=1)), category="working",
                                 join_date=union_today())
    assert info.value.code == "birth_date_future"
    with make_uow() as uow, pytest.raises(ValidationError) as info:
        services.deregister_member(uow, tree.actors["chair_a"], tree.members["ivanov"], date(2010, 1, 1), "own_wish")
    assert info.value.code == "leave_before_join"
    assert count(session_factory, Person) == before
    assert count(session_factory, Membership, Membership.is_active) == 4


def test_malformed_inn_refused_on_organisation(tree, make_uow, session_factory):
    before = count(session_factory, Organisation)
    with make_uow() as uow, pytest.raises(ValidationError) as info:
        services.create_organisation(uow, tree.actors["admin"], code="x1", name="ППО колледжа", level="primary",
                                     parent_id=tree.territorial_a, inn="7830002294")
    assert info.value.code == "inn_invalid"
    assert count(session_factory, Organisation) == before


def test_unknown_organisation_code(tree, session_factory):
    with session_factory() as s, pytest.raises(NotFound) as info:
        services.get_organisation_by_code(s, tree.actors["admin"], "99-999")
    assert info.value.code == "organisation_code_unknown"


def test_move_subtree_keeps_history_and_rewrites_paths(tree, make_uow, session_factory):
    with make_uow() as uow:
        services.move_organisation(uow, tree.actors["admin"], tree.territorial_a, tree.region_b)
        uow.commit()
    with session_factory() as s:
        region_b = s.get(Organisation, tree.region_b)
        primary = s.get(Organisation, tree.primary_a)
        assert primary.path.startswith(region_b.path)
        membership = s.get(Membership, tree.members["ivanov"])
        assert membership.org_path == primary.path
        history = s.scalars(select(OrganisationParentHistory).where(
            OrganisationParentHistory.organisation_id == tree.territorial_a).order_by(OrganisationParentHistory.id)).all()
        assert [h.parent_id for h in history] == [tree.region_a, tree.region_b]
        assert history[0].valid_to is not None and history[1].valid_to is None
    # The region it left no longer sees those members; the new one does.
    with session_factory() as s:
        assert services.list_members(s, tree.actors["region_a"], tree.region_a)[1] == 0


def test_move_into_own_subtree_refused(tree, make_uow):
    with make_uow() as uow, pytest.raises(ValidationError):
        services.move_organisation(uow, tree.actors["admin"], tree.region_a, tree.territorial_a)


def test_consent_history(tree, make_uow, session_factory):
    withdrawn = []
    actor = tree.actors["chair_a"]
    m = tree.members["ivanov"]
    with make_uow(subscribers=[withdrawn.append]) as uow:
        services.give_consent(uow, actor, m, "processing", date(2020, 1, 1), "paper")
        services.give_consent(uow, actor, m, "messaging", date(2020, 1, 1), "electronic")
        uow.commit()
    with make_uow(subscribers=[withdrawn.append]) as uow:
        services.withdraw_consent(uow, actor, m, "messaging", date(2021, 1, 1))
        uow.commit()
    with make_uow() as uow:
        services.give_consent(uow, actor, m, "messaging", date(2022, 1, 1), "paper")
        uow.commit()
    with make_uow() as uow, pytest.raises(Conflict):
        services.give_consent(uow, actor, m, "processing", date(2022, 1, 1), "paper")
    with session_factory() as s:
        person_id = s.get(Membership, m).person_id
        current = services.current_consents(s, person_id)
        assert set(current) == {"processing", "messaging"} and current["messaging"].given_on == date(2022, 1, 1)
        assert len(services.consent_history(s, person_id)) == 3
    assert [(e.section) for e in withdrawn] == ["messaging"]


def test_consent_rolled_back_announces_nothing(tree, make_uow):
    seen = []
    with make_uow(subscribers=[seen.append]) as uow:
        services.give_consent(uow, tree.actors["chair_a"], tree.members["ivanov"], "processing", date(2020, 1, 1), "paper")
        uow.commit()
    with make_uow(subscribers=[seen.append]) as uow:
        services.withdraw_consent(uow, tree.actors["chair_a"], tree.members["ivanov"], "processing", date(2021, 1, 1))
        # no commit
    assert seen == []


def test_login_blocked_when_term_ends(tree, make_uow, session_factory):
    admin = tree.actors["admin"]
    with make_uow() as uow:
        with uow.session.begin_nested():
            pass
        m = uow.session.get(Membership, tree.members["ivanov"])
        term = services.appoint_chairperson(uow, admin, tree.primary_a, m.person_id, date(2020, 1, 1),
                                            union_today() + timedelta(days=1))
        services.create_user(uow, admin, login="old_chair", password="correct horse battery", full_name="x",
                             role="chairperson", organisation_id=tree.primary_a, chairperson_term_id=term.id)
        # Time passes: the term ended yesterday (a login cannot be made for an ended term at all).
        term.ends_on = union_today() - timedelta(days=1)
        uow.commit()
    with make_uow() as uow, pytest.raises(services.LoginRefused) as info:
        services.authenticate(uow, "old_chair", "correct horse battery", lockout_threshold=5, lockout_minutes=15)
    assert info.value.code == "login_blocked"


def _login(make_uow, login, password, address, threshold=3):
    with make_uow() as uow:
        try:
            services.authenticate(uow, login, password, lockout_threshold=threshold, lockout_minutes=15,
                                  address=address)
        except services.LoginRefused as refused:
            return refused.code, refused.render()
        return "ok", ""


def test_lockout_answers_like_a_wrong_password_and_only_for_the_guessing_address(tree, make_uow):
    unknown = _login(make_uow, "nobody-here", "wrong", "192.0.2.1")
    for _ in range(3):
        assert _login(make_uow, "chair_a", "wrong", "192.0.2.1") == unknown
    # Locked from that address: even the right password gets the same answer as an unknown login.
    assert _login(make_uow, "chair_a", "correct horse battery", "192.0.2.1") == unknown
    # The real chairperson at another address is not locked out by the stranger.
    assert _login(make_uow, "chair_a", "correct horse battery", "198.51.100.7")[0] == "ok"


def test_guessing_spread_over_many_addresses_locks_the_login_everywhere(tree, make_uow):
    for index in range(3 * services.ACCOUNT_WIDE_FACTOR):
        _login(make_uow, "chair_a", "wrong", f"10.0.{index // 2}.{index % 2 + 1}")
    assert _login(make_uow, "chair_a", "correct horse battery", "198.51.100.7")[0] == "login_refused"


def test_remove_organisation_with_members_refused(tree, make_uow):
    with make_uow() as uow, pytest.raises(Conflict) as info:
        services.remove_organisation(uow, tree.actors["admin"], tree.primary_a, union_today(), "ликвидация")
    assert info.value.code == "org_has_members"


def test_production_password_hash_is_salted_scrypt():
    from werkzeug.security import check_password_hash, generate_password_hash

    method = services.PASSWORD_HASH_METHOD
    assert method.startswith("pbkdf2")  # lowered for the suite by conftest
    a = generate_password_hash("секрет-пароль", method="scrypt:32768:8:1")
    b = generate_password_hash("секрет-пароль", method="scrypt:32768:8:1")
    assert a != b and a.startswith("scrypt:32768:8:1$") and check_password_hash(a, "секрет-пароль")
    import inspect

    assert '"scrypt:32768:8:1"' in inspect.getsource(services)
