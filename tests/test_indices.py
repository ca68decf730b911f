"""Index history, the fifth data type: parsing, landing exactly, resuming after a kill, daily re-runs."""

from __future__ import annotations

import datetime
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etl.datatypes import REGISTRY
from etl.datatypes.base import REJECT_REASON, Index
from etl.datatypes.indices import INDICES, index_units
from etl.simulator import SimData, SimulatorProcess
from tests.raw_prices import same_table

CHECK_DB = Path(__file__).resolve().parent.parent / "scripts" / "check_db.py"
NEPSE = Index(58, "NEPSE", "NEPSE Index")


def test_indices_are_a_default_type_over_their_own_scope() -> None:
    assert "indices" in REGISTRY
    assert INDICES.scope.name == "indices" and INDICES.scope.list_units is not None
    assert INDICES.natural_key == ("index_id", "business_date") and INDICES.incremental
    assert INDICES.columns[:9] == ["index_id", "index_code", "index_name", "business_date", "close", "high", "low",
                                   "change_pct", "turnover"]


def test_the_index_list_gives_each_index_once_and_skips_entries_without_id_or_code() -> None:
    records = [
        {"id": 58, "indexCode": " NEPSE ", "indexName": "NEPSE  Index"},
        {"id": "57", "indexCode": "SENSIND", "indexName": "Sensitive Index"},
        {"id": 58, "indexCode": "NEPSE", "indexName": "again"},
        {"id": None, "indexCode": "X"},
        {"id": 70, "indexCode": "  "},
        {"id": "abc", "indexCode": "Y"},
        "not an object",
    ]
    assert index_units(records) == [Index(58, "NEPSE", "NEPSE Index"), Index(57, "SENSIND", "Sensitive Index")]


def test_history_rows_map_the_documented_fields() -> None:
    record = {"id": 1, "businessDate": "2026-11-26", "exchangeIndexId": 58, "closingIndex": "2,650.51",
              "openIndex": 2640.0, "highIndex": 2660.2, "lowIndex": 2631.9, "fiftyTwoWeekHigh": 2900.1,
              "fiftyTwoWeekLow": 2400.5, "turnoverValue": 4.1e9, "turnoverVolume": 8000000,
              "totalTransaction": 41000, "absChange": 10.51, "percentageChange": 0.4}
    [row] = INDICES.parse([record, ], NEPSE)
    assert row == {"index_id": 58, "index_code": "NEPSE", "index_name": "NEPSE Index", "business_date": "2026-11-26",
                   "close": 2650.51, "high": 2660.2, "low": 2631.9, "change_pct": 0.4, "turnover": 4.1e9,
                   "open": 2640.0, "change": 10.51, "volume": 8000000.0, "trades": 41000,
                   "fifty_two_week_high": 2900.1, "fifty_two_week_low": 2400.5}
    [bad] = INDICES.parse([{"businessDate": "yesterday", "closingIndex": 1}], NEPSE)
    assert bad[REJECT_REASON] == ('businessDate \'yesterday\' is not a date in record '
                                  '{"businessDate": "yesterday", "closingIndex": 1}') and bad["index_code"] == "NEPSE"


def _index_day(day: str, **overrides: object) -> dict:
    record = {"businessDate": day, "closingIndex": 2650.51, "openIndex": 2640.0, "highIndex": 2660.2,
              "lowIndex": 2631.9, "fiftyTwoWeekHigh": 2900.1, "fiftyTwoWeekLow": 2400.5, "turnoverValue": 4.1e9,
              "turnoverVolume": 8000000, "totalTransaction": 41000, "absChange": 10.51, "percentageChange": 0.4}
    return {**record, **overrides}


def test_an_index_value_that_is_not_finite_is_kept_for_the_load_to_store_as_null_and_flag() -> None:
    """The real price files carry `nan` and `inf` in their percentage change: the index's day keeps its row."""
    odd = json.loads('{"percentageChange": NaN, "absChange": Infinity}')
    table = INDICES.to_table([_index_day("2026-01-05", **odd)], NEPSE, "t")
    assert table.column(REJECT_REASON).to_pylist() == [None]
    assert math.isnan(table.column("change_pct")[0].as_py()) and table.column("change")[0].as_py() == math.inf


@pytest.mark.parametrize("odd", [
    {"closingIndex": "2,650.51"}, {"highIndex": True}, {"totalTransaction": 2.5}, {"totalTransaction": 3.0},
    {"lowIndex": None}, {"businessDate": "2026-02-30"}, {"businessDate": "2026-01-05T00:00:00"},
    {"absChange": float("nan")}, {"turnoverValue": float("inf")}, {"totalTransaction": 10**20}, {"extra": 1},
])
def test_index_pages_in_columns_match_the_row_parser_whatever_a_page_holds(odd: dict) -> None:
    from etl.datatypes.base import Pages, rows_to_table
    from etl.datatypes.indices import parse_columns

    clean = [_index_day(f"2026-01-{day:02d}") for day in range(1, 11)]
    without_low = {key: value for key, value in _index_day("2026-01-21").items() if key != "lowIndex"}
    odd_page = [*clean[:3], _index_day("2026-01-20", **odd), without_low, *clean[3:5]]
    row_by_row = rows_to_table(INDICES.parse(clean + odd_page, NEPSE), INDICES, "t")
    pages = Pages(INDICES.page_converter(NEPSE)(page) for page in (clean, odd_page))
    assert parse_columns(clean, NEPSE) is not None  # the clean page took the columnar path
    missing_key = parse_columns([without_low], NEPSE)  # a key the record lacks is a null, still in columns
    assert missing_key is not None and missing_key.column("low").to_pylist() == [None]
    assert same_table(INDICES.to_table(pages, NEPSE, "t"), row_by_row)
    assert same_table(INDICES.to_table(clean + odd_page, NEPSE, "t"), row_by_row)


# ---- against the simulator


def _window(sim_data: SimData, until_days_ago: int) -> tuple[str, str]:
    since = sim_data.today - datetime.timedelta(days=150)
    return since.isoformat(), (sim_data.today - datetime.timedelta(days=until_days_ago)).isoformat()


def _expected(sim_data: SimData, since: str, until: str) -> list[tuple]:
    """The indices table as it must be: every index of the list, every served day of the window."""
    rows = []
    for entry in sim_data.index_list():
        served = sim_data.index_history(entry["id"], datetime.date.fromisoformat(since),
                                        datetime.date.fromisoformat(until))
        unit = Index(entry["id"], entry["indexCode"], entry["indexName"])
        rows += [tuple(row[column] for column in INDICES.columns) for row in INDICES.parse(served, unit)]
    return sorted(rows, key=repr)


def _args(simulator: SimulatorProcess, output: Path, since: str, until: str) -> list[str]:
    return ["--base-url", simulator.base_url, "--types", "indices", "--since", since, "--until", until,
            "--output", str(output)]


def _report(output: Path) -> dict:
    return json.loads(max((output / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns).read_text())


def test_every_index_lands_exactly(tmp_path: Path, simulator: SimulatorProcess, sim_data: SimData, run_cli, fast,
                                   table_rows) -> None:
    since, until = _window(sim_data, until_days_ago=20)
    result = run_cli(*_args(simulator, tmp_path / "out", since, until), *fast, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = _expected(sim_data, since, until)
    assert len(expected) > 17 * 80
    assert table_rows(tmp_path / "out" / "nepse.db", "indices") == expected
    report = _report(tmp_path / "out")
    assert report["types"]["indices"]["companies_ok"] == len(sim_data.index_list()) == 17
    assert list(report["types"]) == ["indices"]  # the company list was not needed, nor fetched
    assert "indices: 17 indices to fetch, 0 already complete" in result.stdout


def test_a_killed_index_run_resumes_to_the_same_table(tmp_path: Path, simulator: SimulatorProcess,
                                                       sim_data: SimData, run_cli, fast, table_rows, start_cli) -> None:
    since, until = _window(sim_data, until_days_ago=20)
    output = tmp_path / "out"
    args = _args(simulator, output, since, until) + ["--page-size", "20"]  # ~5 pages an index
    process = start_cli(*args, "--max-rps", "20", "--pacing", "0.05", cwd=tmp_path, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list((output / "raw" / "indices").glob("symbol=*/part.parquet"))) < 4:
        assert time.monotonic() < deadline and process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    done_before_kill = len(list((output / "raw" / "indices").glob("symbol=*/part.parquet")))
    assert done_before_kill < 17

    result = run_cli(*args, *fast, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Resuming the interrupted run" in result.stdout
    assert table_rows(output / "nepse.db", "indices") == _expected(sim_data, since, until)
    entry = _report(output)["types"]["indices"]
    assert entry["companies_skipped"] >= done_before_kill - 1  # a file renamed at the kill may not count
    full_run_requests = 17 * 5
    assert entry["requests"] < full_run_requests


def test_a_daily_rerun_fetches_only_the_new_days(tmp_path: Path, simulator: SimulatorProcess,
                                                 sim_data: SimData, run_cli, fast, table_rows) -> None:
    since, first_until = _window(sim_data, until_days_ago=30)
    _, later_until = _window(sim_data, until_days_ago=20)
    output = tmp_path / "out"
    first = run_cli(*_args(simulator, output, since, first_until), *fast, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    simulator.reset_stats()
    later = run_cli(*_args(simulator, output, since, later_until), *fast, cwd=tmp_path)
    assert later.returncode == 0, later.stderr
    stats = simulator.stats()
    new_days = [day for day in _expected(sim_data, first_until, later_until) if day[3] > first_until]
    assert 17 * 3 <= len(new_days) <= 17 * 10
    assert stats["rows_served"]["index_history"] == len(new_days)  # only the days after the first run
    assert stats["per_path_kind"]["index_history"] == 17  # one small page each
    assert table_rows(output / "nepse.db", "indices") == _expected(sim_data, since, later_until)
    assert _report(output)["types"]["indices"]["new"] == len(new_days)


def test_a_scope_that_cannot_be_listed_fails_only_its_types(tmp_path: Path, monkeypatch) -> None:
    from rich.console import Console

    from etl import pipeline
    from etl.datatypes.base import Company, Listing
    from etl.failures import FetchError
    from etl.rawzone import RawZone
    from etl.settings import resolve_settings

    settings = resolve_settings(["--output", str(tmp_path / "out"), "--types", "prices,indices"])
    context = pipeline.RunContext(settings, "run-1", zone=RawZone(settings.output), console=Console())
    failure = FetchError("http_5xx", "HTTP 502", status=502)
    outcomes = {"companies": Listing([Company(131, "NABIL")]), "indices": failure}

    async def fake_listing(context, budget, scopes):
        return {scope.name: outcomes[scope.name] for scope in scopes}

    monkeypatch.setattr(pipeline, "_list_scopes", fake_listing)
    type_names = pipeline.selected_types(settings)
    scopes = pipeline.scopes_of(type_names)
    assert [scope.name for scope in scopes] == ["companies", "indices"]
    units = pipeline.list_units(context, None, scopes)
    assert units.by_scope == {"companies": [Company(131, "NABIL")]}
    assert [plan.type_name for plan in pipeline.plan_types(context, type_names, units, None)] == ["prices"]
    failed = pipeline.unlisted_types(type_names, units)
    assert list(failed) == ["indices"] and "cannot get the index list" in failed["indices"]["errors"][0]["reason"]

    outcomes["companies"] = failure
    with pytest.raises(pipeline.HostProblem, match="company list .*index list"):
        pipeline.list_units(context, None, scopes)


def test_the_ci_smoke_check_wants_the_nepse_index(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "nepse.db"
    connection = sqlite3.connect(db)
    connection.executescript("""
        CREATE TABLE securities (security_id, symbol); INSERT INTO securities VALUES (131, 'NABIL');
        CREATE TABLE prices (symbol, business_date); INSERT INTO prices VALUES ('NABIL', '2026-11-26');
        CREATE TABLE reports (symbol); INSERT INTO reports VALUES ('NABIL');
        CREATE TABLE dividends (symbol); INSERT INTO dividends VALUES ('NABIL');
        CREATE TABLE profiles (symbol); INSERT INTO profiles VALUES ('NABIL');
        CREATE TABLE indices (index_id, business_date); INSERT INTO indices VALUES (51, '2026-11-26');
        CREATE TABLE runs (started_at, exit_code, report);
    """)
    done = {"companies_ok": 1, "companies_failed": 0, "companies_total": 1}
    clean_run = json.dumps({"types": {"prices": done, "indices": {**done, "companies_ok": 17, "companies_total": 17}}})
    connection.execute("INSERT INTO runs VALUES ('2026-11-26T10:15:00', 0, ?)", (clean_run,))
    connection.commit()
    check = [sys.executable, str(CHECK_DB), str(db), "--companies", "1"]
    failed = subprocess.run(check, capture_output=True, text=True)
    assert failed.returncode == 1 and "indices: no day of the NEPSE index" in failed.stderr
    connection.execute("INSERT INTO indices VALUES (58, '2026-11-26')")
    connection.commit()
    connection.close()
    passed = subprocess.run(check, capture_output=True, text=True)
    assert passed.returncode == 0 and "indices: 2" in passed.stdout, passed.stderr
