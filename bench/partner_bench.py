"""Partner verification under load: the demo union at scale 1 (1 094 481 members, 830 494 issued
cards) on PostgreSQL, the app under gunicorn, wrk on loopback posting a mix of queries to
/api/v1/partner/verify for 30 s. Goal on the 2-core machine: ≥ 1 000 requests/s, p99 ≤ 50 ms.

    .venv/bin/python bench/partner_bench.py [--scale 1.0] [--workers 3] [--connections 16]
                                            [--seconds 30] [--limiter memory|redis]

The mix: 70 % a real card with its holder's surname (varied in case and ё/е), 15 % a real card
with another surname, 15 % an unknown number with a right check digit. Every answered query
writes its log row, which the script counts afterwards. Needs wrk (Debian package wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchkit import add_database_arguments, demo_union, report, scratch_database
from sqlalchemy import func, select

from unioncard import db
from unioncard.issuer import cardnumber
from unioncard.issuer.models import Card
from unioncard.partner import services as partners
from unioncard.partner.models import PartnerQuery
from unioncard.registry.actor import Actor
from unioncard.registry.models import Person

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_bodies(sessions, count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    with sessions() as session:
        rows = session.execute(
            select(Card.number, Person.surname).join(Person, Person.id == Card.person_id)
            .where(Card.status == "issued").order_by(func.random()).limit(count)).all()
    bodies = []
    for number, surname in rows:
        roll = rng.random()
        if roll < 0.70:
            shown = rng.choice([surname, surname.upper(), surname.lower().replace("ё", "е"), f"  {surname} "])
            bodies.append({"card_number": cardnumber.format(number), "surname": shown})
        elif roll < 0.85:
            bodies.append({"card_number": number, "surname": surname + "ов"})
        else:
            body = number[:6] + f"{rng.randrange(10 ** 9):09d}"
            bodies.append({"card_number": body + cardnumber.calc_check_digit(body), "surname": surname})
    return [json.dumps(b, ensure_ascii=False) for b in bodies]


def lua_script(path: Path, key: str, bodies: list[str]) -> None:
    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["bodies = {", *(quote(b) + "," for b in bodies), "}",
             "counter = 0",
             f'headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {key}"}}',
             "request = function()",
             "  counter = counter + 1",
             "  return wrk.format('POST', '/api/v1/partner/verify', headers, bodies[(counter % #bodies) + 1])",
             "end"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def parse_wrk(text: str) -> dict:
    def seconds(value: str, unit: str) -> float:
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]

    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
               "requests": int(re.search(r"(\d+) requests in", text).group(1))}
    for name in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        figures[f"p{name}"] = seconds(*match.groups())
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    figures["non_2xx"] = int(bad.group(1)) if bad else 0
    errors = re.search(r"Socket errors: (.*)", text)
    figures["socket_errors"] = errors.group(1) if errors else "none"
    return figures


def serve_and_load(app_spec: list[str], env: dict, cwd: Path, args, work: Path, ready_path: str,
                   after_warm_up=None) -> dict:
    """gunicorn with the bench's settings serving ``app_spec``; a 5 s warm-up, then the timed wrk run."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-w", str(args.workers), "--threads", str(args.threads),
         "-b", f"127.0.0.1:{port}", "--log-level", "warning", *app_spec], env=env, cwd=cwd, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("gunicorn did not start")
                time.sleep(0.3)
        base = f"http://127.0.0.1:{port}"
        subprocess.run(["wrk", "-t2", f"-c{args.connections}", "-d5s", "-s", str(work / "verify.lua"), base],
                       check=True, capture_output=True)  # warm-up: connections, caches, plans
        if after_warm_up:
            after_warm_up()
        run = subprocess.run(["wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds}s", "--latency",
                              "-s", str(work / "verify.lua"), base], check=True, capture_output=True, text=True)
        return parse_wrk(run.stdout)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="gunicorn threads per worker (more than 1: the gthread worker), for both apps")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--limiter", choices=["memory", "redis"], default="redis")
    add_database_arguments(parser)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    with scratch_database(args) as url:
        engine = db.make_engine(url)
        demo_union(engine, args)
        sessions = db.make_session_factory(engine)
        with db.UnitOfWork(sessions) as uow:
            _key, key = partners.create_key(uow.session, Actor.system("bench"), "Нагрузочный партнёр", "general",
                                            partners.MAX_PER_MINUTE)
            uow.commit()
        work = Path(tempfile.mkdtemp(prefix="unioncard-partner-bench-"))
        bodies = request_bodies(sessions, 20_000)
        lua_script(work / "verify.lua", key, bodies)
        env = dict(os.environ, UNIONCARD_DATABASE_URL=url, UNIONCARD_INSTANCE_DIR=str(work / "instance"),
                   UNIONCARD_SECRET_KEY="bench",
                   UNIONCARD_RATE_LIMIT_STORAGE="redis://127.0.0.1:6379/14" if args.limiter == "redis" else "memory://")
        # The peer first, in the same run with the same gunicorn settings and the same wrk load.
        bare = serve_and_load(["bare_flask_app:app"], env, Path(__file__).parent, args, work, "/")
        with sessions() as session:
            before = session.scalar(select(func.count()).select_from(PartnerQuery))
        warm_counted = []

        def after_warm_up():
            with sessions() as session:
                warm_counted.append(session.scalar(select(func.count()).select_from(PartnerQuery)) - before)

        figures = serve_and_load(["unioncard.checkin_web:create_app()"], env, ROOT, args, work, "/api/v1/openapi.json",
                                 after_warm_up=after_warm_up)
        with sessions() as session:
            logged = session.scalar(select(func.count()).select_from(PartnerQuery)) - before - warm_counted[0]
            outcomes = dict(session.execute(select(PartnerQuery.outcome, func.count())
                                            .group_by(PartnerQuery.outcome)).all())
        report("gunicorn workers × threads / wrk connections / limiter",
               f"{args.workers} × {args.threads} / {args.connections} / {args.limiter}")
        report("requests in the timed run", f"{figures['requests']:,}", f"{args.seconds} s")
        report("throughput", f"{figures['rps']:,.0f} req/s",
               f"bare Flask endpoint, same gunicorn, same run: {bare['rps']:,.0f} req/s")
        report("ratio to the bare Flask endpoint", f"{figures['rps'] / bare['rps']:.2f}", "goal ≥ 0.50")
        report("latency p50 / p90", f"{figures['p50'] * 1000:.1f} / {figures['p90'] * 1000:.1f} ms",
               f"bare: {bare['p50'] * 1000:.1f} / {bare['p90'] * 1000:.1f} ms")
        report("latency p99", f"{figures['p99'] * 1000:.1f} ms", f"goal ≤ 20 ms; bare: {bare['p99'] * 1000:.1f} ms")
        report("non-200 answers / socket errors", f"{figures['non_2xx']} / {figures['socket_errors']}")
        report("log rows written in the timed run", f"{logged:,}", "= requests answered")
        report("outcomes (all runs)", ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
