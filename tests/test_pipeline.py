"""The real pipeline against the simulator on loopback: every type lands with the simulator's values."""

from __future__ import annotations

import json
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

from etl.pipeline import selected_types
from etl.settings import ConfigError, Settings, nepal_today
from etl.simulator import SimConfig, SimData, SimulatorProcess


def _companies(sim_data: SimData, symbols: list[str]) -> dict[str, dict]:
    return {c["symbol"].strip(): c for c in sim_data.companies() if c["symbol"].strip() in symbols}


def expected_prices(sim_data: SimData, symbols: list[str], since: date, until: date) -> set[tuple]:
    rows = set()
    for symbol, company in _companies(sim_data, symbols).items():
        for p in sim_data.prices(company["id"], since, until):
            rows.add((symbol, p["businessDate"], float(p["closePrice"]), float(p["highPrice"]),
                      float(p["lowPrice"]), float(p["totalTradedQuantity"]), float(p["totalTradedValue"]),
                      int(p["totalTrades"])))
    return rows


def expected_reports(sim_data: SimData, symbols: list[str]) -> dict[tuple, float | None]:
    quarters = {"First Quarter": "Q1", "Second Quarter": "Q2", "Third Quarter": "Q3", "Fourth Quarter": "Q4"}
    result: dict[tuple, float | None] = {}
    for symbol, company in _companies(sim_data, symbols).items():
        for application in sorted(sim_data.reports(company["id"]), key=lambda a: int(a["id"])):
            report = application["fiscalReport"]
            if report is None:
                continue
            quarter = (report.get("quarterMaster") or {}).get("quarterName")
            period = quarters[quarter.strip()] if quarter else "annual"
            eps = report["epsValue"]
            result[(symbol, report["financialYear"]["fyNameNepali"], period)] = None if eps is None else float(eps)
    return result


def expected_dividends(sim_data: SimData, symbols: list[str]) -> dict[int, tuple]:
    result = {}
    for symbol, company in _companies(sim_data, symbols).items():
        for record in sim_data.dividends(company["id"]):
            cash = record["companyNews"]["dividendsNotice"]["cashDividend"]
            result[int(record["id"])] = (symbol, None if cash in (None, "") else float(cash))
    return result


def test_the_run_checks_its_types_against_the_registry() -> None:
    assert selected_types(Settings()) == ("prices", "reports", "dividends", "profiles", "indices")
    assert selected_types(Settings(types=("profiles", "prices"))) == ("profiles", "prices")
    with pytest.raises(ConfigError, match=r"--types='prices,foo,bar': unknown type foo, bar; choose from prices,"):
        selected_types(Settings(types=("prices", "foo", "bar")))
    env = Settings(types=("nope",), sources={"types": "environment variable NEPSE_TYPES"})
    with pytest.raises(ConfigError, match="environment variable NEPSE_TYPES='nope': unknown type nope"):
        selected_types(env)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, simulator: SimulatorProcess, some_symbols: list[str], run_cli,
              fast):
    work = tmp_path_factory.mktemp("pipeline")
    output = work / "output"
    result = run_cli("--base-url", simulator.base_url, "--symbols", ",".join(some_symbols),
                     "--output", str(output), *fast, cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr
    return work, output, result


def test_every_type_lands_with_the_simulators_values(first_run, sim_data: SimData, some_symbols: list[str],
                                                     table_rows) -> None:
    _work, output, _result = first_run
    db = output / "nepse.db"
    until = nepal_today()
    since = until - timedelta(days=365)

    prices = {row[:8] for row in table_rows(db, "prices")}
    assert prices == expected_prices(sim_data, some_symbols, since, until)
    assert len(prices) > 1000

    reports = {(r[0], r[1], r[2]): r[3] for r in table_rows(db, "reports")}
    assert reports == expected_reports(sim_data, some_symbols)

    dividends = {r[0]: (r[1], r[3]) for r in table_rows(db, "dividends")}
    assert dividends == expected_dividends(sim_data, some_symbols)

    profiles = {r[0]: r[2] for r in table_rows(db, "profiles")}
    companies = _companies(sim_data, some_symbols)
    assert set(profiles) == set(some_symbols)
    for symbol, email in profiles.items():
        served = sim_data.profile(companies[symbol]["id"])["companyEmail"]
        assert email == (" ".join(served.split()) or None if served else None)

    securities = table_rows(db, "securities")
    assert len(securities) == len(sim_data.companies())


def test_summary_line_and_run_report(first_run, some_symbols: list[str], table_rows) -> None:
    _work, output, result = first_run
    assert "Prices: " in result.stdout and " new records, 0 skipped, 0 errors" in result.stdout
    reports = list((output / "runs").glob("*.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["exit_code"] == 0
    assert report["types"]["prices"]["companies_ok"] == len(some_symbols)
    assert report["types"]["prices"]["new"] > 1000
    assert table_rows(output / "nepse.db", "runs")[0][0] == report["run_id"]


def test_each_type_process_reports_the_cpu_it_spent_starting(first_run) -> None:
    """Interpreter, imports and arguments of a spawned process: scripts/bench.py adds them up."""
    _work, output, _result = first_run
    report = json.loads(next((output / "runs").glob("*.json")).read_text())
    for name, entry in report["types"].items():
        assert 0.01 < entry["startup_cpu_s"] < 60, name


def test_each_type_process_reports_its_pid_and_all_the_cpu_it_spent(first_run) -> None:
    """scripts/bench.py splits the run's CPU by process with these."""
    _work, output, _result = first_run
    report = json.loads(next((output / "runs").glob("*.json")).read_text())
    pids = [entry["pid"] for entry in report["types"].values()]
    assert len(set(pids)) == len(pids) and all(pid > 0 and pid != os.getpid() for pid in pids)
    for name, entry in report["types"].items():
        assert entry["startup_cpu_s"] <= entry["cpu_s"] < 600, name


def test_slash_symbol_is_one_encoded_directory(first_run, some_symbols: list[str]) -> None:
    _work, output, _result = first_run
    slashed = next(symbol for symbol in some_symbols if "/" in symbol)
    encoded = slashed.replace("/", "%2F")
    assert (output / "raw" / "prices" / f"symbol={encoded}" / "part.parquet").is_file()
    assert not any(path.name.startswith("symbol=") and "/" in path.name for path in output.rglob("*"))


def test_second_run_adds_nothing(first_run, simulator: SimulatorProcess, some_symbols: list[str], database_content,
                                 run_cli, fast) -> None:
    work, output, _result = first_run
    before = database_content(output / "nepse.db")
    result = run_cli("--base-url", simulator.base_url, "--symbols", ",".join(some_symbols),
                     "--output", str(output), *fast, cwd=work)
    assert result.returncode == 0, result.stderr
    assert database_content(output / "nepse.db") == before
    report = json.loads(sorted((output / "runs").glob("*.json"))[-1].read_text())
    for name, entry in report["types"].items():
        assert entry["new"] == 0 and entry["updated"] == 0, name


def test_load_only_rebuilds_the_database_from_the_raw_zone(first_run, tmp_path: Path, run_cli,
                                                           database_content) -> None:
    _work, output, _result = first_run
    copy = tmp_path / "copy"
    shutil.copytree(output / "raw", copy / "raw")
    result = run_cli("--load-only", "--output", str(copy), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert database_content(copy / "nepse.db") == database_content(output / "nepse.db")
    again = run_cli("--load-only", "--output", str(copy), cwd=tmp_path)
    assert again.returncode == 0
    report = json.loads(sorted((copy / "runs").glob("*.json"))[-1].read_text())
    assert all(entry["new"] == 0 and entry["updated"] == 0 for entry in report["types"].values())


def test_small_page_cap_loses_no_row(tmp_path: Path, sim_data: SimData, some_symbols: list[str], run_cli, fast,
                                     sim_seed, table_rows) -> None:
    symbols = some_symbols[:3]
    with SimulatorProcess(SimConfig(seed=sim_seed, n_companies=120, page_size_cap=40)) as capped:
        result = run_cli("--base-url", capped.base_url, "--symbols", ",".join(symbols), "--types", "prices",
                         "--output", str(tmp_path / "out"), *fast, cwd=tmp_path)
        stats = capped.stats()
    assert result.returncode == 0, result.stderr
    until = nepal_today()
    expected = expected_prices(sim_data, symbols, until - timedelta(days=365), until)
    assert {row[:8] for row in table_rows(tmp_path / "out" / "nepse.db", "prices")} == expected
    assert stats["per_path_kind"]["prices"] >= len(expected) // 40


def test_a_fork_server_preloads_the_childrens_modules_and_is_stopped_with_the_run() -> None:
    import importlib
    import multiprocessing.forkserver as forkserver

    from etl.pipeline import FORKSERVER_PRELOAD, process_context

    for name in FORKSERVER_PRELOAD:  # a misspelt name would be skipped by the fork server without a word
        importlib.import_module(name)
    with process_context("forkserver") as ctx:
        child = ctx.Process(target=os.getpid)
        child.start()
        child.join(30)
        assert child.exitcode == 0
        server = forkserver._forkserver._forkserver_pid
        assert server is not None
        assert forkserver._forkserver._preload_modules == FORKSERVER_PRELOAD
    assert forkserver._forkserver._forkserver_pid is None
    with pytest.raises(ChildProcessError):
        os.waitpid(server, os.WNOHANG)  # reaped: nothing of the run is left running
