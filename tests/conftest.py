"""Shared fixtures: a simulator on loopback and a way to run the real CLI against it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etl.budget import HostBudget
from etl.simulator import SimConfig, SimData, SimulatorProcess

REPO = Path(__file__).resolve().parent.parent
BACKFILL = REPO / "scripts" / "backfill.py"
SEED = 7
# Fast but still paced: four processes share 40 starts a second.
FAST = ["--max-rps", "40", "--pacing", "0.02", "--backoff-base", "0.05", "--backoff-cap", "0.5"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without NEPSE_* settings, except the test's own budget state directory."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("NEPSE_") or key == "NEPSE_STATE_DIR"}
    env["NEPSE_HTML_REPORT"] = "false"  # about a second a run; tests/test_htmlreport.py turns it back on
    env.update(extra)
    return env


@pytest.fixture(scope="session", autouse=True)
def session_budget_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The same for module- and session-scoped fixtures, which run before any test's own."""
    state = tmp_path_factory.mktemp("session-budget-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEPSE_STATE_DIR", str(state))
        patch.setenv("XDG_CACHE_HOME", str(state))
        yield state


@pytest.fixture(autouse=True)
def isolated_budget_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own host-budget state: tests running in parallel (or the user's own runs) must
    not share a budget with it by accident."""
    state = tmp_path_factory.mktemp("budget-state")
    monkeypatch.setenv("NEPSE_STATE_DIR", str(state))
    monkeypatch.setenv("XDG_CACHE_HOME", str(state))
    return state


def make_budget(max_rps: float, floor_rps: float, recover_after_s: float, **options: Any) -> HostBudget:
    """A host budget whose state file lives in this test's own state directory."""
    state_dir = Path(os.environ["NEPSE_STATE_DIR"])
    return HostBudget(max_rps, floor_rps, recover_after_s, state_file=state_dir / "budget-test.bin", **options)


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240,
            ) -> subprocess.CompletedProcess[str]:
    """Run scripts/backfill.py as a user would (cwd matters: .env is read from it)."""
    return subprocess.run([sys.executable, str(BACKFILL), *args], cwd=cwd, env=env or clean_env(),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def table_rows(db: Path, table: str) -> list[tuple]:
    connection = sqlite3.connect(db)
    try:
        return sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        connection.close()


DATA_TABLES = ("securities", "prices", "reports", "dividends", "profiles", "indices")


def database_content(db: Path) -> dict[str, list[tuple]]:
    return {table: table_rows(db, table) for table in DATA_TABLES}


@pytest.fixture(scope="session")
def sim_data() -> SimData:
    return SimData(SEED, n_companies=120)


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(SimConfig(seed=SEED, n_companies=120)) as process:
        yield process


@pytest.fixture(scope="session")
def some_symbols(sim_data: SimData) -> list[str]:
    """Eight active companies, one of them a debenture whose symbol has a slash."""
    active = [c["symbol"].strip() for c in sim_data.companies() if c["status"] == "A"]
    slashed = [symbol for symbol in active if "/" in symbol]
    chosen = [symbol for symbol in active if "/" not in symbol][:7] + slashed[:1]
    assert len(chosen) == 8 and slashed, "the simulator should list an active debenture with a slash"
    return chosen
