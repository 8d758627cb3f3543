"""The congress desk (issue 18): finding a delegate by name offline on a 3 000-name roster, and
printing a badge with the delegate's mandate.

(a) by-name search in the desk's bundle: p50 / p99 over 2 000 queries of 3–7 letters typed as
    people type them (lower case, е for ё), against the same queries as a bare ``startswith`` scan
    of the pre-normalised surnames in the same run (the floor any search over that list costs);
(b) badge + mandate rendered (PDF) per delegate, and with ``--cups QUEUE[@SERVER]`` submitted
    through CUPS and waited for until the queue reports them completed.

    .venv/bin/python bench/desk_bench.py [--roster 3000] [--cups QUEUE]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from benchkit import report
from station_bench import keys, trust_bundle

from unioncard import clock
from unioncard.issuer import cardnumber
from unioncard.partner.domain import normalise_name
from unioncard.reader_station import bundle as eb
from unioncard.reader_station.domain import find_by_name
from unioncard.reader_station.printing import page_values, render
from unioncard.registry import demo_names as names


def roster(size: int, rng: random.Random) -> list[eb.RosterEntry]:
    entries = []
    for i in range(size):
        female = rng.random() < 0.7
        surname = rng.choice(names.SURNAMES_MALE)
        surname = names.feminine(surname) if female else surname
        given = rng.choice(names.GIVEN_FEMALE if female else names.GIVEN_MALE)
        patronymic = names.patronymic(rng.choice(names.PATRONYMIC_STEMS), female)
        entries.append(eb.RosterEntry(cardnumber.build(cardnumber.DEFAULT_ISSUER_PREFIX, "23", 700_000 + i),
                                      f"{surname} {given} {patronymic}", "delegate", "23",
                                      f"Первичная профсоюзная организация школы № {i % 400 + 1}", str(i)))
    return entries


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roster", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--cups", default=None, help="a CUPS queue (QUEUE or QUEUE@/path/to/socket)")
    parser.add_argument("--prints", type=int, default=20)
    args = parser.parse_args()
    rng = random.Random(18)
    with tempfile.TemporaryDirectory() as folder:
        stores = keys(Path(folder))
        entries = roster(args.roster, rng)
        info = eb.EventInfo(1, "BENCH", "XI съезд Профсоюза", clock.today(), clock.today() + timedelta(days=2),
                            "Москва", "roster")
        now = clock.now()
        data = eb.build(stores.operational, info, version=1, issued_at=now, expires_at=now + timedelta(days=3),
                        trust_bundle=trust_bundle(stores), roster=entries, revoked_numbers=[],
                        revocation_feed_version=0)
        bundle = eb.check(data, stores.root.active_key(eb.KeyRole.ROOT).public_key, now)
        report("roster on the desk", f"{len(bundle.roster):,} names")
        queries = []
        for _ in range(args.queries):
            surname = rng.choice(entries).name.split(" ")[0].lower().replace("ё", "е")
            queries.append(surname[:rng.randint(3, min(7, len(surname)))])
        started = time.perf_counter()
        find_by_name(bundle, "бенч")  # the index is built once per bundle, on the first search
        index_ms = (time.perf_counter() - started) * 1000
        timings, hits = [], 0
        for query in queries:
            started = time.perf_counter()
            found = find_by_name(bundle, query)
            timings.append((time.perf_counter() - started) * 1000)
            hits += bool(found.matches)
        surnames = [normalise_name(e.name.split(" ")[0]) for e in entries]
        bare = []
        for query in queries:
            started = time.perf_counter()
            [s for s in surnames if s.startswith(query)]
            bare.append((time.perf_counter() - started) * 1000)
        p50, p99 = statistics.median(timings), percentile(timings, 0.99)
        report("by-name index, first search", f"{index_ms:.1f} ms")
        report("by-name search p50 / p99", f"{p50:.3f} / {p99:.3f} ms", "p99 ≤ 50 ms (typing feels instant)")
        report("bare startswith scan p50 / p99 (peer)", f"{statistics.median(bare):.3f} / {percentile(bare, 0.99):.3f} ms")
        report("ratio search p99 / bare scan p99", f"×{p99 / percentile(bare, 0.99):.1f}")
        report("queries that found somebody", f"{hits} of {len(queries)}")
        entry = {"nonce": "0" * 32, "number": entries[0].number, "name": entries[0].name, "role": "delegate",
                 "at": "2026-12-04T09:00:00Z"}
        started = time.perf_counter()
        for _ in range(args.prints):
            render("badge", page_values(entry, bundle, "badge"))
            render("mandate", page_values(entry, bundle, "mandate"))
        per = (time.perf_counter() - started) * 1000 / args.prints
        report("badge + mandate rendered", f"{per:.1f} ms per delegate")
        if args.cups:
            from unioncard.hardware.printers import open_printer

            printer = open_printer(f"cups:{args.cups}")
            times = []
            for i in range(args.prints):
                started = time.perf_counter()
                for kind in ("badge", "mandate"):
                    pdf, page = render(kind, page_values(entry, bundle, kind))
                    job = printer.submit(pdf, f"bench-{kind}-{i}-{time.time_ns()}", page)
                    assert printer.wait(job, 60).ok
                times.append(time.perf_counter() - started)
            report("badge + mandate through CUPS, p50 / max", f"{statistics.median(times):.2f} / {max(times):.2f} s")


if __name__ == "__main__":
    main()
