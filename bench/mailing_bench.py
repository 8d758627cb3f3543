"""Mailings and the outbox: (1) queueing a mailing to a million members against PostgreSQL's own
INSERT … SELECT of the same rows into a bare table; (2) the outbox's SMTP delivery rate against a
bare smtplib loop sending the same messages to the same local SMTP server (aiosmtpd), both in this
run. Goal (issue 16): the mailing to 1 M members queued within 60 s.

    .venv/bin/python bench/mailing_bench.py [--members 1000000] [--messages 2000]
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from benchkit import add_database_arguments, one_primary, report, scratch_database
from sqlalchemy import text

from unioncard import clock, db
from unioncard.messaging import mailings
from unioncard.messaging import services as outbox
from unioncard.messaging.senders import open_sender
from unioncard.registry.actor import Actor


def union_of(engine, sessions, members: int) -> tuple[int, str]:
    """Central → region → one primary organisation with ``members`` members, each with an e-mail
    address and consent section 3, written by SQL (the registry's own paths are measured elsewhere)."""
    region, primary = one_primary(sessions)
    region_id, region_path, primary_id, path = region.id, region.path, primary.id, primary.path
    now = clock.now()
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO person (id, surname, given_name, birth_date, email, identity_key, created_at) "
            "SELECT g, 'Членова', 'Анна', DATE '1980-01-01', 'member' || g || '@bench.example', 'k' || g, :now "
            "FROM generate_series(1, :n) g"), {"n": members, "now": now})
        conn.execute(text(
            "INSERT INTO membership (person_id, organisation_id, org_path, sort_name, category, join_date, is_active) "
            "SELECT g, :org, :path, 'членова анна ' || g, 'working', DATE '2015-09-01', true "
            "FROM generate_series(1, :n) g"), {"n": members, "org": primary_id, "path": path})
        conn.execute(text(
            "INSERT INTO consent (person_id, section, given_on, form, recorded_at) "
            "SELECT g, 'messaging', DATE '2020-01-01', 'paper', :now FROM generate_series(1, :n) g"),
            {"n": members, "now": now})
        conn.execute(text("SELECT setval(pg_get_serial_sequence('person', 'id'), :n)"), {"n": members})
        conn.execute(text("ANALYZE person; ANALYZE membership; ANALYZE consent"))
    return region_id, region_path


def bench_enqueue(url: str, members: int) -> None:
    engine = db.make_engine(url)
    sessions = db.make_session_factory(engine)
    started = time.perf_counter()
    region_id, region_path = union_of(engine, sessions, members)
    report("union written by SQL", f"{time.perf_counter() - started:.1f} s")
    actor = Actor.system("bench")
    # The peer: the same rows (the same join) into a bare table with no index, by PostgreSQL alone.
    with engine.begin() as conn:
        conn.execute(text("CREATE UNLOGGED TABLE peer_outbox (person_id int, consent_id int, address text)"))
        started = time.perf_counter()
        conn.execute(text(
            "INSERT INTO peer_outbox SELECT p.id, c.id, coalesce(p.email, p.phone) FROM membership m "
            "JOIN person p ON p.id = m.person_id JOIN consent c ON c.person_id = p.id AND c.section = 'messaging' "
            "AND c.withdrawn_on IS NULL WHERE m.is_active AND m.org_path LIKE :path"),
            {"path": region_path + "%"})
        peer = time.perf_counter() - started
    started = time.perf_counter()
    with db.UnitOfWork(sessions) as uow:
        mailing = mailings.create_mailing(uow, actor, mailings.Audience(region_id), "Новости", "Текст новости")
    ours = time.perf_counter() - started
    report("mailing queued", f"{mailing.recipients:,} members".replace(",", " "))
    report("  queue a mailing (create_mailing)", f"{ours:.1f} s", "goal ≤ 60 s for 1 M members")
    report("  peer: PostgreSQL INSERT … SELECT, bare table", f"{peer:.1f} s")
    report("  ratio ours / peer", f"{ours / peer:.1f}×")
    # As the web does it: the mailing made in the request, its messages queued by a job in steps
    # of 20 000 people, each step committed with its checkpoint (resumable after a worker dies).
    import tempfile

    from unioncard.config import Settings
    from unioncard.jobs import services as jobs

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox_message"))
    started = time.perf_counter()
    with db.UnitOfWork(sessions) as uow:
        started_mailing = mailings.start_mailing(uow, actor, mailings.Audience(region_id), "Новости", "Текст новости")
    requested = time.perf_counter() - started
    status = jobs.run(started_mailing.job_id, settings=Settings(instance_dir=Path(tempfile.mkdtemp()), database_url=url, secret_key="bench"),
                      session_factory=sessions)
    as_job = time.perf_counter() - started
    with sessions() as session:
        queued = session.get(type(started_mailing), started_mailing.id).recipients
    report("  the same as a job (web: the request, then 20 000 people a step)",
           f"{requested:.1f} s + {as_job - requested:.1f} s", f"{status}, {queued:,} queued; {as_job / peer:.1f}× the peer"
           .replace(",", " "))
    with engine.begin() as conn:  # the SMTP part measures messages of its own
        conn.execute(text("DELETE FROM outbox_message"))
    engine.dispose()


def bench_smtp(url: str, messages: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.mail_support import SmtpServer

    engine = db.make_engine(url)
    sessions = db.make_session_factory(engine)
    with SmtpServer() as smtp:
        # Peer: smtplib alone, one connection, the same kind of message.
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", smtp.port) as connection:
            for i in range(messages):
                mail = EmailMessage()
                mail["From"], mail["To"], mail["Subject"] = "bench@unioncard.invalid", f"peer{i}@bench.example", "Тест"
                mail.set_content("Текст новости")
                connection.send_message(mail)
        peer = time.perf_counter() - started
        with db.UnitOfWork(sessions) as uow:
            for i in range(messages):
                outbox.enqueue(uow.session, channel="email", address=f"out{i}@bench.example", kind="card_ready",
                               subject="Тест", body="Текст новости")
            uow.commit()
        started = time.perf_counter()
        run = outbox.deliver_due(lambda: db.UnitOfWork(sessions), {"email": lambda: open_sender(smtp.url)})
        ours = time.perf_counter() - started
        assert run.sent == messages and len(smtp.mailbox.messages) == 2 * messages, run
    report(f"SMTP delivery of {messages} messages (outbox)", f"{messages / ours:.0f} /s")
    report("  peer: bare smtplib, same server", f"{messages / peer:.0f} /s")
    report("  ratio ours / peer (time)", f"{ours / peer:.1f}×")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_database_arguments(parser)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    if args.database != "postgresql":
        parser.error("the mailing bench writes its union by PostgreSQL's generate_series: --database postgresql")
    with scratch_database(args) as url:
        bench_enqueue(url, args.members)
        bench_smtp(url, args.messages)


if __name__ == "__main__":
    main()
