"""The CLI as a person meets it: on a terminal and off one, dry runs, and every kind of bad input."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import shutil
import signal
import sqlite3
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from etl import api
from etl.cli import exit_code_of, main
from etl.errors import DatabaseNotUsable
from etl.settings import ConfigError
from etl.simulator import SimConfig, SimData, SimulatorProcess, create_app
from tests.fake_nepse import Server


def _symbols(sim_data: SimData, count: int = 3) -> list[str]:
    return [c["symbol"].strip() for c in sim_data.companies() if c["status"] == "A"][30:30 + count]


def _assert_usage_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def run_in_pty(start_cli, args: list[str], cwd: Path, timeout: float = 120) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdout, as a person at a terminal would."""
    controller, terminal = pty.openpty()
    process = start_cli(*args, cwd=cwd, env_extra={"COLUMNS": "160", "TERM": "xterm"}, stdout=terminal,
                        stderr=terminal)
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if ready:
            try:
                data = os.read(controller, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(controller)
    return process.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_on_a_terminal_shows_live_bars_and_the_summary(tmp_path: Path, simulator: SimulatorProcess,
                                                       sim_data: SimData, fast, start_cli) -> None:
    symbols = _symbols(sim_data)
    code, screen = run_in_pty(start_cli, ["--base-url", simulator.base_url, "--symbols", ",".join(symbols),
                               "--output", str(tmp_path / "out"), *fast], tmp_path)
    assert code == 0, screen
    assert "\x1b[" in screen  # drawn in place with terminal control codes
    for name in ("prices", "reports", "dividends", "profiles", "indices"):
        assert name in screen
    assert "req/s" in screen
    assert "Exit code: 0 (success)" in screen
    assert "Traceback" not in screen
    assert not re.search(r"\[\d+/\d+\] \S+ done", screen)  # no plain lines on a terminal


@pytest.mark.parametrize("start_method", ["spawn", "fork", "forkserver"])
def test_off_a_terminal_prints_plain_progress_lines(tmp_path: Path, simulator: SimulatorProcess,
                                                    sim_data: SimData, start_method: str, run_cli, fast) -> None:
    symbols = _symbols(sim_data)
    result = run_cli("--base-url", simulator.base_url, "--symbols", ",".join(symbols), "--start-method",
                     start_method, "--output", str(tmp_path / "out"), *fast, cwd=tmp_path)
    assert result.returncode == 0
    assert "\x1b[" not in result.stdout
    for name in ("prices", "reports", "dividends", "profiles"):
        assert re.search(rf"^{name} \[3/3\] \S+ done \(\d+ records?\)$", result.stdout, re.MULTILINE)
    assert re.search(r"^indices \[17/17\] [A-Z]+ done \(\d+ records\)$", result.stdout, re.MULTILINE)
    assert re.search(r"^Prices: [\d,]+ new records, 0 skipped, 0 errors$", result.stdout, re.MULTILINE)
    logs = list((tmp_path / "out" / "logs").glob("*.log"))
    assert len(logs) == 1
    log_text = logs[0].read_text()
    assert "| prices |" in log_text and "done (" in log_text  # child records reached the parent's log
    assert "Salter" not in log_text


def test_quiet_prints_only_the_summary(tmp_path: Path, simulator: SimulatorProcess, sim_data: SimData, run_cli,
                                       fast) -> None:
    result = run_cli("--base-url", simulator.base_url, "--symbols", ",".join(_symbols(sim_data)),
                     "--output", str(tmp_path / "out"), "--quiet", *fast, cwd=tmp_path)
    assert result.returncode == 0
    assert " done (" not in result.stdout
    assert "Exit code: 0" in result.stdout


def test_verbose_shows_debug_lines(tmp_path: Path, simulator: SimulatorProcess, sim_data: SimData, run_cli,
                                   fast) -> None:
    result = run_cli("--base-url", simulator.base_url, "--symbols", ",".join(_symbols(sim_data, 1)),
                     "--types", "profiles", "--output", str(tmp_path / "out"), "--verbose", *fast, cwd=tmp_path)
    assert result.returncode == 0
    assert "DEBUG" in result.stdout


def test_dry_run_fetches_only_the_company_and_index_lists(tmp_path: Path, sim_data: SimData, run_cli, sim_seed) -> None:
    with SimulatorProcess(SimConfig(seed=sim_seed, n_companies=120)) as simulator:
        result = run_cli("--base-url", simulator.base_url, "--limit", "20", "--dry-run",
                         "--output", str(tmp_path / "out"), cwd=tmp_path)
        stats = simulator.stats()
    assert result.returncode == 0, result.stderr
    assert "prices: 20 companies to fetch" in result.stdout
    assert re.search(r"Total: ~[\d,]+ calls, about 0:00:\d\d at the current budget", result.stdout)
    assert "indices: 17 indices to fetch" in result.stdout
    assert stats["data_requests"] == 2, stats
    assert stats["per_path_kind"].get("company_list") == stats["per_path_kind"].get("index_list") == 1, stats
    assert not (tmp_path / "out" / "raw" / "prices").exists()


# ---- bad input: one line, exit 2, nothing saved touched


def test_unknown_symbol(tmp_path: Path, simulator: SimulatorProcess, sim_data: SimData, run_cli, fast) -> None:
    result = run_cli("--base-url", simulator.base_url, "--symbols", f"{_symbols(sim_data, 1)[0]},ZZZZZZ",
                     "--output", str(tmp_path / "out"), *fast, cwd=tmp_path)
    _assert_usage_error(result, "unknown symbol ZZZZZZ")


def test_an_unknown_type_is_refused_before_anything_is_written(tmp_path: Path, run_cli) -> None:
    output = tmp_path / "out"
    _assert_usage_error(run_cli("--types", "prices,foo", "--output", str(output), cwd=tmp_path),
                        "--types='prices,foo': unknown type foo; choose from prices, reports, dividends, profiles")
    assert not output.exists()


def test_bad_dotenv_value_in_the_working_directory(tmp_path: Path, run_cli) -> None:
    (tmp_path / ".env").write_text("NEPSE_MAX_RPS=lots\n")
    _assert_usage_error(run_cli("--dry-run", cwd=tmp_path), "NEPSE_MAX_RPS in .env='lots'")


def test_output_that_cannot_be_written(tmp_path: Path, run_cli) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _assert_usage_error(run_cli("--load-only", "--output", str(blocker / "out"), cwd=tmp_path),
                        "cannot write to output directory")


def test_a_second_run_on_the_same_output_is_refused(tmp_path: Path, run_cli) -> None:
    import fcntl

    output = tmp_path / "out"
    output.mkdir()
    with open(output / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running backfill holds it
        _assert_usage_error(run_cli("--load-only", "--output", str(output), cwd=tmp_path),
                            f"another backfill is running on {output}")


def test_load_only_with_nothing_to_load(tmp_path: Path, run_cli) -> None:
    _assert_usage_error(run_cli("--load-only", "--output", str(tmp_path / "empty"), cwd=tmp_path), "nothing to load")


def test_database_not_ours_is_left_untouched(tmp_path: Path, run_cli) -> None:
    output = tmp_path / "out"
    (output / "raw").mkdir(parents=True)
    db = output / "nepse.db"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE mine (x)")
    connection.commit()
    connection.close()
    before = db.read_bytes()
    _assert_usage_error(run_cli("--load-only", "--output", str(output), cwd=tmp_path), "did not create")
    assert db.read_bytes() == before


def test_locked_database(tmp_path: Path, simulator: SimulatorProcess, sim_data: SimData, run_cli, fast) -> None:
    output = tmp_path / "out"
    first = run_cli("--base-url", simulator.base_url, "--symbols", _symbols(sim_data, 1)[0], "--types",
                    "profiles", "--output", str(output), *fast, cwd=tmp_path)
    assert first.returncode == 0
    holder = sqlite3.connect(output / "nepse.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        _assert_usage_error(run_cli("--load-only", "--output", str(output), cwd=tmp_path), "is locked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_unreachable_host_says_which_and_what_to_try(tmp_path: Path, run_cli) -> None:
    result = run_cli("--base-url", "http://127.0.0.1:9", "--max-attempts", "2", "--backoff-base", "0.05",
                     "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1
    text = result.stdout + result.stderr
    assert "cannot get the company list from http://127.0.0.1:9" in text and "--max-rps" in text
    assert "Traceback" not in text


# ---- TLS: verification on by default, and the error says how to relax it


@pytest.fixture(scope="module")
def tls_simulator(tmp_path_factory: pytest.TempPathFactory, sim_seed) -> Iterator[str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    yield from serve_in_a_thread(create_app(SimConfig(seed=sim_seed, n_companies=40)), context)


def serve_in_a_thread(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve `app` on loopback from a thread of this process; yields its base URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}

    async def serve() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        holder["port"] = runner.addresses[0][1]
        holder["runner"] = runner
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{holder['port']}"
    asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)


def test_certificate_failure_names_the_switch(tmp_path: Path, tls_simulator: str, run_cli) -> None:
    result = run_cli("--base-url", tls_simulator, "--limit", "2", "--output", str(tmp_path / "out"), cwd=tmp_path)
    _assert_usage_error(result, "TLS certificate verification failed for 127.0.0.1")
    assert "--insecure" in result.stderr and "--ca-bundle" in result.stderr


def test_insecure_reaches_a_self_signed_host(tmp_path: Path, tls_simulator: str, run_cli, fast) -> None:
    result = run_cli("--base-url", tls_simulator, "--limit", "2", "--types", "profiles", "--insecure",
                     "--output", str(tmp_path / "out"), *fast, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("raised", "code", "line"), [
    (ConfigError("--limit: bad"), 2, "error: --limit: bad"),
    (DatabaseNotUsable("out/nepse.db is locked by another program"), 2,
     "error: out/nepse.db is locked by another program"),
    (KeyboardInterrupt(), 130, "interrupted: re-run the same command to resume"),
])
def test_what_ends_a_run_early_has_one_exit_code_and_one_line(
        raised: BaseException, code: int, line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import etl.pipeline

    def run(settings: object) -> int:
        raise raised

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(etl.pipeline, "run", run)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    assert main(["--dry-run"]) == code
    assert capsys.readouterr().err.splitlines() == [line]
    assert exit_code_of(raised) == code


def test_a_bug_is_not_mapped_to_an_exit_code_but_crashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import etl.pipeline

    def run(settings: object) -> int:
        raise AttributeError("a bug")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(etl.pipeline, "run", run)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    with pytest.raises(AttributeError, match="a bug"):
        main(["--dry-run"])
    assert not issubclass(DatabaseNotUsable, ConfigError)  # a database error is not a settings error


def test_a_write_lock_in_wal_mode_is_found_before_fetching(tmp_path: Path, simulator: SimulatorProcess,
                                                         sim_data: SimData, fast, run_cli) -> None:
    output = tmp_path / "out"
    symbol = _symbols(sim_data, 1)[0]
    args = ["--base-url", simulator.base_url, "--symbols", symbol, "--types", "profiles", "--output", str(output),
            *fast]
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    profile = next((output / "raw" / "profiles").glob("symbol=*/part.parquet"))
    written = profile.stat().st_mtime_ns
    holder = sqlite3.connect(output / "nepse.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a writer in WAL mode: readers still pass, a second writer waits
    try:
        started = time.monotonic()
        result = run_cli(*args, cwd=tmp_path)
        _assert_usage_error(result, "held for writing by another program")
        assert f"{output / 'nepse.db'}" in result.stderr and time.monotonic() - started < 20
        assert profile.stat().st_mtime_ns == written  # nothing fetched
        assert len(list((output / "runs").glob("*.json"))) == 2  # the refused run has its report too
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_extract_only_never_touches_the_database(tmp_path: Path, simulator: SimulatorProcess,
                                                 sim_data: SimData, fast, run_cli) -> None:
    output = tmp_path / "out"
    args = ["--base-url", simulator.base_url, "--symbols", _symbols(sim_data, 1)[0], "--types", "profiles",
            "--output", str(output), *fast]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0 and f"Database: {output / 'nepse.db'}\n" in first.stdout
    db = output / "nepse.db"
    before = db.read_bytes()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = run_cli(*args, "--extract-only", cwd=tmp_path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert db.read_bytes() == before
    assert len(list((output / "runs").glob("*.json"))) == 2
    assert f"Database: {db} (not loaded by this run, which extracted only (--extract-only): its data waits in " \
           "the raw zone; --load-only loads it)" in result.stdout


def test_a_lock_taken_during_the_extract_still_ends_with_a_summary_and_a_report(tmp_path: Path,
                                                                                simulator: SimulatorProcess,
                                                                                sim_data: SimData, fast, sim_seed,
                                                                                run_cli, start_cli) -> None:
    output = tmp_path / "out"
    args = ["--symbols", ",".join(_symbols(sim_data, 3)), "--types", "profiles", "--output", str(output), *fast]
    assert run_cli("--base-url", simulator.base_url, *args, cwd=tmp_path).returncode == 0  # the database exists
    with SimulatorProcess(SimConfig(seed=sim_seed, n_companies=120, latency_median_s=0.4)) as slow:
        process = start_cli("--base-url", slow.base_url, *args, "--db-busy-timeout", "0.2",  # not SQLite's 5 s
                            cwd=tmp_path)
        company_list = output / "raw" / "securities" / "securities.parquet"
        listed = company_list.stat().st_mtime_ns
        deadline = time.monotonic() + 60
        while company_list.stat().st_mtime_ns == listed and time.monotonic() < deadline:
            time.sleep(0.02)  # the probe has passed once the run rewrites the company list
        holder = sqlite3.connect(output / "nepse.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            stdout, stderr = process.communicate(timeout=120)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    assert process.returncode == 1, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert "held for writing by another program" in stdout + stderr and "--load-only" in stdout + stderr
    reports = sorted((output / "runs").glob("*.json"), key=lambda path: path.stat().st_mtime_ns)
    assert len(reports) == 2 and "held for writing" in reports[-1].read_text()


@pytest.mark.parametrize(("args", "fragment"), [
    (["--base-url", "http://user:secret@127.0.0.1:9"], "--base-url: a user name or password in the URL"),
    (["--base-url", "http://127.0.0.1:99999"], "port 99999 is out of range"),
    (["--base-url", "http://127.0.0.1:9/api/nots"], "give only scheme://host[:port]"),
    (["--base-url", "http://127.0.0.1:9?x=1"], "give only scheme://host[:port]"),
    (["--output", "out-\udcff"], "not valid UTF-8"),
])
def test_hostile_flags_are_one_line_and_exit_2(args: list[str], fragment: str, tmp_path: Path, run_cli) -> None:
    result = run_cli(*args, "--dry-run", cwd=tmp_path)
    _assert_usage_error(result, fragment)
    assert "secret" not in result.stderr


def test_a_database_path_that_is_a_directory_is_one_line(tmp_path: Path, run_cli) -> None:
    (tmp_path / "out" / "nepse.db").mkdir(parents=True)
    result = run_cli("--base-url", "http://127.0.0.1:9", "--output", str(tmp_path / "out"), cwd=tmp_path)
    _assert_usage_error(result, "nepse.db is a directory")


@pytest.fixture
def empty_list_server() -> Iterator[str]:
    """Answers the handshake, and [] for the company list."""
    server = Server()

    async def empty(request: web.Request) -> web.Response:
        return web.json_response([])

    server.app.router.add_get(api.COMPANY_LIST_PATH, empty)
    yield from serve_in_a_thread(server.app)


def test_an_empty_company_list_is_a_failure_with_its_own_line(tmp_path: Path, empty_list_server: str, run_cli,
                                                              fast) -> None:
    result = run_cli("--base-url", empty_list_server, "--output", str(tmp_path / "out"), *fast, cwd=tmp_path)
    text = result.stdout + result.stderr
    assert result.returncode == 1, text
    assert sum("the company list from" in line and "is empty" in line for line in text.splitlines()) >= 1
    assert "No failures." not in text and "Traceback" not in text
    assert not (tmp_path / "out" / "raw" / "securities" / "securities.parquet").exists()
