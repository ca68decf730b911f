"""Shared fixtures: a simulator on loopback, and ways to run the real CLI against it and read what it wrote.

Test modules take these as fixtures; none imports this module (pytest loads it as a plugin, and a second
import as ``tests.conftest`` would make a second copy of it).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from etl.budget import HostBudget
from etl.client import NepseClient
from etl.simulator import SimConfig, SimData, SimulatorProcess
from tests import fake_nepse

REPO = Path(__file__).resolve().parent.parent
BACKFILL = REPO / "scripts" / "backfill.py"
SEED = 7
# Fast but still paced: the type processes share 100 starts a second.
FAST = ("--max-rps", "100", "--pacing", "0.01", "--backoff-base", "0.05", "--backoff-cap", "0.5")
DATA_TABLES = ("securities", "prices", "reports", "dividends", "profiles", "indices")


def _clean_env(**extra: str) -> dict[str, str]:
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


def _make_budget(max_rps: float, floor_rps: float, recover_after_s: float, **options: Any) -> HostBudget:
    """A host budget whose state file lives in this test's own state directory."""
    state_dir = Path(os.environ["NEPSE_STATE_DIR"])
    return HostBudget(max_rps, floor_rps, recover_after_s, state_file=state_dir / "budget-test.bin", **options)


def _run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240,
             ) -> subprocess.CompletedProcess[str]:
    """Run scripts/backfill.py as a user would (cwd matters: .env is read from it)."""
    return subprocess.run([sys.executable, str(BACKFILL), *args], cwd=cwd, env=env or _clean_env(),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _start_cli(*args: str, cwd: Path, env_extra: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen:
    """Start scripts/backfill.py without waiting (output piped as text unless `popen` says otherwise)."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    return subprocess.Popen([sys.executable, str(BACKFILL), *args], cwd=cwd, env=_clean_env(**(env_extra or {})),
                            stdin=subprocess.DEVNULL, **options)


def _table_rows(db: Path, table: str) -> list[tuple]:
    connection = sqlite3.connect(db)
    try:
        return sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        connection.close()


def _database_content(db: Path) -> dict[str, list[tuple]]:
    return {table: _table_rows(db, table) for table in DATA_TABLES}


def pytest_addoption(parser: pytest.Parser) -> None:
    """A virtualenv made before pytest-xdist joined the test extras runs the suite in one process instead of
    failing on the xdist options of pyproject's addopts (`pip install -e '.[test]'` brings the workers)."""
    if importlib.util.find_spec("xdist") is None:
        group = parser.getgroup("xdist", "pytest-xdist is not installed: the tests run in one process")
        group._addoption("-n", "--numprocesses", dest="numprocesses", default=None)  # as xdist itself adds it
        group.addoption("--dist", dest="dist", default="no")
        group.addoption("--no-loadscope-reorder", dest="loadscopereorder", action="store_false")


# The modules that take longest, longest first (measured with --durations=0): xdist hands each worker a
# module at a time in collection order (pyproject's --no-loadscope-reorder), so starting with these lets the
# two workers finish together instead of one running the longest module alone at the end. A module not
# listed runs after them, in the usual order; the list only orders, it never selects.
SLOWEST_MODULES_FIRST = ("test_resume.py", "test_cli.py", "test_budget.py", "test_indices.py", "test_pipeline.py",
                         "test_htmlreport.py", "test_faults.py", "test_tls.py", "test_wasm_auth.py",
                         "test_simulator.py", "test_promoter.py", "test_logs.py", "test_imports.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOWEST_MODULES_FIRST.index(name) if name in SLOWEST_MODULES_FIRST else len(SLOWEST_MODULES_FIRST)

    # Stable: a module's own tests keep their order, except that its `alone` tests go first, one after the
    # other, so that the worker waits for the lock once per module rather than once per such test.
    items.sort(key=lambda item: (rank(item), str(item.path), not _alone(item)))


def _alone(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker("alone") is not None


class _AloneLock:
    """Under xdist, a readers-writer lock shared by this session's workers (flock on two files in the
    session's base temporary directory). Every test holds it shared from setup to teardown; from the call of
    a test marked `alone` to the end of the last `alone` test that follows it on the same worker, the lock is
    held exclusively, so nothing else of the suite runs beside them (a rate measured while another test's
    processes load the CPU is a flaky rate). The first one's setup, module fixtures included, still runs
    beside the others. A worker waiting to run alone holds a gate every test passes on its way in, so the
    other worker's next tests queue behind it instead of keeping the shared lock held for ever."""

    def __init__(self, directory: Path) -> None:
        self.gate = open(directory / "alone.gate", "a")  # noqa: SIM115 (held for the session)
        self.lock = open(directory / "alone.lock", "a")  # noqa: SIM115
        self.exclusive = False

    def share(self) -> None:
        if self.exclusive:
            return
        fcntl.flock(self.gate, fcntl.LOCK_EX)
        fcntl.flock(self.lock, fcntl.LOCK_SH)
        fcntl.flock(self.gate, fcntl.LOCK_UN)

    def take_alone(self) -> None:
        if self.exclusive:
            return
        fcntl.flock(self.lock, fcntl.LOCK_UN)  # first: the other worker may hold the gate, waiting for it
        fcntl.flock(self.gate, fcntl.LOCK_EX)
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.exclusive = True

    def release(self, next_is_alone: bool) -> None:
        if self.exclusive and next_is_alone:
            return
        fcntl.flock(self.lock, fcntl.LOCK_UN)
        if self.exclusive:
            fcntl.flock(self.gate, fcntl.LOCK_UN)
            self.exclusive = False


_alone_lock: _AloneLock | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _alone_lock
    worker_basetemp = config.option.basetemp  # xdist gives each worker <session basetemp>/<worker>
    if "PYTEST_XDIST_WORKER" in os.environ and worker_basetemp:
        _alone_lock = _AloneLock(Path(worker_basetemp).parent)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if _alone_lock is None:
        yield
        return
    _alone_lock.share()
    try:
        yield
    finally:
        _alone_lock.release(next_is_alone=_alone(nextitem))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if _alone_lock is not None and _alone(item):
        _alone_lock.take_alone()
    yield


@pytest.fixture(scope="session")
def make_budget() -> Callable[..., HostBudget]:
    """``make_budget(max_rps, floor_rps, recover_after_s, **options)``: a host budget whose state file lives
    in the test's own state directory."""
    return _make_budget


@pytest.fixture(scope="session")
def run_client() -> Callable[..., Any]:
    """``run_client(server, action, budget=None, stop_check=None, **config_overrides)``: `action` on a client of
    a `tests.fake_nepse.Server`, with a generous budget unless the test gives one."""
    def run(server: fake_nepse.Server, action: Callable[[NepseClient], Awaitable], budget: HostBudget | None = None,
            **overrides: Any) -> Any:
        return fake_nepse.run_client(server, action, budget or _make_budget(200, 10, 10), **overrides)

    return run


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli(*args, cwd=..., env=None, timeout=240)``: the CLI run to its end, output captured."""
    return _run_cli


@pytest.fixture(scope="session")
def cli_env() -> Callable[..., dict[str, str]]:
    """``cli_env(**extra)``: the environment tests run the CLI in (none of the caller's NEPSE_*), plus `extra`."""
    return _clean_env


@pytest.fixture
def start_cli() -> Iterator[Callable[..., subprocess.Popen]]:
    """``start_cli(*args, cwd=..., env_extra=None, **popen)``: the CLI started, not waited for. One still running
    when the test ends (its `communicate` timed out, an assertion failed first) is killed then, not left behind
    to load the machine under the tests that follow (its processes go with it, as with any killed run)."""
    started: list[subprocess.Popen] = []

    def start(*args: str, **options: Any) -> subprocess.Popen:
        started.append(_start_cli(*args, **options))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


@pytest.fixture(scope="session")
def fast() -> tuple[str, ...]:
    """Flags for a run that is quick but still paced."""
    return FAST


@pytest.fixture(scope="session")
def sim_seed() -> int:
    """The seed of the shared simulator and of `sim_data` (a simulator a test starts itself uses it too)."""
    return SEED


@pytest.fixture(scope="session")
def table_rows() -> Callable[[Path, str], list[tuple]]:
    """``table_rows(db, table)``: every row of a table, in a stable order."""
    return _table_rows


@pytest.fixture(scope="session")
def database_content() -> Callable[[Path], dict[str, list[tuple]]]:
    """``database_content(db)``: every data table's rows, for comparing two databases."""
    return _database_content


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
