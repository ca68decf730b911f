"""Kill the real CLI at any moment (SIGKILL, SIGINT), re-run it, and lose nothing."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import psutil
import pytest

from etl.simulator import SimData, SimulatorProcess

# Slow enough that each kill lands mid-extract with seconds to spare (the ~86 requests of a run take ~7 s; the
# signals come after 3 to 30 files), and no slower: the run killed under the pool goes on to its end at it.
SLOW = ["--max-rps", "12", "--pacing", "0.1"]
# The run whose worker is killed goes on to its end: twice SLOW still leaves the victim seconds of work.
HALF_SLOW = ["--max-rps", "24", "--pacing", "0.05"]


def _symbols(sim_data: SimData) -> list[str]:
    return [c["symbol"].strip() for c in sim_data.companies() if c["status"] == "A"][10:26]


def _args(simulator: SimulatorProcess, symbols: list[str], output: Path) -> list[str]:
    return ["--base-url", simulator.base_url, "--symbols", ",".join(symbols), "--output", str(output)]


def _latest_report(output: Path) -> dict:
    return json.loads(max((output / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns).read_text())


def _wait_for_files(output: Path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list((output / "raw").glob("*/symbol=*/part.parquet"))) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} raw files appeared within {timeout}s")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, simulator: SimulatorProcess, sim_data: SimData, run_cli, fast,
              database_content):
    work = tmp_path_factory.mktemp("reference")
    result = run_cli(*_args(simulator, _symbols(sim_data), work / "out"), *fast, cwd=work)
    assert result.returncode == 0, result.stderr
    report = _latest_report(work / "out")
    return database_content(work / "out" / "nepse.db"), sum(e["requests"] for e in report["types"].values())


@pytest.mark.parametrize("after_files", [3, 30])
def test_sigkill_mid_extract_then_rerun_resumes(tmp_path: Path, simulator: SimulatorProcess, sim_data: SimData,
                                                reference, after_files: int, run_cli, fast, database_content,
                                                start_cli) -> None:
    reference_content, reference_requests = reference
    output = tmp_path / "out"
    args = _args(simulator, _symbols(sim_data), output)
    process = start_cli(*args, *SLOW, cwd=tmp_path)
    _wait_for_files(output, after_files)
    children = psutil.Process(process.pid).children(recursive=True)
    assert any("forkserver" in " ".join(child.cmdline()) for child in children)  # the default start method
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    # No orphan keeps fetching after the run that started it (the fork server included) is gone.
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]

    result = run_cli(*args, *fast, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Resuming the interrupted run" in result.stdout
    assert database_content(output / "nepse.db") == reference_content
    report = _latest_report(output)
    skipped = sum(entry["companies_skipped"] for entry in report["types"].values())
    requests = sum(entry["requests"] for entry in report["types"].values())
    assert skipped >= after_files - 4  # files being renamed at the kill may or may not count
    assert requests < reference_requests  # it resumed rather than restarted
    assert not list(output.rglob("*.tmp"))


def test_a_sigkilled_run_under_spawn_leaves_no_process_behind(tmp_path: Path, simulator: SimulatorProcess,
                                                               sim_data: SimData, start_cli) -> None:
    """The default start method is a fork server (the kill tests above); under spawn, each type's process and the
    log manager are the run's own children, and go with it too."""
    output = tmp_path / "out"
    process = start_cli(*_args(simulator, _symbols(sim_data), output), *SLOW, "--start-method", "spawn", cwd=tmp_path)
    _wait_for_files(output, 3)
    children = psutil.Process(process.pid).children(recursive=True)
    assert any("spawn_main" in " ".join(child.cmdline()) for child in children)
    assert not any("forkserver" in " ".join(child.cmdline()) for child in children)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)  # no survivor holds the run's stdout open
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_stops_cleanly_with_130_and_a_summary(tmp_path: Path, simulator: SimulatorProcess,
                                                     sim_data: SimData, reference, signum: int, run_cli, fast,
                                                     database_content, start_cli) -> None:
    reference_content, _ = reference
    output = tmp_path / "out"
    args = _args(simulator, _symbols(sim_data), output)
    process = start_cli(*args, *SLOW, cwd=tmp_path)
    _wait_for_files(output, 8)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Exit code: 130" in stdout
    assert "Traceback" not in stderr
    assert not list(output.rglob("*.tmp"))
    report = _latest_report(output)
    assert report["interrupted"] is True

    result = run_cli(*args, *fast, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert database_content(output / "nepse.db") == reference_content


def test_sigkill_mid_load_then_load_only_finishes(tmp_path: Path, simulator: SimulatorProcess,
                                                  sim_data: SimData, reference, run_cli, fast, database_content,
                                                  start_cli) -> None:
    reference_content, _ = reference
    output = tmp_path / "out"
    extract = run_cli(*_args(simulator, _symbols(sim_data), output), "--extract-only", *fast, cwd=tmp_path)
    assert extract.returncode == 0, extract.stderr
    for delay in (0.0, 0.5, 1.0):  # kill the load at several points, each time leaving whatever it left
        process = start_cli("--load-only", "--output", str(output), cwd=tmp_path)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    result = run_cli("--load-only", "--output", str(output), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert database_content(output / "nepse.db") == reference_content


def test_daily_rerun_fetches_only_new_days(tmp_path: Path, simulator: SimulatorProcess, sim_data: SimData, run_cli,
                                           fast) -> None:
    symbols = _symbols(sim_data)[:4]
    output = tmp_path / "out"
    first = run_cli(*_args(simulator, symbols, output), "--types", "prices", "--until", "2026-06-30", *fast,
                    cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = run_cli(*_args(simulator, symbols, output), "--types", "prices", "--since", "2025-06-30",
                     "--until", "2026-07-10", *fast, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    report = _latest_report(output)["types"]["prices"]
    assert report["requests"] <= len(symbols) + 2  # one small page each (plus auth)
    assert 0 < report["rows_fetched"] <= len(symbols) * 9  # only 1 to 10 July
    assert report["new"] == report["rows_fetched"]
    full = run_cli(*_args(simulator, symbols, output), "--types", "prices", "--since", "2025-06-30",
                   "--until", "2026-07-10", "--full", *fast, cwd=tmp_path)
    assert full.returncode == 0
    full_report = _latest_report(output)["types"]["prices"]
    assert full_report["rows_fetched"] > 10 * report["rows_fetched"]  # the whole window again
    assert full_report["new"] == 0 and full_report["updated"] == 0


def test_a_worker_killed_under_the_pool_is_reported_not_waited_for(tmp_path: Path, simulator: SimulatorProcess,
                                                                   sim_data: SimData, start_cli) -> None:
    output = tmp_path / "out"
    process = start_cli(*_args(simulator, _symbols(sim_data), output), *HALF_SLOW, cwd=tmp_path)
    _wait_for_files(output, 4)
    # Under spawn the workers are the run's children; under a fork server, the fork server's.
    workers = [child for child in psutil.Process(process.pid).children(recursive=True)
               if "spawn_main" in " ".join(child.cmdline())
               or ("forkserver" in " ".join(child.cmdline()) and child.ppid() != process.pid)]
    victim = max(workers, key=lambda child: child.pid)  # the manager starts first; pool workers after it
    victim.kill()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stdout[-2000:] + stderr
    assert f"extract process {victim.pid} died" in stdout
    report = _latest_report(output)
    lost = [name for name, entry in report["types"].items()
            if any(error["symbol"] == "*" for error in entry["errors"])]
    assert len(lost) == 1
    assert all(report["types"][name]["companies_ok"] == report["types"][name]["companies_total"]
               for name in report["types"] if name not in lost)


def test_ctrl_c_at_the_terminal_reaches_only_the_parent(tmp_path: Path, simulator: SimulatorProcess,
                                                         sim_data: SimData, start_cli) -> None:
    """A terminal's Ctrl-C signals the whole process group: the children must leave it to the parent."""
    import os

    output = tmp_path / "out"
    process = start_cli(*_args(simulator, _symbols(sim_data), output), *SLOW, cwd=tmp_path, start_new_session=True)
    _wait_for_files(output, 4)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "died" not in stdout
    report = _latest_report(output)
    assert report["interrupted"] is True
    assert all(not entry["errors"] for entry in report["types"].values())
