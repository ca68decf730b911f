"""Token junk positions from NEPSE's own `css.wasm`, with the built-in formula as the fallback.

NEPSE inserts five junk characters into each token it hands out, at positions its web app computes
with a small WebAssembly module. The formula in `etl/api.py` matches today's module, but the scheme
has changed before; running the module itself keeps working when it changes again. At the start of
a run the parent fetches the module (through the host budget), loads it, compares it with the
formula, caches it by content hash under `<output>/state/css-wasm/` (and in the machine's state directory, for
a new output to fall back on) and runs it for the extract processes
too: each asks the parent over a pipe (`PositionsServer`, `RemotePositions`) for the positions of the salts
it was given, so no extract process loads wasmtime (~17 MB of memory and its import time each).

wasmtime runs it: a maintained runtime whose `Config.consume_fuel` bounds every call (a hostile or
broken module cannot hang a run), and whose `wat2wasm` lets the simulator build its own module from
WebAssembly text without network or a checked-in binary.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from etl import api
from etl.events import count_noun
from etl.failures import FetchError
from etl.procs import ctrl_c_deferred

# wasmtime is imported where a module is loaded: only the parent loads one (the extract processes ask it).
if TYPE_CHECKING:
    import wasmtime

    from etl.client import NepseClient

MAX_WASM_BYTES = 64 * 1024  # the real module is about 750 bytes
FUEL_PER_CALL = 100_000  # a position takes a few dozen instructions
_WASM_MAGIC = b"\0asm"
_SALT_NAMES = tuple(f"salt{index}" for index in range(1, 6))
_SAMPLE_SIZE = 200  # salt tuples compared with the formula when the module loads (about 0.2 s)
_SALT_RANGE = (10_000, 99_999)


class WasmUnusable(Exception):
    """The module is not one we can run for junk positions."""


class WasmPositions:
    """An `api.PositionSource` backed by a css.wasm module."""

    def __init__(self, wasm: bytes) -> None:
        import wasmtime

        self.sha256 = hashlib.sha256(wasm).hexdigest()
        if not wasm.startswith(_WASM_MAGIC):
            raise WasmUnusable("not a WebAssembly binary")
        config = wasmtime.Config()
        config.consume_fuel = True
        # Compiling on wasmtime's thread pool hangs in a process forked after the parent compiled (the
        # pool's threads do not survive the fork): `--start-method fork` needs single-threaded compiles.
        config.parallel_compilation = False
        engine = wasmtime.Engine(config)
        self._store = wasmtime.Store(engine)
        try:
            module = wasmtime.Module(engine, wasm)
            if module.imports:
                raise WasmUnusable(f"it imports {module.imports[0].module}.{module.imports[0].name}")
            exports = wasmtime.Instance(self._store, module, []).exports(self._store)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise WasmUnusable(str(exc).splitlines()[0]) from None
        self._functions: dict[str, wasmtime.Func] = {}
        for name in api.CSS_WASM_EXPORTS:
            function = exports.get(name)
            if not isinstance(function, wasmtime.Func) or _signature(function, self._store) != (5, 1):
                raise WasmUnusable(f"it has no export {name}(i32 x5) -> i32")
            self._functions[name] = function

    def __call__(self, body: Mapping[str, Any]) -> tuple[api.Positions, api.Positions]:
        salts = salts_of(body)
        return (self._positions(api.ACCESS_POSITION_CALLS, salts),
                self._positions(api.REFRESH_POSITION_CALLS, salts))

    def _positions(self, calls: tuple[tuple[str, tuple[int, ...]], ...], salts: Sequence[int]) -> api.Positions:
        import wasmtime

        positions = []
        for name, order in calls:
            self._store.set_fuel(FUEL_PER_CALL)
            try:
                value = self._functions[name](self._store, *(salts[index] for index in order))
            except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
                raise ValueError(f"css.wasm {name} failed: {str(exc).splitlines()[0]}") from None
            positions.append(int(value))
        if len(set(positions)) != len(positions) or min(positions) < 0:
            raise ValueError(f"css.wasm gave unusable junk positions {positions}")
        return tuple(positions)


def salts_of(body: Mapping[str, Any]) -> list[int]:
    return [int(body[name]) for name in _SALT_NAMES]


def _signature(function: wasmtime.Func, store: wasmtime.Store) -> tuple[int, int]:
    import wasmtime

    kind = function.type(store)
    i32 = wasmtime.ValType.i32()
    if any(param != i32 for param in kind.params) or any(result != i32 for result in kind.results):
        return -1, -1
    return len(kind.params), len(kind.results)


def first_disagreement(source: WasmPositions, samples: int = _SAMPLE_SIZE) -> dict[str, int] | None:
    """Salts on which the module and the built-in formula differ, among a fixed sample; None if none.

    Also runs every export on every sample, so a module that traps or loops is refused here, once,
    rather than in the middle of the run."""
    rng = random.Random(0)
    for _ in range(samples):
        salts = {name: rng.randint(*_SALT_RANGE) for name in _SALT_NAMES}
        if source(salts) != api.formula_positions(salts):
            return salts
    return None


@dataclass(frozen=True)
class TokenScheme:
    """What this run cleans tokens with: the site's module (cached), or in its place a module an earlier run
    cached or the built-in formula, and why."""

    wasm_path: Path | None
    reason: str = ""  # why the site's module is not used, for the lines that report a failed authentication
    server: Connection | None = None  # in an extract process: the pipe to the parent that runs the module
    cached_age: str = ""  # with a reason and a module: how long ago the site last served that module

    @property
    def stand_in(self) -> str:
        """What cleans tokens in place of the site's module (when `reason` says why it is not used)."""
        return f"the css.wasm cached {self.cached_age} ago" if self.wasm_path else "the built-in token formula"

    @property
    def auth_hint(self) -> str:
        """Added to a request's final authentication failure: the likely cause."""
        return f"tokens refused: css.wasm unavailable, {self.stand_in} was used" if self.reason else ""

    def positions(self) -> api.PositionSource:
        """The position source for a client of this run (the extract processes call this too)."""
        if self.wasm_path is None:
            return api.formula_positions
        if self.server is not None:
            return RemotePositions(self.server)
        try:
            return WasmPositions(self.wasm_path.read_bytes())
        except (OSError, WasmUnusable) as exc:
            logger.warning(f"cannot load {self.wasm_path} ({exc}); using the built-in token formula")
            return api.formula_positions


class RemotePositions:
    """An `api.PositionSource` in an extract process: the parent runs css.wasm on the salts and answers with
    the positions, or with the reason the module could not give them (raised here as the same ValueError)."""

    def __init__(self, server: Connection) -> None:
        self._server = server

    def __call__(self, body: Mapping[str, Any]) -> tuple[api.Positions, api.Positions]:
        salts = salts_of(body)  # a body without usable salts fails here, as it would with the module itself
        # A blocking round trip of well under a millisecond, once per token (every ~45 s per process).
        self._server.send(salts)
        answer = self._server.recv()
        if isinstance(answer, str):
            raise ValueError(answer)
        access, refresh = answer
        return tuple(access), tuple(refresh)


class PositionsServer:
    """The parent's side: one module loaded once, a pipe per extract process, answered between the parent's
    other waits (`ExtractProcesses.collect`)."""

    def __init__(self, ctx: BaseContext, scheme: TokenScheme) -> None:
        self._ctx = ctx
        self._scheme = scheme
        self._source: api.PositionSource | None = None
        self._pipes: list[Connection] = []

    def scheme_for_child(self) -> TokenScheme:
        """The scheme an extract process gets: the parent's pipe in place of the module."""
        if self._scheme.wasm_path is None:
            return self._scheme  # the formula: nothing to ask for
        if self._source is None:
            self._source = self._scheme.positions()
        ours, theirs = self._ctx.Pipe(duplex=True)
        self._pipes.append(ours)
        return replace(self._scheme, server=theirs)

    @property
    def pipes(self) -> list[Connection]:
        return list(self._pipes)

    def answer(self, ready: Sequence[Any]) -> None:
        """Answer each pipe in `ready` that has a question; forget those whose process has gone. A Ctrl-C waits
        for the answer to be sent: a question read and left unanswered would hang its process for good."""
        for pipe in [pipe for pipe in self._pipes if pipe in ready]:
            with ctrl_c_deferred():
                self._answer_one(pipe)

    def _answer_one(self, pipe: Connection) -> None:
        try:
            salts = pipe.recv()
        except (EOFError, OSError):
            self._drop(pipe)
            return
        assert self._source is not None
        try:
            answer: Any = self._source(dict(zip(_SALT_NAMES, salts, strict=True)))
        except ValueError as exc:
            answer = str(exc)
        try:
            pipe.send(answer)
        except OSError:
            self._drop(pipe)

    def _drop(self, pipe: Connection) -> None:
        pipe.close()
        self._pipes.remove(pipe)

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.close()
        self._pipes.clear()


def cache_dir(output: Path) -> Path:
    return output / "state" / "css-wasm"


def machine_cache_dir(state_dir: Path) -> Path:
    """Every output's runs on this machine cache the modules here too: a new output directory still has the
    site's last module to fall back on."""
    return state_dir / "css-wasm"


async def prepare(client: NepseClient, output: Path, state_dir: Path | None = None) -> TokenScheme:
    """Fetch, check and cache the site's css.wasm; say once if the built-in formula must be used."""
    caches = [cache_dir(output)] + ([machine_cache_dir(state_dir)] if state_dir is not None else [])
    try:
        wasm = await client.get_asset(api.CSS_WASM_PATH, MAX_WASM_BYTES)
        source = WasmPositions(wasm)
        disagreement = first_disagreement(source)
    except FetchError as error:
        return _fallback(f"css.wasm could not be fetched from {client.base_url}{api.CSS_WASM_PATH} "
                         f"({error.describe()})", caches)
    except (WasmUnusable, ValueError) as exc:
        return _fallback(f"css.wasm from {client.base_url}{api.CSS_WASM_PATH} does not load ({exc})", caches)
    path = _save(wasm, source.sha256, caches[0])
    for shared in caches[1:]:
        with contextlib.suppress(OSError):  # a copy for other outputs: this run has what it needs
            _save(wasm, source.sha256, shared)
    if disagreement is not None:
        logger.warning(f"css.wasm {source.sha256[:16]} places the token junk characters differently from the "
                       "built-in formula (NEPSE has changed its scheme): following css.wasm")
    logger.info(f"token junk positions from css.wasm {source.sha256[:16]} (cached in {path})")
    return TokenScheme(path)


def _fallback(reason: str, caches: Sequence[Path]) -> TokenScheme:
    """The module an earlier run cached, newest first, when one still loads; else the built-in formula.
    The site's scheme changes rarely, and its last module is a better guess than a formula written for an
    older one."""
    for path in _cached_newest_first(caches):
        try:
            source = WasmPositions(path.read_bytes())
            first_disagreement(source)  # runs every export: a module that traps is passed over here
        except (OSError, WasmUnusable, ValueError) as exc:
            logger.debug(f"cached {path} passed over: {exc}")
            continue
        scheme = TokenScheme(path, reason, cached_age=_age(time.time() - path.stat().st_mtime))
        logger.warning(f"{reason}: using {scheme.stand_in} ({source.sha256[:16]}, {path})")
        return scheme
    scheme = TokenScheme(None, reason)
    logger.warning(f"{reason}: using {scheme.stand_in}")
    return scheme


def _cached_newest_first(caches: Sequence[Path]) -> list[Path]:
    """The cached modules, the one the site served most recently first (`_save` dates each on every serve)."""
    dated: list[tuple[float, Path]] = []
    for cache in caches:
        try:
            dated += [(path.stat().st_mtime, path) for path in cache.glob("*.wasm") if path.is_file()]
        except OSError:
            continue
    return [path for _, path in sorted(dated, reverse=True)]


def _age(seconds: float) -> str:
    """'3 days', '5 hours', '12 minutes'."""
    for unit, length in (("day", 86_400), ("hour", 3_600)):
        if seconds >= 2 * length:
            return count_noun(int(seconds // length), unit)
    return count_noun(max(int(seconds // 60), 0), "minute")


def _save(wasm: bytes, digest: str, directory: Path) -> Path:
    """Cache the module by content hash; a module already cached is dated anew (the site served it now)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{digest}.wasm"
    if path.exists():
        path.touch()
    else:
        partial = path.with_suffix(".wasm.tmp")
        partial.write_bytes(wasm)
        partial.replace(path)
    return path
