"""Form 7 for the whole union (goal ≤ 5 s on PostgreSQL) at the union's scale: the demo union at
scale 1 (1 094 481 members in ~24 000 primary organisations), every primary organisation with a
passport and an accepted Form 2 made from the registry, then the central organisation's Form 7.

Printed beside each figure, its peer in the same run: PostgreSQL summing the same stored figures
in one plain GROUP BY (the least any consolidation must cost), and counting the same memberships.

    .venv/bin/python bench/statistics_bench.py [--scale 1.0] [--database postgresql|sqlite]
"""

from __future__ import annotations

import argparse
import time
from datetime import date, datetime

from benchkit import add_database_arguments, demo_union, report, scratch_database
from sqlalchemy import func, insert, select, text

from unioncard import clock, db
from unioncard.registry import domain as d
from unioncard.registry.actor import Actor
from unioncard.registry.models import Membership, Organisation
from unioncard.statistics import domain as sd
from unioncard.statistics import services as stats
from unioncard.statistics.models import OrganisationPassport, ReportingCampaign, StatForm, StatFormValue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    add_database_arguments(parser)
    args = parser.parse_args()
    with scratch_database(args) as url:
        engine = db.make_engine(url)
        result = demo_union(engine, args)
        sessions = db.make_session_factory(engine)
        admin = Actor.system("bench")
        today = clock.today()
        year = today.year
        on = sd.report_date(year, today)
        with sessions() as session:
            started = time.perf_counter()
            counts = stats.member_counts(session, "/", year, on)
            counted = time.perf_counter() - started
            started = time.perf_counter()
            session.scalar(select(func.count()).select_from(Membership).where(
                Membership.join_date <= on, Membership.leave_date.is_(None)))
            peer = time.perf_counter() - started
        report(f"Form 2 figures of all {len(counts):,} primaries", f"{counted:.2f} s",
               f"peer: count(*) of the same members {peer:.2f} s (×{counted / peer:.1f})")
        started = time.perf_counter()
        forms = _accept_everything(engine, sessions, counts, year, on)
        report("passports, forms and figures written (setup)", f"{forms:,} forms",
               f"{time.perf_counter() - started:.0f} s")
        with sessions() as session:
            central = session.scalar(select(Organisation.id).where(Organisation.level == d.Level.CENTRAL))
            times = []
            for _ in range(3):
                started = time.perf_counter()
                view = stats.view_form(session, admin, year, central)
                times.append(time.perf_counter() - started)
            peers = []
            for _ in range(3):
                started = time.perf_counter()
                session.execute(select(StatFormValue.row, StatFormValue.col, func.sum(StatFormValue.value))
                                .group_by(StatFormValue.row, StatFormValue.col)).all()
                peers.append(time.perf_counter() - started)
        report("Form 7 of the whole union (best of 3)", f"{min(times):.2f} s",
               f"goal ≤ 5 s; peer: plain SUM … GROUP BY {min(peers):.2f} s (×{min(times) / min(peers):.1f})")
        f7 = view.figures
        report("Form 7: organisations / members in total (row 12)",
               f"{f7[('1', sd.ALL)]:,} / {f7[('12', sd.ALL)]:,}", f"registry: {result.members:,} members")
        report("Form 7 checks failing (sums)", str(len([f for f in view.findings if not f.explainable])), "goal 0")
        engine.dispose()


def _accept_everything(engine, sessions, counts, year: int, on: date) -> int:
    """Each primary organisation gets a passport (its registry's working and student members over
    an 80 % and 90 % coverage) and an accepted Form 2 of its registry figures, in bulk."""
    now = datetime.now()
    with engine.begin() as conn:
        campaign_id = conn.execute(insert(ReportingCampaign).values(
            year=year, deadline=date(year + 1, 2, 1), opened_at=now).returning(ReportingCampaign.id)).scalar()
        primaries = conn.execute(select(Organisation.id, Organisation.path, Organisation.kind).where(
            Organisation.level == d.Level.PRIMARY)).all()
        passports, form_rows, figures_of = [], [], {}
        for organisation_id, path, kind in primaries:
            member_counts = counts.get(organisation_id, sd.MemberCounts())
            working = member_counts.count("working")
            students = member_counts.count("student")
            head = sd.Headcount(
                (round(working / 0.8), round(member_counts.count("working", column=sd.WOMEN) / 0.8),
                 round(member_counts.count("working", column=sd.YOUTH) / 0.8)),
                (round(students / 0.9), round(member_counts.count("student", column=sd.WOMEN) / 0.9),
                 round(member_counts.count("student", column=sd.YOUTH) / 0.9)))
            passports.append(dict(organisation_id=organisation_id, valid_from=date(year, 1, 1),
                                  institution_type="higher" if kind == d.OrgKind.STUDENTS else "school",
                                  employees_total=head.employees[0], employees_women=head.employees[1],
                                  employees_youth=head.employees[2], students_total=head.students[0],
                                  students_women=head.students[1], students_youth=head.students[2],
                                  founded_on=date(1990, 9, 1), legal_entity=False, phone="+78000000000",
                                  recorded_at=now))
            figures = sd.complete_form2(sd.registry_figures(member_counts, head))
            figures_of[organisation_id] = figures
            form_rows.append(dict(campaign_id=campaign_id, organisation_id=organisation_id, org_path=path,
                                  form="form2", status=sd.FormStatus.ACCEPTED, version=3,
                                  institution_type="higher" if kind == d.OrgKind.STUDENTS else "school",
                                  students_organisation=kind == d.OrgKind.STUDENTS, created_this_year=False,
                                  members_under_half=sd.members_under_half(figures), created_at=now,
                                  updated_at=now, submitted_at=now, decided_at=now))
        for chunk in db.chunked(passports, 5000):
            conn.execute(insert(OrganisationPassport), chunk)
        for chunk in db.chunked(form_rows, 5000):
            conn.execute(insert(StatForm), chunk)
        ids = dict(conn.execute(select(StatForm.organisation_id, StatForm.id)).all())
        values = [dict(form_id=ids[oid], row=row, col=col, value=value)
                  for oid, figures in figures_of.items() for (row, col), value in figures.items()
                  if value is not None and row != "9"]
        for chunk in db.chunked(values, 20000):
            conn.execute(insert(StatFormValue), chunk)
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
    return len(form_rows)


if __name__ == "__main__":
    main()
