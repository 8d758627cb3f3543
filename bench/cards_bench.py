"""Card benchmark: number assignment in-process, and ordering + approving 10 000 cards on PostgreSQL.

    .venv/bin/python bench/cards_bench.py                 # PostgreSQL on 127.0.0.1
    .venv/bin/python bench/cards_bench.py --database sqlite

Works in its own throw-away database. Goals (issue 4): number assignment ≥ 50 000/s in-process;
creating and approving 10 000 orders ≤ 10 s on PostgreSQL.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchkit import add_database_arguments, one_primary_with_members, report, scratch_database

from unioncard import db
from unioncard.issuer import services as cards
from unioncard.registry import domain as d
from unioncard.registry.actor import Actor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_database_arguments(parser)
    parser.add_argument("--orders", type=int, default=10_000)
    args = parser.parse_args()
    with scratch_database(args) as url:
        engine = db.make_engine(url)
        sessions = db.make_session_factory(engine)

        with db.UnitOfWork(sessions) as uow:
            started = time.perf_counter()
            numbers = cards.assign_numbers(uow.session, "23", 200_000)
            elapsed = time.perf_counter() - started
            uow.commit()
        report("assign 200 000 numbers in one reservation", f"{len(numbers) / elapsed:,.0f}/s".replace(",", " "),
               "goal ≥ 50 000/s")
        started = time.perf_counter()
        total = 0
        for _ in range(200):
            with db.UnitOfWork(sessions) as uow:
                total += len(cards.assign_numbers(uow.session, "24", 500))
                uow.commit()
        elapsed = time.perf_counter() - started
        report("assign 100 000 numbers, 500 per transaction", f"{total / elapsed:,.0f}/s".replace(",", " "))

        region, primary, membership_ids = one_primary_with_members(sessions, args.orders)
        chair = Actor(user_id=None, login="bench-chair", role=d.Role.CHAIRPERSON, scope_path=primary.path,
                      organisation_id=primary.id)
        regional = Actor(user_id=None, login="bench-region", role=d.Role.REGIONAL_STAFF, scope_path=region.path,
                         organisation_id=region.id)
        started = time.perf_counter()
        with db.UnitOfWork(sessions) as uow:
            result = cards.order_cards(uow, chair, membership_ids)
            uow.commit()
        ordered_at = time.perf_counter()
        with db.UnitOfWork(sessions) as uow:
            cards.approve(uow, regional, [c.id for c in result.ordered])
            uow.commit()
        done = time.perf_counter()
        report(f"order {len(result.ordered)} cards (one request)", f"{ordered_at - started:.1f} s")
        report(f"approve {len(result.ordered)} cards, numbers assigned", f"{done - ordered_at:.1f} s")
        report("order + approve", f"{done - started:.1f} s", "goal ≤ 10 s")
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
