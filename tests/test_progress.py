"""What a person sees: plain lines, live bars, the end-of-run summary."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from typing import Any

from rich.console import Console

from etl.events import (
    CompanyDone,
    CompanyFailed,
    Event,
    RateChanged,
    TypeEnd,
    TypeStart,
    as_extra,
)
from etl.progress import TypeProgress, make_display, render_summary

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def event(carried: Event, label: str = "prices") -> dict:
    """A record as the LogHub hands it to the display."""
    return {
        "time": time.time(),
        "level": carried.level,
        "message": carried.describe(),
        "label": label,
        "pid": 1,
        "extra": as_extra(carried),
        "exception": None,
    }


def line(message: str, level: str = "WARNING", label: str = "prices", exception: str | None = None) -> dict:
    return {
        "time": time.time(),
        "level": level,
        "message": message,
        "label": label,
        "extra": {},
        "exception": exception,
    }


def done(symbol: str, type_: str = "prices", rows: int = 251) -> dict:
    return event(CompanyDone(type=type_, symbol=symbol, rows=rows, requests=1, retries=0))


def failed(symbol: str, type_: str = "prices") -> dict:
    return event(CompanyFailed(type=type_, symbol=symbol, reason="HTTP 502", attempts=5, requests=1, retries=0))


def start(type_: str = "prices", total: int = 600, skipped: int = 12) -> dict:
    return event(TypeStart(type=type_, total=total, skipped=skipped, budget_rps=5.0))


RUN = [
    start(),
    done("NABIL"),
    failed("ADBL"),
    event(RateChanged(rate=2.5, old_rate=5.0, reason="HTTP 429")),
    event(RateChanged(rate=2.5, old_rate=5.0, reason="HTTP 429"), label="reports"),
    line("slow answer [42 s]"),
    line("connection reset", level="ERROR", exception="Traceback ...\nConnectionResetError: peer"),
    line("an info line", level="INFO"),
    line("a debug line", level="DEBUG"),
    done("SCB", rows=1),
    event(TypeEnd(type="prices", requests=3, retries=0, throttle_events=1)),
]


def run_display(mode: str, records: list[dict], verbose: bool = False) -> list[str]:
    buffer = io.StringIO()
    display = make_display(mode, Console(file=buffer, width=100), 5.0, verbose=verbose)
    with display:
        for record in records:
            display.handle(record)
    return buffer.getvalue().splitlines()


def test_plain_mode_prints_one_seed_format_line_per_event() -> None:
    assert run_display("plain", RUN) == [
        "prices: 600 companies to fetch, 12 already complete",
        "prices [1/600] NABIL done (251 records)",
        "prices [2/600] ADBL failed: HTTP 502 after 5 attempts",
        "prices: request rate now 2.5 req/s (HTTP 429)",
        "WARNING: prices: slow answer [42 s]",
        "ERROR: prices: connection reset (ConnectionResetError: peer)",
        "prices [3/600] SCB done (1 record)",
        "prices: finished: 3 requests, 0 retries, 1 throttle event",
    ]


def test_verbose_plain_mode_adds_info_and_debug_lines() -> None:
    lines = run_display("plain", RUN, verbose=True)
    assert "INFO: prices: an info line" in lines
    assert "DEBUG: prices: a debug line" in lines


def test_quiet_mode_shows_only_warnings_and_errors() -> None:
    assert run_display("quiet", RUN) == [
        "prices [2/600] ADBL failed: HTTP 502 after 5 attempts",
        "prices: request rate now 2.5 req/s (HTTP 429)",
        "WARNING: prices: slow answer [42 s]",
        "ERROR: prices: connection reset (ConnectionResetError: peer)",
    ]


def test_counters_are_per_type_and_count_done_and_failed_from_many_threads() -> None:
    per_thread = 50
    buffer = io.StringIO()
    display = make_display("plain", Console(file=buffer, width=100), 5.0)
    display.handle(start("prices", total=4 * per_thread, skipped=0))
    display.handle(start("reports", total=1, skipped=0))

    def feed(worker: int) -> None:
        for n in range(per_thread):
            display.handle(done(f"S{worker}-{n}") if n % 5 else failed(f"S{worker}-{n}"))

    threads = [threading.Thread(target=feed, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    display.handle(done("NABIL", type_="reports"))

    lines = buffer.getvalue().splitlines()
    counters = [int(match.group(1)) for text in lines if (match := re.match(r"prices \[(\d+)/200\]", text))]
    assert counters == list(range(1, 201))
    assert lines[-1] == "reports [1/1] NABIL done (251 records)"
    stats = display.stats("prices")
    assert (stats.done, stats.failed, stats.rows) == (160, 40, 160 * 251)


def test_request_rate_uses_a_sliding_window_then_the_average() -> None:
    stats = TypeProgress("prices", budget_rps=5.0)
    stats.apply(TypeStart(type="prices", total=30, skipped=0, budget_rps=5.0), at=0.0)
    for second in range(1, 21):  # requests are running totals
        stats.apply(CompanyDone(type="prices", symbol="S", rows=1, requests=2 * second, retries=0), at=float(second))
    assert stats.rate(now=20.0) == (2 * 6) / 5.0  # completions at 15..20 s
    assert stats.rate(now=40.0) == 0.0  # idle: the window has emptied
    stats.apply(TypeEnd(type="prices", requests=40, retries=0, throttle_events=0), at=20.0)
    assert stats.rate(now=99.0) == 2.0


def test_live_mode_draws_a_bar_per_type_and_prints_warnings_above() -> None:
    buffer = io.StringIO()
    display = make_display("live", Console(file=buffer, force_terminal=True, width=120), 5.0)
    with display:
        for type_ in ("prices", "dividends"):
            display.handle(start(type_, total=2, skipped=0))
            display.handle(done("NABIL", type_=type_))
        display.handle(failed("ADBL", type_="dividends"))
    text = ANSI.sub("", buffer.getvalue())
    assert "dividends [2/2] ADBL failed: HTTP 502 after 5 attempts" in text
    final_frame = text.rsplit("\r", 1)[-1]
    assert re.search(r"prices .* 1/2 .*251 rows", text)
    assert re.search(r"dividends .* 2/2 .*251 rows .*1 failed", final_frame)


REPORT: dict[str, Any] = {
    "exit_code": 1,
    "database": "/data/output/nepse.db",
    "report_path": "/data/output/reports/run-1.json",
    "log_path": "/data/output/logs/run-1.log",
    "types": {
        "prices": {
            "companies_ok": 583,
            "companies_failed": 55,
            "companies_skipped": 12,
            "new": 145_230,
            "flagged": 37,
            "requests": 1_204,
            "achieved_rps": 4.93,
            "elapsed_s": 125.2,
            "errors": [{"type": "prices", "symbol": f"S{n}", "reason": "HTTP 502", "attempts": 5} for n in range(55)],
        },
        "profiles": {},
    },
}


def render(report: dict) -> list[str]:
    buffer = io.StringIO()
    render_summary(report, Console(file=buffer, no_color=True))
    return buffer.getvalue().splitlines()


def test_summary_lists_totals_failures_paths_and_exit_code() -> None:
    lines = render(REPORT)
    assert lines[:2] == [
        "Prices: 145,230 new records, 12 skipped, 55 errors",
        "Profiles: 0 new records, 0 skipped, 0 errors",
    ]
    assert re.search(r"^ prices +583 +55 +12 +145,230 +0 +0 +37 +0 +1,204 +0 +0 +4\.9 +2m 05s$", "\n".join(lines), re.M)
    assert re.search(r"^ profiles( +0){11} +- +-$", "\n".join(lines), re.M)
    failures = lines.index("Failures (55):")
    assert lines[failures + 1] == "  prices S0: HTTP 502 (5 attempts)"
    assert lines[failures + 50] == "  prices S49: HTTP 502 (5 attempts)"
    assert lines[failures + 51] == "  ... and 5 more"
    assert lines[-4:] == [
        "Database: /data/output/nepse.db",
        "Run report: /data/output/reports/run-1.json",
        "Log: /data/output/logs/run-1.log",
        "Exit code: 1 (finished with some failures)",
    ]


def test_summary_of_a_sparse_report_implies_the_exit_code() -> None:
    assert render({"interrupted": True})[-1] == "Exit code: 130 (interrupted)"
    lines = render({"types": {"prices": {"companies_ok": 3}}})
    assert "No failures." in lines and "Database: -" in lines
    assert lines[-1] == "Exit code: 0 (success)"


LIVE_SCRIPT = """
import time
from etl.events import CompanyDone, TypeStart, as_extra
from etl.progress import choose_mode, make_display

def send(event):
    display.handle({"time": time.time(), "level": "INFO", "message": event.describe(),
                    "label": event.type, "pid": 0, "extra": as_extra(event), "exception": None})

mode = choose_mode()
print("mode=" + mode)
display = make_display(mode, None, 5.0)
display.start()
for type_ in ("prices", "reports"):
    send(TypeStart(type=type_, total=3, skipped=1, budget_rps=5.0))
for symbol in ("NABIL", "ADBL", "NICA"):
    for type_ in ("prices", "reports"):
        send(CompanyDone(type=type_, symbol=symbol, rows=100, requests=1, retries=0))
    time.sleep(0.1)
display.stop()
"""


def read_terminal(master: int, process: subprocess.Popen, timeout: float = 20.0) -> str:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child's side of the terminal is closed
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_live_display_in_a_real_pseudo_terminal() -> None:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    env = {key: value for key, value in os.environ.items() if key not in {"NO_COLOR", "FORCE_COLOR", "COLUMNS"}}
    env["TERM"] = "xterm-256color"
    process = subprocess.Popen(
        [sys.executable, "-c", LIVE_SCRIPT], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    try:
        output = read_terminal(master, process)
        assert process.wait(timeout=20) == 0, output
    finally:
        os.close(master)
    text = ANSI.sub("", output)
    assert "Traceback" not in text
    assert "mode=live" in text
    final_frame = text.rsplit("mode=live", 1)[-1]
    assert re.search(r"prices .*3/3 .*300 rows", final_frame)
    assert re.search(r"reports .*3/3 .*300 rows", final_frame)


def test_live_mode_sums_the_types_against_the_host_budget() -> None:
    buffer = io.StringIO()
    display = make_display("live", Console(file=buffer, force_terminal=True, width=160), 5.0)
    with display:
        for type_ in ("prices", "reports"):
            display.handle(start(type_, total=2, skipped=0))
            display.handle(done("NABIL", type_=type_))
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    assert "all types" in screen and "2/4" in screen
    assert "/5 req/s" in screen  # only the host row is set against the budget
    assert re.search(r"prices .* 1/2 .*\d\.\d req/s", screen)


def test_the_summary_never_says_no_failures_beside_a_failing_exit_code() -> None:
    quarantined = render({"types": {"prices": {"companies_ok": 3}},
                          "bad_files": ["/o/raw/prices/symbol=X/part.parquet"]})
    assert "No failures." not in quarantined
    assert "1 raw file quarantined: see /o/quarantine/files" in "\n".join(quarantined)
    assert quarantined[-1] == "Exit code: 1 (finished with some failures)"
    fatal = render({"types": {"prices": {}}, "fatal_error": "cannot get the company list from http://x: HTTP 502"})
    assert "No failures." not in fatal
    assert "Run failed before the end: the error above says why (also in the run report)." in fatal
    assert not any("completed companies are not fetched again" in line for line in fatal)
    assert fatal[-1] == "Exit code: 1 (finished with some failures)"


def test_advice_comes_from_the_failure_table_one_line_per_cause() -> None:
    from etl.failures import advice_for

    errors = [{"symbol": "A", "reason": "response over the 32 MB cap", "attempts": 1, "outcome": "body_too_large"},
              {"symbol": "B", "reason": "HTTP 401 on a token proven just before", "attempts": 2,
               "outcome": "auth_rejected"},
              {"symbol": "C", "reason": "HTTP 502", "attempts": 6, "outcome": "http_5xx"},
              {"symbol": "D", "reason": "HTTP 502", "attempts": 6, "outcome": "http_5xx"}]
    text = "\n".join(render({"types": {"prices": {"companies_failed": 4, "errors": errors}}}))
    for outcome in ("body_too_large", "auth_rejected", "http_5xx"):
        assert text.count(advice_for(outcome)) == 1, outcome
    assert text.count("--max-rps") == 1  # only the server-trouble cause suggests a lower rate
    assert "Re-run the same command to fetch what is missing" in text


def test_a_hostile_symbol_reaches_the_screen_escaped() -> None:
    hostile = "EVIL\x1b[2J\u202eX"
    buffer = io.StringIO()
    display = make_display("plain", Console(file=buffer, no_color=True), 5.0)
    display.handle(event(CompanyFailed(type="prices", symbol=hostile, reason=f"bad {hostile}", attempts=1,
                                       requests=1, retries=0)))
    lines = render({"types": {"prices": {"companies_failed": 1, "errors": [
        {"symbol": hostile, "reason": "HTTP 404", "attempts": 1}]}}})
    shown = buffer.getvalue() + "\n".join(lines)
    assert "\x1b" not in shown and "\u202e" not in shown
    assert "EVIL\\x1b[2J\\u202eX" in buffer.getvalue() and "EVIL\\x1b[2J\\u202eX" in "\n".join(lines)
