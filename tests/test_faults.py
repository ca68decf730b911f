"""A misbehaving server: mixed faults, expiring tokens, a company that always fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etl.simulator import SimConfig, SimData, SimulatorProcess

RETRY_FAST = ["--backoff-base", "0.05", "--backoff-cap", "0.5", "--max-attempts", "10", "--recover-after", "2"]
BUDGET = 40
CONCURRENCY = 3
# The run whose pace the simulator measures; a run that only gives content or counts goes at the suite's FAST.
MEASURED = ("--max-rps", str(BUDGET), "--pacing", "0.05", "--concurrency", str(CONCURRENCY))


def _symbols(sim_data: SimData, count: int) -> list[str]:
    return [c["symbol"].strip() for c in sim_data.companies() if c["status"] == "A"][:count]


def _run(run_cli, simulator: SimulatorProcess, symbols: list[str], output: Path, cwd: Path,
         politeness: tuple[str, ...] = MEASURED):
    return run_cli("--base-url", simulator.base_url, "--symbols", ",".join(symbols), "--output", str(output),
                   *politeness, *RETRY_FAST, cwd=cwd, timeout=400)


@pytest.fixture(scope="module")
def clean_database(tmp_path_factory: pytest.TempPathFactory, sim_data: SimData, simulator: SimulatorProcess,
                   run_cli, database_content, fast):
    work = tmp_path_factory.mktemp("clean")
    result = _run(run_cli, simulator, _symbols(sim_data, 30), work / "out", work, fast)
    assert result.returncode == 0, result.stderr
    return database_content(work / "out" / "nepse.db")


@pytest.mark.alone
def test_faulty_server_and_expiring_tokens_lose_nothing(tmp_path: Path, sim_data: SimData, clean_database,
                                                        run_cli, database_content, sim_seed) -> None:
    faulty = SimConfig(seed=sim_seed, n_companies=120, token_lifetime_s=3.0, fault_seed=11,
                       p_drop=0.012, p_502=0.012, p_500=0.012, p_empty_200=0.012, p_malformed_json=0.012,
                       p_429=0.008, retry_after_s=0.3, p_short_page=0.012)
    with SimulatorProcess(faulty) as simulator:
        result = _run(run_cli, simulator, _symbols(sim_data, 30), tmp_path / "out", tmp_path)
        stats = simulator.stats()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert database_content(tmp_path / "out" / "nepse.db") == clean_database
    faults = sum(count for status, count in stats["status_counts"].items() if status not in ("200",))
    assert faults >= 5, stats["status_counts"]  # the server really did misbehave
    assert stats["auth_requests"] >= 2  # tokens expired and were proved again
    assert stats["max_starts_per_1s"] <= BUDGET
    assert stats["max_in_flight"] <= CONCURRENCY * 4
    report = json.loads(next((tmp_path / "out" / "runs").glob("*.json")).read_text())
    assert sum(entry["retries"] for entry in report["types"].values()) >= 5
    # Every request the server saw went through our budget: none was resent behind our back.
    client_requests = sum(entry["requests"] for entry in report["types"].values())
    assert stats["requests"] == client_requests + report["company_list_requests"]


def test_an_always_failing_company_is_isolated(tmp_path: Path, sim_data: SimData, run_cli, sim_seed, fast) -> None:
    symbols = _symbols(sim_data, 6)
    bad = next(c for c in sim_data.companies() if c["symbol"].strip() == symbols[2])
    with SimulatorProcess(SimConfig(seed=sim_seed, n_companies=120, fail_ids=frozenset({bad["id"]}))) as simulator:
        result = _run(run_cli, simulator, symbols, tmp_path / "out", tmp_path, fast)
    assert result.returncode == 1, result.stderr
    report = json.loads(next((tmp_path / "out" / "runs").glob("*.json")).read_text())
    indices = report["types"].pop("indices")
    assert indices["companies_failed"] == 0 and indices["companies_ok"] == 17  # a company's fault is not theirs
    for name, entry in report["types"].items():
        assert entry["companies_failed"] == 1, name
        assert entry["companies_ok"] == len(symbols) - 1, name
        assert entry["errors"][0]["symbol"] == symbols[2]
        assert entry["errors"][0]["attempts"] == 10
    assert symbols[2] in result.stdout and "failed" in result.stdout
    assert not (tmp_path / "out" / "raw" / "prices" / f"symbol={symbols[2]}").exists()
