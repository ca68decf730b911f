"""Token junk positions from the site's own css.wasm: the simulator's module, bad modules, a rotated table."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from aiohttp import web
from loguru import logger

from etl import api
from etl.client import NepseClient
from etl.failures import FetchError
from etl.simulator import SimConfig, SimulatorProcess, css_wasm
from etl.simulator.tokens import JUNK_POSITION_TABLE, insert_junk, junk_positions
from etl.wasm_auth import (
    MAX_WASM_BYTES,
    PositionsServer,
    TokenScheme,
    WasmPositions,
    WasmUnusable,
    cache_dir,
    first_disagreement,
    machine_cache_dir,
    prepare,
)
from tests.fake_nepse import Server, handler

# Today's table rotated so that no entry a salt can reach (0..27) keeps its value: the built-in formula
# then never finds the junk characters by chance.
ROTATED = JUNK_POSITION_TABLE[14:] + JUNK_POSITION_TABLE[:14]
FALLBACK_NOTE = "using the built-in token formula"
DISAGREE_NOTE = "places the token junk characters differently from the built-in formula"


def _salts(rng: random.Random) -> dict[str, int]:
    return {f"salt{index}": rng.randint(10_000, 99_999) for index in range(1, 6)}


def test_the_simulators_module_called_as_the_public_clients_do_matches_the_formula() -> None:
    module = WasmPositions(css_wasm.build(JUNK_POSITION_TABLE))
    rng = random.Random(1)
    for _ in range(1000):
        salts = _salts(rng)
        assert module(salts) == api.formula_positions(salts)
    assert first_disagreement(module) is None


def test_a_rotated_table_disagrees_with_the_formula_and_the_module_follows_the_table() -> None:
    assert all(ROTATED[index] != JUNK_POSITION_TABLE[index] for index in range(28))
    module = WasmPositions(css_wasm.build(ROTATED))
    assert first_disagreement(module) is not None
    rng = random.Random(2)
    for _ in range(200):
        salts = _salts(rng)
        access, refresh = module(salts)
        assert access == junk_positions(salts["salt2"], ROTATED)
        assert refresh == junk_positions(salts["salt1"], ROTATED)
        clean = "c" * 150
        body = {**salts, "accessToken": insert_junk(clean, access), "refreshToken": insert_junk(clean, refresh)}
        assert api.access_token(body, module) == clean


def _wat(body: str) -> bytes:
    return bytes(wasmtime.wat2wasm(f"(module {body})"))


def _exports(body: str, skip: str = "") -> str:
    return " ".join(f'(func (export "{name}") (param i32 i32 i32 i32 i32) (result i32) {body})'
                    for name in api.CSS_WASM_EXPORTS if name != skip)


@pytest.mark.parametrize(("wasm", "fragment"), [
    (b"<html>404</html>", "not a WebAssembly binary"),
    (b"\0asm\x01\0\0\0\xff\xff", "."),
    (_wat('(import "env" "f" (func)) ' + _exports("(i32.const 1)")), "imports env.f"),
    (_wat(_exports("(i32.const 1)", skip="ndx")), "no export ndx"),
    (_wat('(func (export "cdx") (param i32) (result i32) (i32.const 1))'), "no export cdx"),
])
def test_modules_that_cannot_serve_are_refused_with_a_reason(wasm: bytes, fragment: str) -> None:
    with pytest.raises(WasmUnusable, match=fragment):
        WasmPositions(wasm)


def test_a_module_that_never_returns_is_stopped_by_its_fuel() -> None:
    module = WasmPositions(_wat(_exports("(loop $forever (br $forever)) (i32.const 0)")))
    started = time.monotonic()
    with pytest.raises(ValueError, match="css.wasm cdx failed"):
        module(_salts(random.Random(3)))
    assert time.monotonic() - started < 5


def test_positions_that_cannot_be_junk_are_refused() -> None:
    module = WasmPositions(_wat(_exports("(i32.const 5)")))  # the same index five times
    with pytest.raises(ValueError, match="unusable junk positions"):
        module(_salts(random.Random(4)))


@pytest.mark.parametrize(("body", "reason"), [
    (b"<html>not here</html>", "does not load (not a WebAssembly binary)"),
    (b"\0asm" + b"\0" * MAX_WASM_BYTES, "could not be fetched"),
])
def test_a_module_that_cannot_be_used_falls_back_to_the_formula(tmp_path: Path, body: bytes, reason: str,
                                                                run_client) -> None:
    server = Server()
    server.app.router.add_get(api.CSS_WASM_PATH, handler(lambda r: web.Response(body=body)))
    scheme = run_client(server, lambda client: prepare(client, tmp_path))
    assert scheme.wasm_path is None and reason in scheme.reason
    assert scheme.positions() is api.formula_positions
    assert server.count(api.CSS_WASM_PATH) == 1  # too large is terminal: not fetched again
    assert not (tmp_path / "state").exists()


DAY_S = 86_400


def _cached(directory: Path, wasm: bytes, days_ago: float) -> Path:
    """A module an earlier run cached, last served by the site `days_ago` days ago."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{hashlib.sha256(wasm).hexdigest()}.wasm"
    path.write_bytes(wasm)
    when = time.time() - days_ago * DAY_S
    os.utime(path, (when, when))
    return path


def _prepare_logged(run_client, server: Server, output: Path,
                    state_dir: Path | None = None) -> tuple[TokenScheme, list[str]]:
    messages: list[str] = []
    sink = logger.add(lambda message: messages.append(message.record["message"]), level="INFO")
    try:
        scheme = run_client(server, lambda client: prepare(client, output, state_dir))
    finally:
        logger.remove(sink)
    return scheme, [message for message in messages if "css.wasm" in message]


def _serving(body: web.Response | None) -> Server:
    server = Server()
    server.app.router.add_get(api.CSS_WASM_PATH, handler(lambda r: body or web.Response(status=404, text="gone")))
    return server


def test_without_the_sites_module_the_newest_cached_one_that_loads_is_used_and_its_age_said_once(
        tmp_path: Path, run_client) -> None:
    cache = cache_dir(tmp_path)
    _cached(cache, css_wasm.build(JUNK_POSITION_TABLE), days_ago=9)
    newest_usable = _cached(cache, css_wasm.build(ROTATED), days_ago=3)
    broken = cache / ("0" * 64 + ".wasm")
    broken.write_bytes(b"<html>cut short</html>")  # the newest file, but not a module: passed over
    scheme, notes = _prepare_logged(run_client, _serving(None), tmp_path)
    assert scheme.wasm_path == newest_usable and "css.wasm could not be fetched" in scheme.reason
    salts = _salts(random.Random(8))
    assert scheme.positions()(salts) == WasmPositions(css_wasm.build(ROTATED))(salts) != api.formula_positions(salts)
    assert len(notes) == 1 and "cached 3 days ago" in notes[0] and "HTTP 404" in notes[0], notes
    assert FALLBACK_NOTE not in notes[0]
    assert scheme.auth_hint == "tokens refused: css.wasm unavailable, the css.wasm cached 3 days ago was used"


def test_without_the_sites_module_or_a_usable_cached_one_the_formula_is_used(tmp_path: Path, run_client) -> None:
    (cache_dir(tmp_path) / "x.wasm").parent.mkdir(parents=True)
    (cache_dir(tmp_path) / "x.wasm").write_bytes(b"\0asm broken")
    scheme, notes = _prepare_logged(run_client, _serving(None), tmp_path)
    assert scheme.wasm_path is None and scheme.positions() is api.formula_positions
    assert len(notes) == 1 and FALLBACK_NOTE in notes[0]


def test_a_module_the_site_serves_again_is_dated_anew_in_the_cache(tmp_path: Path, run_client) -> None:
    path = _cached(cache_dir(tmp_path), css_wasm.build(ROTATED), days_ago=30)
    served = web.Response(body=css_wasm.build(ROTATED), content_type="application/wasm")
    scheme, _ = _prepare_logged(run_client, _serving(served), tmp_path)
    assert scheme.wasm_path == path and not scheme.reason
    assert time.time() - path.stat().st_mtime < 60  # its age, if the site later fails, counts from today


def test_a_new_output_falls_back_on_the_module_a_run_for_another_output_cached_on_this_machine(
        tmp_path: Path, run_client) -> None:
    state = tmp_path / "state"
    served = web.Response(body=css_wasm.build(ROTATED), content_type="application/wasm")
    first, _ = _prepare_logged(run_client, _serving(served), tmp_path / "daily", state)
    assert first.wasm_path is not None and first.wasm_path.parent == cache_dir(tmp_path / "daily")
    shared = machine_cache_dir(state) / first.wasm_path.name
    assert shared.read_bytes() == css_wasm.build(ROTATED)
    scheme, notes = _prepare_logged(run_client, _serving(None), tmp_path / "new", state)
    assert scheme.wasm_path == shared and "css.wasm could not be fetched" in scheme.reason
    assert len(notes) == 1 and "using the css.wasm cached 0 minutes ago" in notes[0], notes
    assert not cache_dir(tmp_path / "new").exists()  # nothing was served: nothing new to cache


@pytest.mark.parametrize(("scheme", "hint"), [
    (TokenScheme(None, "css.wasm could not be fetched (HTTP 404)"), "css.wasm unavailable"),
    (TokenScheme(None), ""),
])
def test_a_refused_token_names_the_fallback_as_its_likely_cause(scheme: TokenScheme, hint: str, run_client) -> None:
    server = Server()
    server.app.router.add_get("/api/nots/x", handler(lambda r: web.json_response({}, status=401)))

    async def action(client: NepseClient) -> None:
        client.use_token_scheme(scheme)
        await client.get_json("/api/nots/x")

    with pytest.raises(FetchError) as raised:
        run_client(server, action)
    assert raised.value.describe().startswith("HTTP 401")
    assert (hint in raised.value.describe()) if hint else ("css.wasm" not in raised.value.describe())


def _positions_in_a_child(wasm: bytes, results: Any) -> None:
    results.put(WasmPositions(wasm)(dict.fromkeys((f"salt{index}" for index in range(1, 6)), 12345)))


def test_a_process_forked_after_the_parent_ran_the_module_can_run_it_too() -> None:
    wasm = css_wasm.build(JUNK_POSITION_TABLE)
    expected = WasmPositions(wasm)(dict.fromkeys((f"salt{index}" for index in range(1, 6)), 12345))
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_positions_in_a_child, args=(wasm, results))
    child.start()
    try:
        assert results.get(timeout=30) == expected
    finally:
        child.join(5)
        child.kill()


# ---- the extract processes ask the parent, which runs the module


def _scheme(tmp_path: Path, wasm: bytes) -> TokenScheme:
    path = tmp_path / "css.wasm"
    path.write_bytes(wasm)
    return TokenScheme(path)


def _ask_in_a_child(scheme: TokenScheme, salts: dict[str, int], results: Any) -> None:
    try:
        answer: Any = scheme.positions()(salts)
    except ValueError as exc:
        answer = f"ValueError: {exc}"
    results.send((answer, type(scheme.positions()).__name__))


def test_a_spawned_extract_process_gets_the_modules_positions_without_loading_wasmtime(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    server = PositionsServer(context, _scheme(tmp_path, css_wasm.build(ROTATED)))
    child_scheme = server.scheme_for_child()
    salts = _salts(random.Random(5))
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_ask_in_a_child, args=(child_scheme, salts, sender))
    child.start()
    assert child_scheme.server is not None
    child_scheme.server.close()
    try:
        deadline = time.monotonic() + 60
        while not receiver.poll() and time.monotonic() < deadline:
            server.answer(wait(server.pipes + [receiver], 0.2))
        answer, source = receiver.recv()
    finally:
        child.join(10)
        child.kill()
    assert answer == WasmPositions(css_wasm.build(ROTATED))(salts) != api.formula_positions(salts)
    assert source == "RemotePositions"
    server.answer(wait(server.pipes, 5))  # the child is gone: its pipe is dropped
    assert server.pipes == []


def _serve_in_a_thread(server: PositionsServer) -> threading.Thread:
    def serve() -> None:
        while server.pipes:
            server.answer(wait(server.pipes, 0.1))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_module_that_fails_in_the_parent_fails_alike_in_the_process_that_asked(tmp_path: Path) -> None:
    wasm = _wat(_exports("(loop $forever (br $forever)) (i32.const 0)"))
    server = PositionsServer(multiprocessing.get_context("spawn"), _scheme(tmp_path, wasm))
    child_scheme = server.scheme_for_child()
    thread = _serve_in_a_thread(server)
    salts = _salts(random.Random(6))
    with pytest.raises(ValueError) as remote:
        child_scheme.positions()(salts)
    with pytest.raises(ValueError) as local:
        WasmPositions(wasm)(salts)
    assert str(remote.value) == str(local.value) and "css.wasm cdx failed" in str(remote.value)
    with pytest.raises(KeyError):  # a body without its salts fails before asking, as it does with the module
        child_scheme.positions()({"salt1": 1})
    assert child_scheme.server is not None
    child_scheme.server.close()
    thread.join(5)
    assert not thread.is_alive()


def test_a_ctrl_c_while_a_question_is_answered_waits_for_the_answer_to_be_sent(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent reads a question, then a Ctrl-C lands: the child still gets its answer (it would otherwise
    wait for it for ever), and the parent's KeyboardInterrupt comes right after."""
    module = css_wasm.build(ROTATED)
    salts = _salts(random.Random(7))
    run_module = WasmPositions.__call__

    def interrupted(self: WasmPositions, body: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        return run_module(self, body)

    monkeypatch.setattr(WasmPositions, "__call__", interrupted)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    server = PositionsServer(multiprocessing.get_context("spawn"), _scheme(tmp_path, module))
    child_scheme = server.scheme_for_child()
    answers: list[Any] = []
    asking = threading.Thread(target=lambda: answers.append(child_scheme.positions()(salts)), daemon=True)
    asking.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            server.answer(wait(server.pipes, 10))
        asking.join(10)
    finally:
        signal.signal(signal.SIGINT, previous)
        server.close()
    assert answers == [run_module(WasmPositions(module), salts)]


def test_with_the_formula_there_is_nothing_to_ask(tmp_path: Path) -> None:
    server = PositionsServer(multiprocessing.get_context("spawn"), TokenScheme(None, "css.wasm could not be fetched"))
    child_scheme = server.scheme_for_child()
    assert child_scheme.server is None and child_scheme.positions() is api.formula_positions
    assert child_scheme.auth_hint and server.pipes == []


def test_the_modules_an_extract_process_imports_do_not_import_wasmtime() -> None:
    # etl.cli: a spawned process imports the main module (scripts/backfill.py) first
    code = ("import sys, etl.cli, etl.extract, etl.client, etl.datatypes, etl.wasm_auth; "
            "print('wasmtime' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parent.parent, check=True)
    assert result.stdout.strip() == "False"


# ---- the whole run against the simulator


def _run(run_cli, fast, config: SimConfig, tmp_path: Path):
    with SimulatorProcess(config) as simulator:
        result = run_cli("--base-url", simulator.base_url, "--limit", "2", "--types", "profiles,reports",
                         "--output", str(tmp_path / "out"), "--max-attempts", "2", *fast, cwd=tmp_path)
    log = next((tmp_path / "out" / "logs").glob("*.log")).read_text()
    return result, log


def test_a_rotated_table_still_authenticates_by_following_the_sites_wasm(tmp_path: Path, sim_seed, run_cli,
                                                                         fast) -> None:
    result, log = _run(run_cli, fast, SimConfig(seed=sim_seed, n_companies=40, junk_table=ROTATED), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    digest = hashlib.sha256(css_wasm.build(ROTATED)).hexdigest()
    assert log.count(DISAGREE_NOTE) == 1 and f"css.wasm {digest[:16]}" in log
    assert FALLBACK_NOTE not in log
    assert (tmp_path / "out" / "state" / "css-wasm" / f"{digest}.wasm").read_bytes() == css_wasm.build(ROTATED)


def test_without_the_wasm_a_rotated_table_fails_with_a_line_naming_the_cause(tmp_path: Path, sim_seed, run_cli,
                                                                             fast) -> None:
    result, log = _run(run_cli, fast, SimConfig(seed=sim_seed, n_companies=40, junk_table=ROTATED,
                                                css_wasm_blocked=True), tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if "cannot authenticate with" in line]
    assert len(lines) == 1, output
    assert "HTTP 401" in lines[0] and "css.wasm could not be fetched" in lines[0] and "HTTP 404" in lines[0]
    assert "changed how it scrambles tokens" in lines[0]
    assert "Traceback" not in output


def test_without_the_wasm_todays_table_works_on_the_formula_and_says_so_once(tmp_path: Path, sim_seed, run_cli,
                                                                             fast) -> None:
    result, log = _run(run_cli, fast, SimConfig(seed=sim_seed, n_companies=40, css_wasm_blocked=True), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert log.count(FALLBACK_NOTE) == 1  # the parent says it; the extract processes do not repeat it
    assert not (tmp_path / "out" / "state" / "css-wasm").exists()


@pytest.mark.parametrize("cached_by", ["this output", "another output"])
def test_without_the_wasm_a_rotated_table_works_on_a_cached_copy_and_says_so_once(
        tmp_path: Path, sim_seed, run_cli, fast, isolated_budget_state: Path, cached_by: str) -> None:
    cache = cache_dir(tmp_path / "out") if cached_by == "this output" else machine_cache_dir(isolated_budget_state)
    _cached(cache, css_wasm.build(ROTATED), days_ago=2)
    result, log = _run(run_cli, fast, SimConfig(seed=sim_seed, n_companies=40, junk_table=ROTATED,
                                                css_wasm_blocked=True), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert log.count("using the css.wasm cached 2 days ago") == 1 and FALLBACK_NOTE not in log


def test_todays_table_agrees_with_the_formula_without_a_warning(tmp_path: Path, sim_seed, run_cli, fast) -> None:
    result, log = _run(run_cli, fast, SimConfig(seed=sim_seed, n_companies=40), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert DISAGREE_NOTE not in log and FALLBACK_NOTE not in log
    assert "token junk positions from css.wasm" in log
