#!/usr/bin/env python3
"""Benchmark the HTML report on a whole market: its size and how long `nepse-etl --report-only` takes.

Builds an output directory as a whole-market backfill would leave it, without the hours of fetching:
600 active companies of the simulator's company list (sectors, kinds, statuses) and ten years of daily
prices for each (see build_database); a run report and an event record of a run of that size (one
request event per call at the host budget, with retries, two throttle halvings and a few failed
companies). Then runs the real command twice, as a subprocess: once
with an empty Vega-bundle cache, once with the cache filled, and prints the figures for
docs/benchmarks.md.

    python scripts/bench_report.py                      # 600 companies, ten years
    python scripts/bench_report.py --companies 100 --years 2 --keep /tmp/report-bench
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from etl.datatypes.prices import PRICES  # noqa: E402
from etl.datatypes.securities import SECURITIES, active_companies  # noqa: E402
from etl.eventlog import events_path  # noqa: E402
from etl.load import ensure_quarantine_table, ensure_table, open_database, upsert_sql  # noqa: E402
from etl.simulator import SimData  # noqa: E402

RUN_ID = "20260101T000000Z-bench0"
TYPES = ("prices", "reports", "dividends", "profiles")


def build_database(output: Path, companies: int, years: int, seed: int) -> tuple[int, int]:
    """(active companies, price rows) written into output/nepse.db.

    The simulator's company list (sectors, instrument types, statuses) for the first ``companies`` active
    securities; their prices over ``years`` years of weekdays, drawn here rather than by the simulator,
    whose history is shorter: an equity trades on 97 % of days, a debenture or fund on 15 %; one in ten
    companies lists during the window; one in twenty has a month missing.
    """
    data = SimData(seed, n_companies=max(companies * 2, 100))
    connection = open_database(output / "nepse.db")
    for data_type in (SECURITIES, PRICES):
        ensure_table(connection, data_type)
    ensure_quarantine_table(connection)
    securities = SECURITIES.parse(data.companies(), None)  # type: ignore[arg-type]
    kinds = {row["symbol"]: row.get("instrument_type") for row in securities}
    active = active_companies(securities)[:companies]
    chosen = {company.symbol for company in active}
    end = datetime.date.today()
    days = [end - datetime.timedelta(days=n) for n in range(365 * years)][::-1]
    days = [day.isoformat() for day in days if day.weekday() not in (4, 5)]  # NEPSE trades Sunday to Thursday
    rng = random.Random(seed)
    connection.execute("BEGIN")
    connection.executemany(upsert_sql(SECURITIES), [[row.get(c) for c in SECURITIES.columns] for row in securities
                                                    if row["symbol"] in chosen])
    rows = 0
    for company in active:
        odds = 0.97 if kinds.get(company.symbol) == "Equity" else 0.15
        first = rng.randrange(len(days)) if rng.random() < 0.1 else 0
        gap = days[rng.randrange(len(days))][:7] if rng.random() < 0.05 else None
        batch = [(company.symbol, day, 100.0, 101.0, 99.0, 1000.0, 100000.0, 10, company.security_id)
                 for day in days[first:] if rng.random() < odds and day[:7] != gap]
        connection.executemany("INSERT INTO prices (symbol, business_date, close, high, low, volume, turnover, "
                               "trades, security_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
        rows += len(batch)
    connection.execute("COMMIT")
    connection.close()
    return len(active), rows


def write_run(output: Path, companies: int, years: int, budget: float = 5.0) -> int:
    """A run report and its event record for a whole-market run; returns the number of request events."""
    rng = random.Random(1)
    price_pages = max(1, round(years * 250 / 500))
    calls = {"prices": companies * price_pages, "reports": companies, "dividends": companies, "profiles": companies}
    queue = [name for name, count in calls.items() for _ in range(count)]
    rng.shuffle(queue)
    t0 = 1_767_225_600.0
    runs = output / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    at, rate, lines = t0, budget, []
    halvings = {len(queue) // 3: budget / 2, len(queue) // 3 + 200: budget}
    for n, name in enumerate(queue):
        if n in halvings:
            old, rate = rate, halvings[n]
            lines.append({"t": at, "label": name, "event": "rate_changed", "rate": rate, "old_rate": old,
                          "reason": "host rate halved: repeated HTTP 429" if rate < old else "host rate raised"})
        lines.append({"t": at + 0.3, "label": name, "event": "request", "started": at, "seconds": 0.3,
                      "outcome": "ok"})
        if rng.random() < 0.01:
            lines.append({"t": at + 0.3, "label": name, "event": "retry", "reason": "HTTP 502", "attempt": 1})
        at += 1 / rate
    errors = [{"type": "prices", "symbol": f"X{n}", "reason": "HTTP 502", "attempts": 6} for n in range(3)]
    lines += [{"t": t0 + 100 * (n + 1), "label": "prices", "event": "company_failed", "type": "prices",
               "symbol": error["symbol"], "reason": error["reason"], "attempts": 6} for n, error in enumerate(errors)]
    with events_path(runs, RUN_ID).open("w") as stream:
        stream.writelines(json.dumps(line) + "\n" for line in sorted(lines, key=lambda item: item["t"]))
    types = {name: {"companies_ok": companies, "companies_failed": 3 if name == "prices" else 0, "requests": count,
                    "retries": 0, "errors": errors if name == "prices" else []} for name, count in calls.items()}
    report = {"run_id": RUN_ID, "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:30:00+00:00",
              "elapsed_s": at - t0, "exit_code": 1, "budget_rps": budget, "throttle_events": 1,
              "arguments": {"output": str(output), "max_rps": budget}, "types": types}
    (runs / f"{RUN_ID}.json").write_text(json.dumps(report))
    return len(queue)


def timed_report_only(output: Path, cache: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of `--report-only` as a subprocess, Python's start and imports included."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NEPSE_")}
    env["XDG_CACHE_HOME"] = str(cache)
    cpu_before = _children_cpu()
    started = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "scripts" / "backfill.py"), "--report-only", "--output", str(output)],
                   check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--companies", type=int, default=600)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, help="build the output directory here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        output = args.keep or Path(scratch) / "output"
        started = time.perf_counter()
        active, price_rows = build_database(output, args.companies, args.years, args.seed)
        requests = write_run(output, active, args.years)
        print(f"built {output}: {active} active companies, {price_rows:,} price rows, {requests:,} request events, "
              f"database {(output / 'nepse.db').stat().st_size / 1e6:.0f} MB, in {time.perf_counter() - started:.0f} s")
        cache = Path(scratch) / "cache"
        (cold, cold_cpu), (warm, warm_cpu) = timed_report_only(output, cache), timed_report_only(output, cache)
        size = (output / "report.html").stat().st_size
        print(f"report.html: {size / 1e6:.2f} MB. nepse-etl --report-only, wall (CPU) seconds: {cold:.1f} "
              f"({cold_cpu:.1f}) with an empty Vega-bundle cache, {warm:.1f} ({warm_cpu:.1f}) with it filled. "
              f"{datetime.date.today()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
