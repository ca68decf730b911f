"""--include-promoter: listed securities the company list lacks (promoter shares) join the price backfill."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from etl.datatypes.securities import SECURITIES, active_companies, parse_security_list
from etl.settings import nepal_today
from etl.simulator import SimConfig, SimData, SimulatorProcess, create_app

SEED, COMPANIES = 3, 40


def test_the_security_list_adds_only_what_the_company_list_lacks() -> None:
    company_rows = SECURITIES.parse([{"id": 131, "symbol": "NABIL", "status": "A"},
                                     {"id": 132, "symbol": "NIMB", "status": "A"}])
    listed = [{"id": 131, "symbol": "NABIL", "securityName": "Nabil Bank", "name": "Nabil", "activeStatus": "A"},
              {"id": 900, "symbol": " NIMB ", "securityName": "x", "name": "x", "activeStatus": "A"},
              {"id": 2911, "symbol": "NIMBPO ", "securityName": "Nepal Investment Mega Bank  Promoter Share",
               "name": "Nepal Investment Mega Bank Limited", "activeStatus": "A"},
              {"id": 2950, "symbol": "OLDPO", "securityName": "Old Promoter", "name": "Old", "activeStatus": "S"}]
    rows = parse_security_list(listed, company_rows)
    assert [(row["security_id"], row["symbol"], row["source_list"]) for row in rows] == [
        (2911, "NIMBPO", "security"), (2950, "OLDPO", "security")]
    assert rows[0]["security_name"] == "Nepal Investment Mega Bank Promoter Share"
    assert {row["source_list"] for row in company_rows} == {"company"}
    assert [company.symbol for company in active_companies(rows)] == ["NIMBPO"]


def _run(run_cli, fast, simulator: SimulatorProcess, output: Path, *extra: str) -> tuple[dict, set[str]]:
    simulator.reset_stats()
    result = run_cli("--base-url", simulator.base_url, "--types", "prices,profiles", "--limit", "3",
                     "--output", str(output), *extra, *fast, cwd=output.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    symbols = {row[0] for row in sqlite3.connect(output / "nepse.db").execute("SELECT DISTINCT symbol FROM prices")}
    return simulator.stats()["per_path_kind"], symbols


def test_include_promoter_fetches_promoter_prices_and_nothing_changes_without_it(tmp_path: Path, run_cli,
                                                                                 fast) -> None:
    data = SimData(SEED, COMPANIES)
    (promoter,) = data.promoter_shares()
    with SimulatorProcess(SimConfig(seed=SEED, n_companies=COMPANIES)) as simulator:
        plain, plain_symbols = _run(run_cli, fast, simulator, tmp_path / "plain")
        promoted, promoted_symbols = _run(run_cli, fast, simulator, tmp_path / "promoted", "--include-promoter")
        asked = ("--base-url", simulator.base_url, "--symbols", promoter.symbol, "--dry-run")
        unknown = run_cli(*asked, "--output", str(tmp_path / "dry"), cwd=tmp_path)
        planned = run_cli(*asked, "--include-promoter", "--output", str(tmp_path / "dry"), cwd=tmp_path)

    assert unknown.returncode == 2 and "promoter shares need --include-promoter" in unknown.stderr
    assert planned.returncode == 0, planned.stderr
    assert "prices: 1 companies to fetch" in planned.stdout and "reports: 0 companies to fetch" in planned.stdout

    assert "security_list" not in plain and plain["prices"] == plain["profile"] == 3
    assert len(plain_symbols) == 3 and promoter.symbol not in plain_symbols
    assert promoted["security_list"] == 1
    assert (promoted["prices"], promoted["profile"]) == (4, 3)  # profiles stay per company
    assert promoted_symbols == plain_symbols | {promoter.symbol}

    db = sqlite3.connect(tmp_path / "promoted" / "nepse.db")
    until = nepal_today()
    expected = {(row["businessDate"], float(row["closePrice"]), promoter.id)
                for row in data.prices(promoter.id, until - timedelta(days=365), until)}
    stored = set(db.execute("SELECT business_date, close, security_id FROM prices WHERE symbol = ?",
                            (promoter.symbol,)))
    assert stored == expected and len(stored) > 100
    lists = dict(db.execute("SELECT source_list, COUNT(*) FROM securities GROUP BY source_list"))
    assert lists["company"] == COMPANIES and lists["security"] == 1
    assert db.execute("SELECT source_list FROM securities WHERE symbol = ?", (promoter.symbol,)).fetchone() == (
        "security",)


@contextmanager
def simulator_without_security_list() -> Iterator[str]:
    """The simulator in a thread, answering the security list with nginx's 403 (as blocked endpoints do)."""
    @web.middleware
    async def block(request: web.Request, handler):  # noqa: ANN001, ANN202
        if request.path == "/api/nots/security":
            return web.Response(status=403, text="<html>403 Forbidden</html>", content_type="text/html")
        return await handler(request)

    app = create_app(SimConfig(seed=SEED, n_companies=COMPANIES))
    app.middlewares.insert(0, block)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_a_security_list_that_cannot_be_read_is_one_clear_line(tmp_path: Path, run_cli, fast) -> None:
    with simulator_without_security_list() as url:
        result = run_cli("--base-url", url, "--types", "prices", "--limit", "2", "--include-promoter",
                         "--output", str(tmp_path / "out"), *fast, cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot get NEPSE's security list (for --include-promoter)" in result.stdout + result.stderr
    assert "Run without --include-promoter" in result.stdout + result.stderr
