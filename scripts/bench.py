#!/usr/bin/env python3
"""Benchmark nepse-etl against the bundled simulator on loopback (issue #6).

Runs the real CLI (`scripts/backfill.py`) as a subprocess against `etl.simulator` on 127.0.0.1
and reports calls, wall time, the ideal time (calls / budget), utilization, the simulator's highest
one-second window of request starts, CPU seconds, peak memory of the CLI's process tree, the load
stage's rows per second, the time of a `--load-only` re-run and rows lost. In the same run, on the
same simulator: the seed's design and a plain sequential loop (scripts/bench_baselines.py), nepse-etl
again at the seed's measured peak rate, nepse-etl at other company counts (memory), and a load-stage
benchmark on ~150,000 price rows.

Measurement notes:
- CPU seconds: `resource.getrusage(RUSAGE_CHILDREN)` of this process, before and after the CLI
  subprocess. It covers the CLI and every descendant it waited for (the pool workers, the log
  manager); the simulator is a separate child that is still running, so it is not included. Split by
  process (`cpu_s_by_process`): each type's process as it measured itself (the run report's `cpu_s`),
  the log manager and the resource tracker as last sampled, the parent as the rest of the total.
- Peak memory: the sum of RSS over the CLI process and all its descendants, sampled every 0.2 s
  with psutil (shared pages are counted once per process, so this errs high). Beside it, the peak sums
  of USS (pages no other process maps) and PSS (each shared page split between the processes mapping
  it: the tree's real share of the machine's memory), from the same samples. The RSS of a shared
  library's pages depends on the state of the page cache (the kernel maps a whole cached folio on a
  fault): the same code and package versions measured 653 MB from one virtualenv and 822 MB from
  another (libarrow 13.9 against 29.4 MB in each process), with the same USS. Compare RSS only between
  runs of the same interpreter and virtualenv (--cli-repo changes the code, not the packages).
- Start-up CPU: CPU seconds each type's process spent before its first request (interpreter start,
  imports, arguments), which it reports in the run report (`types.*.startup_cpu_s`); part of the CPU s.
- Extract time: the longest `types.*.elapsed_s` of the run report (the pool phase, after the company
  list); extract utilization = the requests of the four types / extract time / budget. Whole-run
  utilization = all simulator calls / process wall time / budget.

`python scripts/bench.py --quick` is a one-minute sanity check.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench_baselines import (  # noqa: E402
    TYPE_NAMES,
    BaselineResult,
    Window,
    expected_keys,
    run_seed_design,
    run_sequential,
)

from etl.eventlog import EVENTS_SUFFIX, read_events  # noqa: E402
from etl.settings import nepal_today  # noqa: E402
from etl.simulator import SimConfig, SimulatorProcess  # noqa: E402
from etl.simulator.config import FAULT_RATE_FIELDS  # noqa: E402
from etl.simulator.stats import max_starts_in_window  # noqa: E402

BACKFILL = REPO_ROOT / "scripts" / "backfill.py"
SAMPLE_INTERVAL_S = 0.2
TARGET_UTILIZATION_CLEAN = 0.95
TARGET_UTILIZATION_FAULTS = 0.85
TARGET_LOAD_ROWS_PER_S = 150_000
MB = 1024 * 1024


# ---- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--companies", type=int, default=600, help="companies in the simulator's list (default 600)")
    parser.add_argument("--max-rps", type=float, default=5.0, help="nepse-etl's host budget, req/s (default 5)")
    parser.add_argument("--pacing", type=float, default=0.2, help="nepse-etl's per-process pacing, s (default 0.2)")
    parser.add_argument("--latency-median", type=float, default=0.3, help="log-normal latency median, s (0.3)")
    parser.add_argument("--latency-sigma", type=float, default=0.7, help="log-normal latency sigma (0.7)")
    parser.add_argument("--faults", type=float, default=0.0,
                        help="total fault probability, spread evenly over " + ", ".join(FAULT_RATE_FIELDS))
    parser.add_argument("--seed", type=int, default=42, help="simulator data seed (default 42)")
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[300],
                        help="extra company counts to run nepse-etl at, for peak memory (default 300)")
    parser.add_argument("--load-companies", type=int, default=1170,
                        help="simulator companies for the load benchmark (1170 -> ~150,000 price rows)")
    parser.add_argument("--skip-baselines", action="store_true", help="no seed / sequential / equal-peak runs")
    parser.add_argument("--skip-sequential", action="store_true", help="no sequential loop (it takes the longest)")
    parser.add_argument("--skip-load", action="store_true", help="no load-stage benchmark")
    parser.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    parser.add_argument("--keep", type=Path, default=None, help="keep the output directories under this path")
    targets = parser.add_argument_group(
        "budget-bound targets (issue 11)",
        "With --budgets, run only this matrix: nepse-etl --extract-only over a long price window at each budget, "
        "with and without faults, then peak memory at --target-memory-sizes.")
    targets.add_argument("--budgets", type=float, nargs="*", default=[],
                         help="host budgets to run at, req/s (e.g. 5 10 40)")
    targets.add_argument("--fault-rates", type=float, nargs="*", default=[0.0, 0.05],
                         help="total fault probabilities to run each budget with (default 0 0.05)")
    targets.add_argument("--window-years", type=int, default=10, help="price window in years (default 10)")
    targets.add_argument("--subset", type=str, nargs="*", default=[],
                         help="BUDGET=COMPANIES: a proportional subset at that budget when the whole market "
                              "would not fit (e.g. 5=300)")
    targets.add_argument("--target-memory-sizes", type=int, nargs="*", default=[300, 600],
                         help="company counts for peak memory, at the highest budget, no faults (default 300 600)")
    targets.add_argument("--parse-only", action="store_true",
                         help="only the parse CPU comparison (seconds; no simulator runs)")
    targets.add_argument("--cli-repo", type=Path, default=REPO_ROOT,
                         help="checkout whose scripts/backfill.py is run (another commit, for before/after)")
    targets.add_argument("--types", default="",
                         help="nepse-etl --types for these runs (default: every type; e.g. "
                              "prices,reports,dividends,profiles for the four types issue 11 measured memory with)")
    targets.add_argument("--start-method", default="",
                         help="nepse-etl --start-method for these runs (default: the CLI's own; e.g. forkserver)")
    parser.add_argument("--quick", action="store_true",
                        help="sanity check in about a minute: 60 companies, 40 req/s, small load and memory runs")
    return parser


def apply_quick(args: argparse.Namespace) -> argparse.Namespace:
    if args.quick:
        args.companies, args.max_rps, args.pacing = 60, 40.0, 0.05
        args.latency_median, args.memory_sizes, args.load_companies = 0.05, [30], 120
    return args


def sim_config(args: argparse.Namespace, n_companies: int, latency: bool = True, faults: float | None = None,
               history_days: int = 365) -> SimConfig:
    share = (args.faults if faults is None else faults) / len(FAULT_RATE_FIELDS) if latency else 0.0
    return SimConfig(
        seed=args.seed,
        n_companies=n_companies,
        history_days=history_days,
        latency_median_s=args.latency_median if latency else 0.0,
        latency_sigma=args.latency_sigma if latency else 0.0,
        **dict.fromkeys(FAULT_RATE_FIELDS, share),
    )


# ---- running the CLI and watching its process tree


def clean_environment() -> dict[str, str]:
    """The environment without NEPSE_* settings and without proxies (loopback only)."""
    return {key: value for key, value in os.environ.items()
            if not key.startswith("NEPSE_") and "proxy" not in key.lower()}


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants until stopped, and the CPU seconds of each
    (the last reading before it ended, so up to one interval short)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_rss = 0
        self.peak_uss = 0
        self.peak_pss = 0
        self.peak_processes = 0
        self.cpu_s: dict[int, float] = {}
        self.cmdlines: dict[int, str] = {}
        self.created: dict[int, float] = {}
        self._stop_event = threading.Event()

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        rss = uss = pss = 0
        for process in processes:
            try:
                with process.oneshot():
                    memory = process.memory_full_info()
                    times = process.cpu_times()
                    if process.pid not in self.cmdlines:
                        self.cmdlines[process.pid] = " ".join(process.cmdline())
                        self.created[process.pid] = process.create_time()
            except psutil.Error:
                continue
            rss, uss, pss = rss + memory.rss, uss + memory.uss, pss + getattr(memory, "pss", 0)
            self.cpu_s[process.pid] = times.user + times.system
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_uss = max(self.peak_uss, uss)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_processes = max(self.peak_processes, len(processes))

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._sample()
            self._stop_event.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def cpu_by_process(sampler: TreeSampler, report: dict[str, Any], total_s: float) -> dict[str, float]:
    """CPU seconds of each process of the CLI's tree: each type's process as it measured itself (the run report's
    `cpu_s`), the resource tracker and the log manager (multiprocessing's Manager, the first other child) as
    sampled, and the parent as what is left of the whole tree's total (so the end of the run is counted)."""
    types = {name: float(entry.get("cpu_s") or 0.0) for name, entry in report.get("types", {}).items()}
    type_pids = {int(entry.get("pid") or 0) for entry in report.get("types", {}).values()}
    children = sorted((pid for pid in sampler.cpu_s if pid != sampler.pid and pid not in type_pids),
                      key=lambda pid: sampler.created.get(pid, 0.0))
    tracker = [pid for pid in children if "resource_tracker" in sampler.cmdlines.get(pid, "")]
    others = [pid for pid in children if pid not in tracker]
    breakdown = {"log manager": sum(sampler.cpu_s[pid] for pid in others[:1]),
                 "resource tracker": sum(sampler.cpu_s[pid] for pid in tracker),
                 **{f"type {name}": seconds for name, seconds in types.items()}}
    if others[1:]:
        breakdown["other children"] = sum(sampler.cpu_s[pid] for pid in others[1:])
    breakdown["parent"] = max(0.0, total_s - sum(breakdown.values()))
    return {name: round(seconds, 2) for name, seconds in breakdown.items()}


@dataclass
class CliRun:
    argv: list[str]
    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    peak_uss_mb: float
    peak_pss_mb: float
    peak_processes: int
    report: dict[str, Any]
    stderr_tail: str
    cpu_by_process: dict[str, float]


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def newest_report(output: Path) -> dict[str, Any]:
    reports = sorted((output / "runs").glob("*.json"), key=lambda path: path.stat().st_mtime)
    return json.loads(reports[-1].read_text()) if reports else {}


def run_cli(output: Path, options: list[str], backfill: Path = BACKFILL, state_dir: Path | None = None) -> CliRun:
    argv = [sys.executable, str(backfill), "--output", str(output), "--quiet", *options]
    cpu_before = children_cpu_s()
    started = time.monotonic()
    environment = clean_environment()
    # A host budget of its own, not shared with anything else running on this machine.
    environment["NEPSE_STATE_DIR"] = str(state_dir or output.with_name(output.name + "-state"))
    with tempfile.TemporaryDirectory(prefix="nepse-bench-cwd-") as cwd:
        process = subprocess.Popen(argv, cwd=cwd, env=environment,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sampler = TreeSampler(process.pid)
        sampler.start()
        _, stderr = process.communicate()
        wall_s = time.monotonic() - started
        sampler.stop()
    cpu_s, report = children_cpu_s() - cpu_before, newest_report(output)
    return CliRun(argv, process.returncode, wall_s, cpu_s, sampler.peak_rss / MB, sampler.peak_uss / MB,
                  sampler.peak_pss / MB, sampler.peak_processes, report, stderr[-2000:],
                  cpu_by_process(sampler, report, cpu_s))


# ---- rows lost


def window_of_today() -> Window:
    until = nepal_today()
    return until - datetime.timedelta(days=365), until


def table_counts(db_path: Path) -> dict[str, int]:
    if not db_path.exists():
        return dict.fromkeys(TYPE_NAMES, 0)
    connection = sqlite3.connect(db_path)
    try:
        return {name: connection.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in TYPE_NAMES}
    except sqlite3.OperationalError:
        return dict.fromkeys(TYPE_NAMES, 0)
    finally:
        connection.close()


def rows_summary(expected: dict[str, int], got: dict[str, int]) -> dict[str, Any]:
    per_type = {name: {"expected": expected[name], "got": got.get(name, 0),
                       "lost": max(0, expected[name] - got.get(name, 0))} for name in TYPE_NAMES}
    return {"per_type": per_type, "expected": sum(expected.values()),
            "lost": sum(entry["lost"] for entry in per_type.values())}


# ---- scenarios


@dataclass
class Context:
    args: argparse.Namespace
    workdir: Path
    console: Console
    window: Window = field(default_factory=window_of_today)
    _expected: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict)

    def expected(self, n_companies: int) -> dict[str, int]:
        key = (self.args.seed, n_companies)
        if key not in self._expected:
            keys = expected_keys(self.args.seed, n_companies, self.window)
            self._expected[key] = {name: len(found) for name, found in keys.items()}
        return self._expected[key]

    def output_dir(self, label: str) -> Path:
        path = self.workdir / label.replace(" ", "-").replace("@", "at")
        path.mkdir(parents=True, exist_ok=False)
        return path


def sim_snapshot(sim: SimulatorProcess) -> dict[str, Any]:
    stats = sim.stats()
    stats.pop("starts", None)
    return stats


def sim_span_rate(stats: dict[str, Any]) -> float:
    """Request starts per second between the first and the last start the simulator saw."""
    first, last = stats.get("first_start"), stats.get("last_start")
    if first is None or last is None or last <= first:
        return 0.0
    return (stats["requests"] - 1) / (last - first)


def extract_figures(report: dict[str, Any], calls: int, wall_s: float, budget: float) -> dict[str, Any]:
    types = report.get("types", {})
    extract_s = max((entry.get("elapsed_s", 0.0) for entry in types.values()), default=0.0)
    type_requests = sum(entry.get("requests", 0) for entry in types.values())
    load = report.get("load", {})
    prices = load.get("prices", {})
    ideal_s = calls / budget
    return {
        "extract_s": extract_s,
        "ideal_s": ideal_s,
        "wall_over_ideal": wall_s / ideal_s if ideal_s else 0.0,
        "wall_target_s": 1.05 * ideal_s + 5.0,
        "utilization_extract": type_requests / extract_s / budget if extract_s else 0.0,
        "utilization_wall": calls / wall_s / budget if wall_s else 0.0,
        "retries": sum(entry.get("retries", 0) for entry in types.values()),
        "throttle_events": report.get("throttle_events", 0),
        "companies_failed": sum(entry.get("companies_failed", 0) for entry in types.values()),
        "load_s": sum(entry.get("seconds", 0.0) for entry in load.values()),
        "load_price_rows": prices.get("rows_read", 0),
        "load_price_rows_per_s": prices.get("rows_read", 0) / prices["seconds"] if prices.get("seconds") else 0.0,
    }


def process_figures(run: CliRun) -> dict[str, Any]:
    """Peak memory of the process tree, the CPU the type processes spent starting, the CPU of each process."""
    types = run.report.get("types", {}).values()
    return {"peak_rss_mb": run.peak_rss_mb, "peak_uss_mb": run.peak_uss_mb, "peak_pss_mb": run.peak_pss_mb,
            "peak_processes": run.peak_processes,
            "startup_cpu_s": sum(entry.get("startup_cpu_s", 0.0) for entry in types),
            "cpu_s_by_process": run.cpu_by_process, "load_average_after": os.getloadavg()}


def dir_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) if path.exists() else 0


def run_ours(context: Context, sim: SimulatorProcess, label: str, max_rps: float, pacing: float,
             load_only_rerun: bool = True) -> dict[str, Any]:
    context.console.print(f"[bold]{label}[/]: nepse-etl at {max_rps:g} req/s, pacing {pacing:g} s ...")
    output = context.output_dir(label)
    sim.reset_stats()
    run = run_cli(output, ["--base-url", sim.base_url, "--max-rps", f"{max_rps:g}", "--pacing", f"{pacing:g}"])
    stats = sim_snapshot(sim)
    result: dict[str, Any] = {
        "label": label, "kind": "nepse-etl", "n_companies": sim.config.n_companies,
        "max_rps": max_rps, "pacing": pacing, "exit_code": run.returncode,
        "calls": stats["requests"], "wall_s": run.wall_s, "cpu_s": run.cpu_s, **process_figures(run),
        "sim_max_starts_per_1s": stats["max_starts_per_1s"], "sim_max_in_flight": stats["max_in_flight"],
        "sim_span_rps": sim_span_rate(stats), "sim_status_counts": stats["status_counts"],
        **extract_figures(run.report, stats["requests"], run.wall_s, max_rps),
        "rows": rows_summary(context.expected(sim.config.n_companies), table_counts(output / "nepse.db")),
        "raw_zone_mb": dir_bytes(output / "raw") / MB,
        "db_mb": (output / "nepse.db").stat().st_size / MB if (output / "nepse.db").exists() else 0.0,
        "stderr_tail": run.stderr_tail if run.returncode not in (0, 1) else "",
    }
    if load_only_rerun:
        rerun = run_cli(output, ["--load-only"])
        result["load_only_rerun_s"] = rerun.wall_s
        result["load_only_rerun_exit_code"] = rerun.returncode
    return result


def run_reference(context: Context, sim: SimulatorProcess,
                  runner: Callable[[str, Window], BaselineResult]) -> dict[str, Any]:
    sim.reset_stats()
    baseline = runner(sim.base_url, context.window)
    stats = sim_snapshot(sim)
    got = {name: len(keys) for name, keys in baseline.keys.items()}
    return {
        "label": baseline.name, "kind": "baseline", "n_companies": sim.config.n_companies,
        "calls": stats["requests"], "wall_s": baseline.wall_s,
        "sim_max_starts_per_1s": stats["max_starts_per_1s"], "sim_max_in_flight": stats["max_in_flight"],
        "sim_span_rps": sim_span_rate(stats), "sim_status_counts": stats["status_counts"],
        "companies_failed": baseline.failures, "failure_reasons": baseline.failure_reasons,
        "rows": rows_summary(context.expected(sim.config.n_companies), got),
    }


def run_baselines(context: Context, sim: SimulatorProcess) -> list[dict[str, Any]]:
    args = context.args
    context.console.print("[bold]seed design[/]: 4 types in turn, 5 threads, 0.2 s sleep, no retry ...")
    seed = run_reference(context, sim, run_seed_design)
    results = [seed]
    peak = seed["sim_max_starts_per_1s"]
    if peak > 0:
        pacing = min(args.pacing, 4.0 / peak)
        results.append(run_ours(context, sim, f"nepse-etl @ seed peak {peak}", float(peak), pacing,
                                load_only_rerun=False))
    if not args.skip_sequential:
        context.console.print("[bold]sequential loop[/]: one request after another, no retry ...")
        results.append(run_reference(context, sim, run_sequential))
    return results


def run_memory_sizes(context: Context, main_result: dict[str, Any]) -> list[dict[str, Any]]:
    args = context.args
    results = []
    for n_companies in args.memory_sizes:
        with SimulatorProcess(sim_config(args, n_companies)) as sim:
            results.append(run_ours(context, sim, f"nepse-etl {n_companies} companies", args.max_rps, args.pacing,
                                    load_only_rerun=False))
    return sorted([*results, main_result], key=lambda entry: entry["n_companies"])


def run_load_benchmark(context: Context) -> dict[str, Any]:
    """Extract ~150k price rows at zero latency, then time --load-only into a fresh DB, twice."""
    args = context.args
    context.console.print(f"[bold]load[/]: extracting prices of {args.load_companies} companies (no latency) ...")
    output = context.output_dir("load")
    with SimulatorProcess(sim_config(args, args.load_companies, latency=False)) as sim:
        extract = run_cli(output, ["--base-url", sim.base_url, "--types", "prices", "--extract-only",
                                   "--max-rps", "200", "--pacing", "0"])
    passes = []
    for label in ("fresh database", "reload (all conflicts)"):
        context.console.print(f"[bold]load[/]: --load-only, {label} ...")
        run = run_cli(output, ["--load-only", "--types", "prices"])
        prices = run.report.get("load", {}).get("prices", {})
        seconds = prices.get("seconds", 0.0)
        rows = prices.get("rows_read", 0)
        passes.append({"label": label, "exit_code": run.returncode, "rows": rows, "new": prices.get("new", 0),
                       "updated": prices.get("updated", 0), "unchanged": prices.get("unchanged", 0),
                       "load_s": seconds, "rows_per_s": rows / seconds if seconds else 0.0,
                       "process_wall_s": run.wall_s, "rows_per_s_process": rows / run.wall_s if run.wall_s else 0.0,
                       "peak_rss_mb": run.peak_rss_mb, "cpu_s": run.cpu_s})
    return {"n_companies": args.load_companies, "extract_exit_code": extract.returncode,
            "extract_wall_s": extract.wall_s, "passes": passes}


# ---- budget-bound targets (issue 11): long window, several budgets, with and without faults

TARGET_MATRIX_UTIL = {False: 0.95, True: 0.90}  # extract utilization, without / with faults
TARGET_MATRIX_WALL = {False: 1.05, True: 1.10}  # wall <= factor x calls / budget + 5 s
# Peak summed RSS of the tree when issue 11 was filed (7 processes, four types): the target is below it.
ISSUE_11_PEAK_RSS_MB = 510
TARGET_FINISH_GAP = 0.05  # first-to-last type finish, as a fraction of the extract time
MATRIX_PACING_S = 0.01  # per-process pacing low enough never to be the limit


def client_max_starts_per_1s(output: Path) -> int:
    """The busiest one-second window of request starts as the CLI's own processes stamped them (the run's
    request events): beside the simulator's count it tells the client's spacing from the server's stamping."""
    starts = [event["started"] for path in (output / "runs").glob(f"*{EVENTS_SUFFIX}")
              for event in read_events(path) if event["event"] == "request" and "started" in event]
    return max_starts_in_window(starts)


def finish_gap_s(report: dict[str, Any]) -> float:
    """Seconds between the first and the last data type to finish (0 when the report does not say)."""
    stamps = [datetime.datetime.fromisoformat(entry["finished_at"])
              for entry in report.get("types", {}).values() if entry.get("finished_at")]
    return (max(stamps) - min(stamps)).total_seconds() if len(stamps) > 1 else 0.0


def run_target(context: Context, n_companies: int, budget: float, faults: float, purpose: str = "") -> dict[str, Any]:
    args = context.args
    days = 365 * args.window_years + args.window_years // 4
    since = (context.window[1] - datetime.timedelta(days=days)).isoformat()
    label = f"{budget:g} req/s, {faults:.0%} faults, {n_companies} companies{purpose}" + (
        f" ({args.types})" if args.types else "") + (f" ({args.start_method})" if args.start_method else "")
    context.console.print(f"[bold]{label}[/]: nepse-etl --extract-only, {args.window_years}-year window ...")
    output = context.output_dir(label.replace(",", "").replace("%", "pct").replace("/", "per"))
    config = sim_config(args, n_companies, faults=faults, history_days=days + 7)
    with SimulatorProcess(config) as sim:
        run = run_cli(output, ["--base-url", sim.base_url, "--max-rps", f"{budget:g}", "--pacing",
                               f"{MATRIX_PACING_S:g}", "--since", since, "--extract-only",
                               *(["--types", args.types] if args.types else []),
                               *(["--start-method", args.start_method] if args.start_method else [])],
                      backfill=args.cli_repo / "scripts" / "backfill.py")
        stats = sim_snapshot(sim)
    figures = extract_figures(run.report, stats["requests"], run.wall_s, budget)
    return {
        "label": label, "n_companies": n_companies, "max_rps": budget, "faults": faults,
        "exit_code": run.returncode, "calls": stats["requests"], "wall_s": run.wall_s,
        "ideal_s": figures["ideal_s"], "extract_s": figures["extract_s"],
        "utilization_extract": figures["utilization_extract"], "utilization_wall": figures["utilization_wall"],
        "wall_over_ideal": figures["wall_over_ideal"],
        "wall_target_s": TARGET_MATRIX_WALL[faults > 0] * figures["ideal_s"] + 5.0,
        "finish_gap_s": finish_gap_s(run.report),
        "cpu_s": run.cpu_s, "cpu_s_per_1000": run.cpu_s / stats["requests"] * 1000 if stats["requests"] else 0.0,
        **process_figures(run),
        "sim_max_starts_per_1s": stats["max_starts_per_1s"],
        "client_max_starts_per_1s": client_max_starts_per_1s(output), "retries": figures["retries"],
        "throttle_events": figures["throttle_events"], "companies_failed": figures["companies_failed"],
        "rows": sum(entry.get("rows_fetched", 0) for entry in run.report.get("types", {}).values()),
        "stderr_tail": run.stderr_tail if run.returncode not in (0, 1) else "",
    }


def measure_parse_cpu(seed: int, n_companies: int = 60, years: int = 10, repeats: int = 5) -> dict[str, Any]:
    """CPU seconds per 1,000 price rows for one page's work (decode, parse, Arrow table), in this process on
    the same pages: `json.loads` and the row parser (what every page took before) against the client's
    decoder and the columns."""
    from etl.datatypes.base import Company, Pages, rows_to_table
    from etl.datatypes.prices import PRICES
    from etl.payloads import parse_json_body
    from etl.simulator import SimData

    data = SimData(seed, n_companies=n_companies, history_days=365 * years)
    start, end = data.history_start, data.today
    pages: list[tuple[Company, bytes]] = []
    for company in (c for c in data.companies() if c["status"] == "A"):
        rows = data.prices(company["id"], start, end)
        for first in range(0, len(rows), 500):
            body = json.dumps({"content": rows[first:first + 500]}).encode()
            pages.append((Company(company["id"], company["symbol"].strip()), body))
    n_rows = sum(len(json.loads(body)["content"]) for _, body in pages)

    def row_parser(company: Company, body: bytes) -> None:
        rows_to_table(PRICES.parse(json.loads(body)["content"], company), PRICES, "t")

    def columns(company: Company, body: bytes) -> None:
        PRICES.to_table(Pages([PRICES.page_converter(company)(parse_json_body(body)["content"])]), company, "t")

    def decode_only(company: Company, body: bytes) -> None:
        json.loads(body)

    def cpu_per_1000(work: Callable[[Company, bytes], None]) -> float:
        best = float("inf")
        for _ in range(repeats):
            started = time.process_time()
            for company, body in pages:
                work(company, body)
            best = min(best, time.process_time() - started)
        return best / n_rows * 1000

    def decode_now(company: Company, body: bytes) -> None:
        parse_json_body(body)

    return {"rows": n_rows, "pages": len(pages), "decode_only": cpu_per_1000(decode_only),
            "decode_now": cpu_per_1000(decode_now),
            "row_parser": cpu_per_1000(row_parser), "columns": cpu_per_1000(columns)}


def subset_sizes(args: argparse.Namespace) -> dict[float, int]:
    sizes = {}
    for item in args.subset:
        budget, _, companies = item.partition("=")
        sizes[float(budget)] = int(companies)
    return sizes


def run_target_matrix(context: Context, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Every run, saved as it ends (a long matrix interrupted keeps what it measured)."""
    args = context.args
    subsets = subset_sizes(args)
    matrix: dict[str, Any] = {"runs": [], "memory": []}
    for budget in args.budgets:
        for faults in args.fault_rates:
            matrix["runs"].append(run_target(context, subsets.get(budget, args.companies), budget, faults))
            save(matrix)
    top = max(args.budgets)
    for n_companies in args.target_memory_sizes:
        same = [run for run in matrix["runs"]
                if (run["max_rps"], run["faults"], run["n_companies"]) == (top, 0.0, n_companies)]
        matrix["memory"].append(same[0] if same else run_target(context, n_companies, top, 0.0, " (memory)"))
        save(matrix)
    return matrix


def check_target_matrix(matrix: dict[str, Any]) -> list[dict[str, str]]:
    checks = []
    for run in matrix["runs"]:
        faulty = run["faults"] > 0
        util, wall = TARGET_MATRIX_UTIL[faulty], TARGET_MATRIX_WALL[faulty]
        gap_allowed = TARGET_FINISH_GAP * run["extract_s"]
        checks += [
            {"target": f"{run['label']}: extract utilization >= {util:.2f}",
             "measured": f"{run['utilization_extract']:.3f}", "verdict": verdict(run["utilization_extract"] >= util)},
            {"target": f"{run['label']}: wall <= {wall:.2f} x calls / budget + 5 s",
             "measured": f"{run['wall_s']:.1f} s vs {run['wall_target_s']:.1f} s",
             "verdict": verdict(run["wall_s"] <= run["wall_target_s"])},
            {"target": f"{run['label']}: first-to-last type finish <= 5 % of the extract",
             "measured": f"{run['finish_gap_s']:.1f} s of {run['extract_s']:.1f} s",
             "verdict": verdict(run["finish_gap_s"] <= gap_allowed)},
            {"target": f"{run['label']}: busiest second <= budget",
             "measured": f"{run['sim_max_starts_per_1s']} starts",
             "verdict": verdict(run["sim_max_starts_per_1s"] <= run["max_rps"])},
        ]
    sizes = matrix["memory"]
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        checks.append({"target": "peak RSS flat between company counts (within 10 %)",
                       "measured": f"{small['peak_rss_mb']:.0f} MB @ {small['n_companies']} -> "
                                   f"{large['peak_rss_mb']:.0f} MB @ {large['n_companies']}",
                       "verdict": verdict(large["peak_rss_mb"] <= 1.1 * small["peak_rss_mb"])})
    for size in sizes:
        checks.append({"target": f"peak RSS at {size['n_companies']} companies below {ISSUE_11_PEAK_RSS_MB} MB "
                                 "(issue 11's 'today')",
                       "measured": f"{size['peak_rss_mb']:.0f} MB (USS {size.get('peak_uss_mb', 0.0):.0f}, "
                                   f"PSS {size.get('peak_pss_mb', 0.0):.0f}; {size['peak_processes']} processes)",
                       "verdict": verdict(size["peak_rss_mb"] < ISSUE_11_PEAK_RSS_MB)})
    return checks


def matrix_table(title: str, entries: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in ("run", "calls", "wall s", "ideal s", "wall/ideal", "util extract", "finish gap s", "max 1 s",
                   "own max 1 s", "CPU s", "CPU s/1000 req", "start-up CPU s", "peak MB", "USS MB", "PSS MB",
                   "retries", "failed", "exit"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for entry in entries:
        table.add_row(entry["label"], str(entry["calls"]), f"{entry['wall_s']:.1f}", f"{entry['ideal_s']:.1f}",
                      f"{entry['wall_over_ideal']:.3f}", f"{entry['utilization_extract']:.3f}",
                      f"{entry['finish_gap_s']:.1f}", str(entry["sim_max_starts_per_1s"]),
                      str(entry.get("client_max_starts_per_1s", "-")), f"{entry['cpu_s']:.1f}",
                      f"{entry['cpu_s_per_1000']:.2f}", f"{entry.get('startup_cpu_s', 0.0):.2f}",
                      f"{entry['peak_rss_mb']:.0f}", f"{entry.get('peak_uss_mb', 0.0):.0f}",
                      f"{entry.get('peak_pss_mb', 0.0):.0f}", str(entry["retries"]),
                      str(entry["companies_failed"]), str(entry["exit_code"]))
    return table


def cpu_table(entries: list[dict[str, Any]]) -> Table:
    names = list(dict.fromkeys(name for entry in entries for name in entry.get("cpu_s_by_process", {})))
    table = Table(title="CPU seconds by process (types: as each process measured itself; parent: the rest)")
    for column in ("run", "calls", "CPU s", *names, "load avg after"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for entry in entries:
        split = entry.get("cpu_s_by_process", {})
        table.add_row(entry["label"], str(entry["calls"]), f"{entry['cpu_s']:.1f}",
                      *(f"{split[name]:.2f}" if name in split else "-" for name in names),
                      f"{entry.get('load_average_after', [0.0])[0]:.1f}")
    return table


# ---- targets


def verdict(passed: bool) -> str:
    return "met" if passed else "NOT met"


def check_targets(results: dict[str, Any]) -> list[dict[str, str]]:
    main = results["main"]
    faults = results["config"]["faults"]
    target = TARGET_UTILIZATION_FAULTS if faults > 0 else TARGET_UTILIZATION_CLEAN
    checks = [
        {"target": f"extract utilization >= {target:.2f} ({'with' if faults else 'no'} faults)",
         "measured": f"{main['utilization_extract']:.3f}", "verdict": verdict(main["utilization_extract"] >= target)},
        {"target": "wall <= 1.05 x ideal + 5 s",
         "measured": f"{main['wall_s']:.1f} s vs {main['wall_target_s']:.1f} s",
         "verdict": verdict(main["wall_s"] <= main["wall_target_s"])},
        {"target": "no rows lost", "measured": str(main["rows"]["lost"]),
         "verdict": verdict(main["rows"]["lost"] == 0)},
    ]
    references = {entry["label"]: entry for entry in results.get("baselines", [])}
    seed = references.get("seed design")
    ours_at_peak = next((entry for entry in results.get("baselines", []) if entry["kind"] == "nepse-etl"), None)
    if seed and ours_at_peak:
        faster = ours_at_peak["wall_s"] < seed["wall_s"]
        checks.append({"target": "faster than the seed at its peak rate, no rows lost",
                       "measured": f"{ours_at_peak['wall_s']:.1f} s (lost {ours_at_peak['rows']['lost']}) vs "
                                   f"{seed['wall_s']:.1f} s (lost {seed['rows']['lost']})",
                       "verdict": verdict(faster and ours_at_peak["rows"]["lost"] == 0)})
    load = results.get("load")
    if load:
        fresh = load["passes"][0]
        checks.append({"target": f"load >= {TARGET_LOAD_ROWS_PER_S:,} rows/s (fresh DB)",
                       "measured": f"{fresh['rows_per_s']:,.0f} rows/s on {fresh['rows']:,} rows",
                       "verdict": verdict(fresh["rows_per_s"] >= TARGET_LOAD_ROWS_PER_S)})
    sizes = results.get("memory", [])
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        growth = large["peak_rss_mb"] - small["peak_rss_mb"]
        data_growth = (large["raw_zone_mb"] + large["db_mb"]) - (small["raw_zone_mb"] + small["db_mb"])
        allowed = data_growth + 0.1 * small["peak_rss_mb"]
        checks.append({"target": "peak RSS grows no more than the data (+10 % slack)",
                       "measured": f"{small['peak_rss_mb']:.0f} MB @ {small['n_companies']} -> "
                                   f"{large['peak_rss_mb']:.0f} MB @ {large['n_companies']} (+{growth:.0f} MB; "
                                   f"data +{data_growth:.1f} MB)",
                       "verdict": verdict(growth <= allowed)})
    return checks


# ---- output


def runs_table(title: str, entries: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in ("run", "companies", "calls", "wall s", "ideal s", "wall/ideal", "util extract", "util wall",
                   "max 1 s", "CPU s", "peak MB", "load rows/s", "load-only s", "failed", "rows lost"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for entry in entries:
        ours = entry["kind"] == "nepse-etl"

        def value(key: str, fmt: str, entry: dict[str, Any] = entry) -> str:
            return format(entry[key], fmt) if key in entry else "-"

        table.add_row(entry["label"], str(entry["n_companies"]), str(entry["calls"]), value("wall_s", ".1f"),
                      value("ideal_s", ".1f"), value("wall_over_ideal", ".3f"), value("utilization_extract", ".3f"),
                      value("utilization_wall", ".3f"), str(entry["sim_max_starts_per_1s"]),
                      value("cpu_s", ".1f"), value("peak_rss_mb", ".0f"),
                      value("load_price_rows_per_s", ",.0f") if ours else "-", value("load_only_rerun_s", ".1f"),
                      str(entry["companies_failed"]), f"{entry['rows']['lost']} / {entry['rows']['expected']:,}")
    return table


def load_table(load: dict[str, Any]) -> Table:
    table = Table(title=f"Load stage: --load-only --types prices ({load['n_companies']} simulated companies)")
    for column in ("pass", "rows", "new", "updated", "unchanged", "load s", "rows/s", "process s",
                   "rows/s (process)", "peak MB"):
        table.add_column(column, justify="left" if column == "pass" else "right")
    for entry in load["passes"]:
        table.add_row(entry["label"], f"{entry['rows']:,}", f"{entry['new']:,}", f"{entry['updated']:,}",
                      f"{entry['unchanged']:,}", f"{entry['load_s']:.3f}", f"{entry['rows_per_s']:,.0f}",
                      f"{entry['process_wall_s']:.2f}", f"{entry['rows_per_s_process']:,.0f}",
                      f"{entry['peak_rss_mb']:.0f}")
    return table


def memory_table(entries: list[dict[str, Any]]) -> Table:
    table = Table(title="Peak memory of the CLI process tree (sums of RSS, USS and PSS, sampled every 0.2 s)")
    for column in ("companies", "calls", "peak MB", "USS MB", "PSS MB", "processes", "raw zone MB", "db MB", "rows"):
        table.add_column(column, justify="right")
    for entry in entries:
        table.add_row(str(entry["n_companies"]), str(entry["calls"]), f"{entry['peak_rss_mb']:.0f}",
                      f"{entry.get('peak_uss_mb', 0.0):.0f}", f"{entry.get('peak_pss_mb', 0.0):.0f}",
                      str(entry["peak_processes"]), f"{entry['raw_zone_mb']:.1f}", f"{entry['db_mb']:.1f}",
                      f"{entry['rows']['expected']:,}")
    return table


def targets_table(checks: list[dict[str, str]]) -> Table:
    table = Table(title="Targets")
    for column in ("target", "measured", "verdict"):
        table.add_column(column)
    for check in checks:
        table.add_row(check["target"], check["measured"], check["verdict"])
    return table


def render(console: Console, results: dict[str, Any]) -> None:
    config = results["config"]
    console.print(f"\nSimulator: seed {config['seed']}, {config['companies']} companies, latency log-normal median "
                  f"{config['latency_median']:g} s sigma {config['latency_sigma']:g}, faults {config['faults']:g}; "
                  f"nepse-etl budget {config['max_rps']:g} req/s, pacing {config['pacing']:g} s")
    console.print(runs_table("Extract + load runs", [results["main"], *results.get("baselines", [])]))
    if len(results.get("memory", [])) > 1:
        console.print(memory_table(results["memory"]))
    if results.get("load"):
        console.print(load_table(results["load"]))
    console.print(targets_table(results["targets"]))


def machine() -> dict[str, Any]:
    return {"nproc": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine()}


@contextmanager
def work_directory(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield Path(tempfile.mkdtemp(prefix="bench-", dir=keep))
        return
    with tempfile.TemporaryDirectory(prefix="nepse-bench-") as name:
        yield Path(name)


def run_all(context: Context) -> dict[str, Any]:
    args = context.args
    results: dict[str, Any] = {
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {key: value for key, value in vars(args).items() if key not in {"json", "keep"}},
        "price_window": [day.isoformat() for day in context.window],
    }
    with SimulatorProcess(sim_config(args, args.companies)) as sim:
        results["main"] = run_ours(context, sim, "nepse-etl", args.max_rps, args.pacing)
        if not args.skip_baselines:
            results["baselines"] = run_baselines(context, sim)
    main_for_memory = replace_label(results["main"])
    results["memory"] = run_memory_sizes(context, main_for_memory) if args.memory_sizes else [main_for_memory]
    if not args.skip_load:
        results["load"] = run_load_benchmark(context)
    results["targets"] = check_targets(results)
    return results


def replace_label(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "label": f"nepse-etl {entry['n_companies']} companies"}


def drop_proxy_settings() -> None:
    """urllib (the baselines, the simulator's stats) must talk to 127.0.0.1 directly."""
    for key in [key for key in os.environ if "proxy" in key.lower()]:
        del os.environ[key]


def run_matrix_only(context: Context) -> dict[str, Any]:
    args = context.args
    results: dict[str, Any] = {
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "load_average_before": os.getloadavg(),
        "config": {key: str(value) for key, value in vars(args).items() if key not in {"json", "keep"}},
    }
    context.console.print("[bold]parse CPU[/]: price pages, row parser against columns ...")
    results["parse_cpu"] = measure_parse_cpu(args.seed)

    def save(matrix: dict[str, Any]) -> None:
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({**results, "matrix": matrix}, indent=2, default=str))

    results["matrix"] = run_target_matrix(context, save) if not args.parse_only else {"runs": [], "memory": []}
    results["load_average_after"] = os.getloadavg()
    results["targets"] = check_target_matrix(results["matrix"])
    return results


def render_matrix(console: Console, results: dict[str, Any]) -> None:
    matrix = results["matrix"]
    console.print(matrix_table("Budget-bound runs (--extract-only)", matrix["runs"]))
    console.print(matrix_table("Peak memory at the highest budget, no faults", matrix["memory"]))
    console.print(cpu_table(matrix["runs"] + [run for run in matrix["memory"] if run not in matrix["runs"]]))
    parse = results["parse_cpu"]
    console.print(f"Parse CPU per 1,000 price rows ({parse['rows']:,} rows in {parse['pages']:,} pages; decode, "
                  f"parse, Arrow table; best of 5): before (json.loads + row parser) "
                  f"{parse['row_parser'] * 1000:.2f} ms, "
                  f"of which decoding {parse['decode_only'] * 1000:.2f} ms; now (orjson + columns) "
                  f"{parse['columns'] * 1000:.2f} ms, of which decoding {parse['decode_now'] * 1000:.2f} ms")
    console.print(f"load average before {results['load_average_before']}, after {results['load_average_after']}")
    console.print(targets_table(results["targets"]))


def main(argv: list[str] | None = None) -> int:
    args = apply_quick(build_parser().parse_args(argv))
    drop_proxy_settings()
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    with work_directory(args.keep) as workdir:
        context = Context(args, workdir, console)
        results = run_matrix_only(context) if args.budgets else run_all(context)
    (render_matrix if args.budgets else render)(console, results)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
        console.print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
