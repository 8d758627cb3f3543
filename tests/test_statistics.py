"""Statistical forms (seed 004): Form 2 from the registry and the passport, Form 7 as the sum of
accepted Form 2s, the campaign's workflow and its refusals, on the real database."""

from __future__ import annotations

import threading
from datetime import date, datetime

import pytest
from sqlalchemy import insert, select

from tests.support import letters
from unioncard.errors import Conflict, NotFound, PermissionDenied, ValidationError
from unioncard.registry import domain as d
from unioncard.registry import services as registry
from unioncard.registry.models import Membership, Organisation, Person
from unioncard.statistics import domain as sd
from unioncard.statistics import services as stats
from unioncard.statistics.models import ReportingCampaign, StatForm

YEAR = 2025
OLD, YOUNG, PENSIONER = date(1970, 1, 1), date(1995, 1, 1), date(1950, 1, 1)
BEFORE, DURING = date(2010, 9, 1), date(YEAR, 3, 1)

# The seed's worked Form 2 («Образец заполнения таблицы»), row → (total, women, youth).
SEED_FORM2 = {
    "1": (200, 100, 10), "2": (150, 90, 5), "3": (5, 5, 3), "4": (1000, 800, 1000), "5": (900, 600, 900),
    "6": (100, 70, 100), "7": (1200, 900, 1010), "8": (1050, 690, 905), "9": (87.5, 76.7, 89.6),
    "10": (15, 10, None), "11": (20, 10, None), "12": (1085, 710, 905), "13": (1, None, None),
    "14": (2, None, None),
}


def _add_people(session, org: Organisation, groups, start: int) -> int:
    """groups: (count, category, female, birth, joined, leave_date, leave_reason)."""
    people, memberships = [], []
    number = start
    for count, category, female, birth, joined, left, reason in groups:
        for _ in range(count):
            number += 1
            surname = f"Член{'а' if female else ''}{letters(number).lower()}"
            people.append(dict(id=number, surname=surname, given_name="Имя", patronymic=None, birth_date=birth,
                               sex="female" if female else "male", identity_key=f"{surname}|{number}",
                               created_at=datetime(2020, 1, 1)))
            memberships.append(dict(person_id=number, organisation_id=org.id, org_path=org.path,
                                    sort_name=surname.lower(), category=category, join_date=joined,
                                    leave_date=left, leave_reason=reason, is_active=left is None))
    session.execute(insert(Person), people)
    session.execute(insert(Membership), memberships)
    return number


@pytest.fixture
def seed_org(make_uow, system, tree):
    """A joint primary organisation of a university whose registry and passport are the seed's example."""
    with make_uow() as uow:
        org = registry.create_organisation(uow, system, code="23-01-900", name="Объединённая ППО университета",
                                           level="primary", parent_id=tree.territorial_a, kind="joint")
        uow.commit()
    with make_uow() as uow:
        session = uow.session
        org = session.get(Organisation, org.id)
        w, s = "working", "student"
        last = _add_people(session, org, [
            # working: 150 on 31.12, 90 women, 5 young; 5 admitted this year (all women, 3 young)
            (3, w, True, YOUNG, DURING, None, None), (2, w, True, OLD, DURING, None, None),
            (2, w, False, YOUNG, BEFORE, None, None), (85, w, True, OLD, BEFORE, None, None),
            (57, w, False, OLD, BEFORE, None, None),
            # students: 900, 600 women, all young; 100 admitted this year (70 women)
            (70, s, True, YOUNG, DURING, None, None), (30, s, False, YOUNG, DURING, None, None),
            (530, s, True, YOUNG, BEFORE, None, None), (270, s, False, YOUNG, BEFORE, None, None),
            (10, "pensioner", True, PENSIONER, BEFORE, None, None),
            (5, "pensioner", False, PENSIONER, BEFORE, None, None),
            (10, "unemployed", True, OLD, BEFORE, None, None), (10, "unemployed", False, OLD, BEFORE, None, None),
            # leavers of the year: only «own wish» and «expelled» are counted (rows 13, 14)
            (1, w, False, OLD, BEFORE, date(YEAR, 5, 1), d.LeaveReason.OWN_WISH),
            (2, w, False, OLD, BEFORE, date(YEAR, 6, 1), d.LeaveReason.EXPELLED),
            (4, w, False, OLD, BEFORE, date(YEAR, 6, 1), d.LeaveReason.LEFT_JOB_OR_STUDIES),
            (1, w, False, OLD, BEFORE, date(YEAR - 1, 6, 1), d.LeaveReason.OWN_WISH),   # last year's
            (3, w, True, OLD, date(YEAR + 1, 1, 15), None, None),                      # joined after 31.12
        ], 10_000)
        # One more working member who came this year by transfer: counted in row 2, not in row 3.
        session.execute(insert(Person), [dict(id=last + 1, surname="Переведённый", given_name="Иван",
                                              birth_date=OLD, sex="male", identity_key="перевод|1",
                                              created_at=datetime(2020, 1, 1))])
        other = session.get(Organisation, tree.primary_a2)
        session.execute(insert(Membership), [
            dict(person_id=last + 1, organisation_id=other.id, org_path=other.path, sort_name="переведенный",
                 category=w, join_date=BEFORE, leave_date=date(YEAR, 2, 28),
                 leave_reason=d.LeaveReason.TRANSFERRED, is_active=False),
            dict(person_id=last + 1, organisation_id=org.id, org_path=org.path, sort_name="переведенный",
                 category=w, join_date=DURING, leave_date=None, leave_reason=None, is_active=True)])
        uow.commit()
    with make_uow() as uow:
        stats.save_passport(uow, system, org.id, {
            "institution_type": "higher", "employees_total": 200, "employees_women": 100, "employees_youth": 10,
            "students_total": 1000, "students_women": 800, "students_youth": 1000, "founded_on": "1990-09-01",
            "legal_entity": "yes", "phone": "+7 861 000-00-00"}, valid_from=date(2024, 1, 1))
        uow.commit()
    return org.id


@pytest.fixture
def campaign(make_uow, tree):
    with make_uow() as uow:
        stats.open_campaign(uow, tree.actors["admin"], YEAR, date(YEAR + 1, 12, 31))
        uow.commit()
    return YEAR


def _table(figures):
    return {row: tuple(figures.get((row, c)) for c in sd.FORM2_COLUMNS) for row in SEED_FORM2}


def test_form2_equals_the_seeds_worked_example_row_for_row(session_factory, tree, seed_org, campaign):
    with session_factory() as session:
        view = stats.view_form(session, tree.actors["admin"], YEAR, seed_org)
    got = _table(view.figures)
    assert got == SEED_FORM2, {row: (got[row], SEED_FORM2[row]) for row in SEED_FORM2 if got[row] != SEED_FORM2[row]}
    assert view.findings == []
    assert view.on == date(YEAR, 12, 31)


def test_form2_is_shown_as_a_number_table_not_a_stub(session_factory, tree, seed_org, campaign):
    # The same organisation a year later: its joiners of 2025 are no longer «first time» in 2026.
    with session_factory() as session:
        counts = stats.member_counts(session, session.get(Organisation, seed_org).path, YEAR + 1,
                                     date(YEAR + 1, 12, 31))[seed_org]
    assert counts.count("working", first_time_only=True) == 3          # the three who joined in January 2026
    assert counts.count("working") == 153


def test_corrections_keep_their_reason_and_checks_name_the_rows(make_uow, session_factory, tree, seed_org, campaign):
    admin = tree.actors["admin"]
    with make_uow() as uow:
        with pytest.raises(ValidationError) as missing:
            stats.correct(uow, admin, YEAR, seed_org, "2", "total", "250", "", 0)
        assert missing.value.code == "correction_reason_missing"
    with make_uow() as uow:
        with pytest.raises(ValidationError) as derived:
            stats.correct(uow, admin, YEAR, seed_org, "12", "total", "5", "так", 0)
        assert derived.value.code == "form_row_derived"
    with make_uow() as uow:
        stats.correct(uow, admin, YEAR, seed_org, "2", "total", "250", "совместители посчитаны вручную", 0)
        uow.commit()
    with session_factory() as session:
        view = stats.view_form(session, admin, YEAR, seed_org)
    assert view.figures[("2", "total")] == 250
    assert view.figures[("8", "total")] == 1150 and view.figures[("12", "total")] == 1185   # derived rows follow
    correction = view.corrections[("2", "total")]
    assert (correction.registry_value, correction.value, correction.reason) == (150, 250,
                                                                                "совместители посчитаны вручную")
    codes = {f.code for f in view.findings}
    assert "row2_over_row1_total" in codes            # 250 members among 200 employees
    assert [f.params for f in view.findings if f.code == "row2_over_row1_total"] == [
        {"part": "2", "whole": "1", "column": "in total"}]
    # Submission is refused until the contradiction is fixed or explained, and the form stays a draft.
    with make_uow() as uow:
        with pytest.raises(ValidationError) as refused:
            stats.submit(uow, admin, YEAR, seed_org, view.version)
        assert refused.value.code == "form_checks_failed"
    with make_uow() as uow:
        stats.explain(uow, admin, YEAR, seed_org, "row2_over_row1_total", "В штате 250 с совместителями",
                      view.version)
        uow.commit()
    with session_factory() as session:
        view = stats.view_form(session, admin, YEAR, seed_org)
    assert view.blocking == []
    with make_uow() as uow:
        stats.submit(uow, admin, YEAR, seed_org, view.version)
        uow.commit()
    # Accepted forms are locked; a change needs a return.
    with session_factory() as session:
        view = stats.view_form(session, admin, YEAR, seed_org)
    with make_uow() as uow:
        stats.accept(uow, tree.actors["region_a"], YEAR, seed_org, view.version)
        uow.commit()
    with make_uow() as uow:
        with pytest.raises(Conflict) as locked:
            stats.correct(uow, admin, YEAR, seed_org, "2", "total", "150", "назад", 0)
        assert locked.value.code == "form_locked"


def test_a_passport_below_the_registry_is_refused(make_uow, tree, seed_org):
    with make_uow() as uow:
        with pytest.raises(ValidationError) as below:
            stats.save_passport(uow, tree.actors["admin"], seed_org, {"employees_total": 100})
        assert below.value.code == "passport_below_members" and below.value.params["members"] == 153
    with make_uow() as uow:
        with pytest.raises(ValidationError) as part:
            stats.save_passport(uow, tree.actors["admin"], seed_org, {"employees_total": 300, "employees_women": 301})
        assert part.value.code == "passport_part_over_total"


def _submit_and_accept(make_uow, session_factory, filler, reviewer, organisation_id):
    with session_factory() as session:
        view = stats.view_form(session, filler, YEAR, organisation_id)
    for finding in view.blocking:
        with make_uow() as uow:
            stats.explain(uow, filler, YEAR, organisation_id, finding.code, "пояснение", 0)
            uow.commit()
    with session_factory() as session:
        version = stats.view_form(session, filler, YEAR, organisation_id).version
    with make_uow() as uow:
        stats.submit(uow, filler, YEAR, organisation_id, version)
        uow.commit()
    with session_factory() as session:
        view = stats.view_form(session, reviewer, YEAR, organisation_id)
    with make_uow() as uow:
        stats.accept(uow, reviewer, YEAR, organisation_id, view.version)
        uow.commit()


def test_form7_of_a_territorial_organisation_is_the_sum_of_its_accepted_form2s(
        make_uow, session_factory, tree, seed_org, campaign):
    admin, region = tree.actors["admin"], tree.actors["region_a"]
    with make_uow() as uow:
        stats.save_passport(uow, admin, tree.primary_a, {
            "institution_type": "school", "employees_total": 40, "employees_women": 30, "employees_youth": 5,
            "founded_on": f"{YEAR}-02-01", "legal_entity": "no", "phone": "89001234567"})
        uow.commit()
    with session_factory() as session:
        before = stats.view_form(session, region, YEAR, tree.territorial_a)
    assert before.figures[("1", "all")] == 0 and before.below[sd.FormStatus.NOT_STARTED] == 3
    assert "form7_not_all_accepted" in {f.code for f in before.findings}
    form2s = {}
    for org_id in (seed_org, tree.primary_a):
        filler = tree.actors["chair_a"] if org_id == tree.primary_a else admin
        _submit_and_accept(make_uow, session_factory, filler, region, org_id)
        with session_factory() as session:
            form2s[org_id] = stats.view_form(session, admin, YEAR, org_id).figures
    with session_factory() as session:
        view = stats.view_form(session, region, YEAR, tree.territorial_a)
    seed, school = form2s[seed_org], form2s[tree.primary_a]
    f7 = view.figures
    # Each Form 2 lands in its institution type's column; column 6 is their sum; 7 and 8 carry women, youth.
    assert f7[("3", "higher")] == seed[("1", "total")] == 200
    assert f7[("3", "enterprises")] == school[("1", "total")] == 40
    assert f7[("3", "all")] == 240 and f7[("5", "higher")] == 1000 and f7[("5", "all")] == 1000
    for row7, row2 in sd.FORM7_FROM_FORM2.items():
        assert f7[(row7, "all")] == (seed.get((row2, "total")) or 0) + (school.get((row2, "total")) or 0), row7
        if (row7, "women") not in sd.FORM7_NOT_APPLICABLE:
            assert f7[(row7, "women")] == (seed.get((row2, "women")) or 0) + (school.get((row2, "women")) or 0)
    assert f7[("1", "all")] == 2 and f7[("1", "higher")] == 1 and f7[("1", "enterprises")] == 1
    assert f7[("2", "all")] == 1                       # the school's organisation was created this year
    assert f7[("1.1", "all")] == 1                     # 2 members among 40 employees: under half
    assert f7[("9", "all")] == round(100 * f7[("8", "all")] / f7[("7", "all")], 1)
    assert not [f for f in sd.check_form7(f7) if not f.explainable]
    assert view.below[sd.FormStatus.ACCEPTED] == 2 and view.below[sd.FormStatus.NOT_STARTED] == 1
    # Table III: the chairpersons' positions count where the seed says.
    # Table III: the two schools' chairpersons appointed in the registry; the university has none yet.
    assert view.table3[("1", "total")] == 2 and view.table3[("1.4", "total")] == 2
    assert "table3_chairpersons" not in {f.code for f in view.findings}


def test_table3_counts_positions_in_the_seeds_rows(make_uow, session_factory, tree, seed_org, campaign):
    admin = tree.actors["admin"]
    with session_factory() as session:
        ivanov = session.get(Membership, tree.members["ivanov"]).person_id
        anna = session.get(Membership, tree.members["shchyolokova"]).person_id
    with make_uow() as uow:
        stats.add_position(uow, admin, tree.primary_a, ivanov, "chairperson", date(2024, 1, 1), is_paid=True)
        stats.add_position(uow, admin, tree.primary_a, anna, "committee", date(2024, 1, 1))
        stats.add_position(uow, admin, tree.territorial_a, anna, "staff", date(2024, 1, 1), is_paid=True)
        uow.commit()
    with make_uow() as uow:
        with pytest.raises(Conflict):
            stats.add_position(uow, admin, tree.primary_a, anna, "committee", date(2025, 1, 1))
    with make_uow() as uow:
        chair_position = stats.positions(uow.session, admin, tree.primary_a)[0]
        with pytest.raises(NotFound):   # a position asked for under another organisation's address
            stats.end_position(uow, admin, chair_position.id, date(2030, 1, 1), tree.primary_a2)
    with make_uow() as uow:
        with pytest.raises(NotFound):   # another region's member, by id
            stats.add_position(uow, tree.actors["region_b"], tree.primary_b, ivanov, "committee", date(2024, 1, 1))
    with session_factory() as session:
        view = stats.view_form(session, admin, YEAR, tree.territorial_a)
    t3 = view.table3
    # Иванов's recorded position (paid) stands for his term; Петров's term counts as it is.
    assert (t3[("1", "total")], t3[("1", "paid")], t3[("1.1", "total")], t3[("1.4", "total")]) == (2, 1, 2, 2)
    assert (t3[("2", "total")], t3[("2", "women")], t3[("11", "total")], t3[("11", "paid")]) == (1, 1, 1, 1)


def test_scope_a_year_without_campaign_and_who_may_decide(make_uow, session_factory, tree, seed_org, campaign):
    with session_factory() as session:
        with pytest.raises(NotFound):
            stats.view_form(session, tree.actors["region_b"], YEAR, seed_org)       # another region: 404
        with pytest.raises(NotFound):
            stats.view_form(session, tree.actors["chair_a2"], YEAR, tree.primary_a)  # a neighbour: 404
        with pytest.raises(NotFound) as no_year:
            stats.view_form(session, tree.actors["admin"], 2019, seed_org)
        assert no_year.value.code == "campaign_not_found"
    with make_uow() as uow:
        with pytest.raises(PermissionDenied):   # the region accepts a school's form; it does not fill it
            stats.correct(uow, tree.actors["region_a"], YEAR, tree.primary_a, "2", "total", "5", "так", 0)
    with make_uow() as uow:
        with pytest.raises(PermissionDenied):   # a chairperson does not accept their own form
            stats.accept(uow, tree.actors["chair_a"], YEAR, tree.primary_a, 1)
    with make_uow() as uow:
        with pytest.raises(PermissionDenied):
            stats.open_campaign(uow, tree.actors["region_a"], 2024, date(2025, 2, 1))
    with make_uow() as uow:
        with pytest.raises(Conflict):
            stats.open_campaign(uow, tree.actors["admin"], YEAR, date(YEAR + 1, 2, 1))


def test_two_people_submitting_at_once_one_wins(make_uow, session_factory, engine, tree, seed_org, campaign):
    admin = tree.actors["admin"]
    with make_uow() as uow:
        stats.explain(uow, admin, YEAR, seed_org, "nothing", "", 0)   # makes the draft
        uow.commit()
    with session_factory() as session:
        version = stats.view_form(session, admin, YEAR, seed_org).version
    outcomes, barrier = [], threading.Barrier(2)

    def attempt():
        try:
            with make_uow() as uow:
                barrier.wait()
                stats.submit(uow, admin, YEAR, seed_org, version)
                uow.commit()
            outcomes.append("submitted")
        except Conflict as error:
            outcomes.append(error.code)
        except Exception as error:  # SQLite's writer lock: the loser is told in its own words
            outcomes.append(type(error).__name__)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("submitted") == 1, outcomes
    with session_factory() as session:
        form = session.scalar(select(StatForm).where(StatForm.organisation_id == seed_org))
        assert form.status == "submitted" and form.version == version + 1


def test_return_unlocks_and_the_dashboard_counts(make_uow, session_factory, tree, seed_org, campaign):
    admin, region = tree.actors["admin"], tree.actors["region_a"]
    _submit_and_accept(make_uow, session_factory, admin, region, seed_org)
    with session_factory() as session:
        version = stats.view_form(session, region, YEAR, seed_org).version
    with make_uow() as uow:
        with pytest.raises(ValidationError):
            stats.return_form(uow, region, YEAR, seed_org, version, "  ")
    with make_uow() as uow:
        stats.return_form(uow, region, YEAR, seed_org, version, "Проверьте строку 13")
        uow.commit()
    with make_uow() as uow:
        assert stats.remind(uow, region, YEAR) == 4      # territorial, two schools, the returned one
        uow.session.get(ReportingCampaign, 1).deadline = date(YEAR + 1, 2, 1)   # and then the deadline passed
        uow.commit()
    with session_factory() as session:
        campaign_row, counts, overdue, lines, *_ = stats.dashboard(session, region, YEAR)
        # A reminder does not start a form: who never opened theirs stays «не начата».
        assert counts["returned"] == 1 and counts["not_started"] == 3 and counts["draft"] == 0
        assert overdue == 4                               # the deadline (1.02.2026) has passed
        task, = stats.own_tasks(session, tree.actors["chair_a"])
        assert task.reminded and task.overdue and task.status == "not_started"
        history = [e.action for e in stats.form_history(session, region, YEAR, seed_org)]
    assert history[:3] == ["form.return", "form.accept", "form.submit"]
