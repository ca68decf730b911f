"""Logging across processes: child records reach the parent's log file, complete and masked."""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from etl import logs
from etl.events import CompanyFailed, emit
from etl.logs import (
    LogHub,
    close_parent_logging,
    configure_parent_logging,
    flush_child_logging,
    install_child_logging,
    mask_secrets,
)

RECORDS_PER_CHILD = 2_000
CHILDREN = 2
TOKEN = "a1B2c3D4e5" * 15
SEQ = re.compile(r" seq=(\d+)")


def _log_then_exit_at_once(queue: Any, label: str) -> None:
    install_child_logging(queue, label)
    for seq in range(RECORDS_PER_CHILD):
        logger.bind(seq=seq, tags={"kind": "test"}).info("record {}", seq)
    logger.warning("calling with Authorization: Salter {}", TOKEN)
    os._exit(0)  # no atexit, no flush: every record must already be with the manager


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "logs" / "run.log"
    configure_parent_logging(path, console_level=None)
    yield path
    close_parent_logging()
    logger.add(sys.stderr)  # loguru's default sink, for whatever runs next


def _child_lines(text: str, label: str) -> list[str]:
    return [line for line in text.splitlines() if f" | {label} | " in line]


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_every_child_record_reaches_the_parent_file_in_order(method: str, log_file: Path) -> None:
    ctx = multiprocessing.get_context(method)
    received: list[dict] = []
    with LogHub(log_file, on_record=received.append, ctx=ctx) as hub:
        children = [ctx.Process(target=_log_then_exit_at_once, args=(hub.queue, f"child-{n}")) for n in range(CHILDREN)]
        for child in children:
            child.start()
        for child in children:
            child.join(timeout=60)
    assert [child.exitcode for child in children] == [0] * CHILDREN

    text = log_file.read_text(encoding="utf-8")
    for n in range(CHILDREN):
        lines = _child_lines(text, f"child-{n}")
        sequence = [int(match.group(1)) for line in lines if (match := SEQ.search(line))]
        assert sequence == list(range(RECORDS_PER_CHILD))
        assert lines[0].endswith(f"| INFO | child-{n} | record 0 seq=0 tags={{'kind': 'test'}}")
    assert len([record for record in received if record["label"] != "main"]) == CHILDREN * (RECORDS_PER_CHILD + 1)


def _run_child(method: str, log_file: Path, target: Any) -> tuple[list[dict], Any]:
    """Run `target(queue, "prices")` in a child under a LogHub; (the records the hub received, the child)."""
    ctx = multiprocessing.get_context(method)
    received: list[dict] = []
    with LogHub(log_file, on_record=received.append, ctx=ctx) as hub:
        child = ctx.Process(target=target, args=(hub.queue, "prices"))
        child.start()
        child.join(timeout=60)
    return received, child


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_child_secrets_are_masked_and_extra_survives(method: str, log_file: Path) -> None:
    received, child = _run_child(method, log_file, _log_then_exit_at_once)
    text = log_file.read_text(encoding="utf-8")
    assert TOKEN not in text
    assert "| WARNING | prices | calling with Authorization: Salter ***" in text
    first = received[0]
    assert first["extra"] == {"seq": 0, "tags": {"kind": "test"}}
    assert first["label"] == "prices" and first["level"] == "INFO" and first["pid"] == child.pid
    assert all(TOKEN not in record["message"] for record in received)


def test_a_missing_value_in_extra_stays_null_not_the_word_none() -> None:
    extra = {"status": None, "tags": {"kind": None}, "ids": [None, 3], "fine": True}
    assert logs._clean(extra) == {"status": None, "tags": {"kind": None}, "ids": [None, 3], "fine": True}


def test_reemitted_record_keeps_the_child_time_level_label_and_exception(log_file: Path) -> None:
    child_time = datetime(2001, 2, 3, 4, 5, 6, 789_000).timestamp()
    with LogHub(log_file) as hub:
        hub.queue.put(
            {
                "time": child_time,
                "level": "ERROR",
                "message": "disk {full}",
                "label": "reports",
                "pid": 4242,
                "extra": {"symbol": "NABIL"},
                "exception": "Traceback (most recent call last):\nOSError: no space left",
            }
        )
    text = log_file.read_text(encoding="utf-8")
    assert "2001-02-03 04:05:06.789 | ERROR | reports | disk {full}\nTraceback" in text
    assert "OSError: no space left symbol=NABIL" in text


def test_events_and_parent_records_reach_on_record_and_the_file(log_file: Path) -> None:
    received: list[dict] = []
    with LogHub(log_file, on_record=received.append):
        emit(CompanyFailed(type="prices", symbol="ADBL", reason="HTTP 502", attempts=5, requests=7, retries=2))
    assert len(received) == 1
    record = received[0]
    assert record["level"] == "WARNING" and record["label"] == "main"
    assert record["message"] == "failed: HTTP 502 after 5 attempts"
    assert record["extra"]["event"] == "company_failed" and record["extra"]["attempts"] == 5
    assert (
        "| WARNING | main | failed: HTTP 502 after 5 attempts "
        "event=company_failed type=prices symbol=ADBL reason=HTTP 502 attempts=5 requests=7 retries=2"
    ) in log_file.read_text(encoding="utf-8")


def test_a_failing_display_neither_stops_the_hub_nor_floods_the_log(log_file: Path) -> None:
    delivered: list[str] = []

    def flaky_display(record: dict) -> None:
        delivered.append(record["message"])
        raise RuntimeError("display bug")

    with LogHub(log_file, on_record=flaky_display, include_parent=False) as hub:
        for n in range(3):
            hub.queue.put({"time": 0.0, "level": "INFO", "message": f"m{n}", "label": "prices", "extra": {}})
    assert delivered == ["m0", "m1", "m2"]
    assert log_file.read_text(encoding="utf-8").count("progress display failed") == 1


def test_child_sink_falls_back_to_stderr_once_the_manager_is_gone(
    log_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = LogHub(log_file).start()
    install_child_logging(hub.queue, "prices")
    hub.stop()

    logger.info("after shutdown, token Salter {}", TOKEN)
    logger.info("and again")
    flush_child_logging()

    err = capsys.readouterr().err
    assert "prices | INFO | after shutdown, token Salter ***\n" in err
    assert "prices | INFO | and again\n" in err
    assert "Logging error" not in err and TOKEN not in err


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("headers={'Authorization': 'Salter abc.DEF-123'}", "headers={'Authorization': 'Salter ***'}"),
        ('{"accessToken": "eyJhbGciOi", "salt1": 27431}', '{"accessToken": "***", "salt1": 27431}'),
        ("refresh_token=abc123 ok", "refresh_token=*** ok"),
        ("Bearer xyz", "Bearer ***"),
        (f"raw {TOKEN} end", "raw *** end"),
    ],
)
def test_mask_secrets_hides_tokens(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


def test_mask_secrets_keeps_ordinary_text() -> None:
    text = "prices [12/600] NABIL done (251 records) /work/main/output/" + "/".join(["nepse"] * 30)
    assert mask_secrets(text) == text


def test_a_long_symbol_is_not_taken_for_a_token() -> None:
    symbol = "NABIL123" * 40  # 320 characters, upper case as the company list is parsed
    assert mask_secrets(f"prices [3/9] {symbol} done") == f"prices [3/9] {symbol} done"
    assert mask_secrets(f"raw {TOKEN} end") == "raw *** end"


def test_control_characters_from_a_server_string_are_escaped_for_display() -> None:
    from etl.logs import printable

    hostile = "AB\x1b[2J\x1b]0;pwned\x07C\u202eLIVE\u2066"
    shown = printable(hostile)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown and "\u2066" not in shown
    assert shown == "AB\\x1b[2J\\x1b]0;pwned\\x07C\\u202eLIVE\\u2066"
    assert printable("NABIL 2080/81 ठीक") == "NABIL 2080/81 ठीक"  # ordinary text, Devanagari included
    assert printable("line one\nline two", keep="\n") == "line one\nline two"
    # a kept character beside one that is not: the kept one stays, the other is still escaped
    assert printable("one\x1b[2J\ttwo\u202e\n", keep="\n\t") == "one\\x1b[2J\ttwo\\u202e\n"


def _mask_with_every_pattern(text: str) -> str:
    """mask_secrets without its shortcuts: every pattern, on every string."""
    for pattern, replacement in logs._SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return logs._LONG_RUN.sub(lambda match: "***" if logs._token_like(match.group()) else match.group(), text)


@pytest.mark.parametrize("text", [
    "GET /api/nots/market/history/security/131 {'page': 3, 'size': 500} -> 41,233 bytes in 0.081s",
    "AUTHORIZATION: abc123", "x-Access-Token=abc", "refreshToken: 'abc'", "BEARER abc", "salter",
    "\u017falter abc.DEF",  # a long s: IGNORECASE matches it to 's', so non-ASCII text takes every pattern
    "k" * 99 + "A1", TOKEN[:99], TOKEN[:100], f"id {TOKEN} and Salter {TOKEN}", "",
])
def test_mask_secrets_shortcuts_change_nothing(text: str) -> None:
    assert mask_secrets(text) == _mask_with_every_pattern(text)


class _CountingQueue:
    def __init__(self) -> None:
        self.puts: list[Any] = []

    def put(self, item: Any) -> None:
        self.puts.append(item)


def _install_counting(monkeypatch: pytest.MonkeyPatch, batch_s: float) -> _CountingQueue:
    monkeypatch.setattr(logs, "DEBUG_BATCH_S", batch_s)
    queue = _CountingQueue()
    install_child_logging(queue, "prices")
    return queue


@pytest.fixture
def restore_logger() -> Iterator[None]:
    yield
    logger.remove()
    logger.add(sys.stderr)


def _messages(item: Any) -> list[str]:
    return [record["message"] for record in (item if isinstance(item, list) else [item])]


def test_debug_records_travel_with_the_next_info_record_in_one_put(monkeypatch: pytest.MonkeyPatch,
                                                                   restore_logger: None) -> None:
    queue = _install_counting(monkeypatch, batch_s=3600)
    for n in range(5):
        logger.debug("request {}", n)
    assert queue.puts == []
    logger.info("company done")
    assert [_messages(item) for item in queue.puts] == [
        ["request 0", "request 1", "request 2", "request 3", "request 4", "company done"]]
    logger.warning("a warning alone")
    assert _messages(queue.puts[-1]) == ["a warning alone"]
    logger.debug("request 5")
    flush_child_logging()
    assert _messages(queue.puts[-1]) == ["request 5"]
    for n in range(logs.MAX_BATCH):
        logger.debug("request {}", n)
    assert len(queue.puts[-1]) == logs.MAX_BATCH  # a full batch goes at once


def test_waiting_debug_records_are_sent_within_the_batch_time(monkeypatch: pytest.MonkeyPatch,
                                                              restore_logger: None) -> None:
    queue = _install_counting(monkeypatch, batch_s=0.05)
    logger.debug("request 0")
    deadline = time.monotonic() + 10
    while not queue.puts and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [_messages(item) for item in queue.puts] == [["request 0"]]


def _log_debug_then_return(queue: Any, label: str) -> None:
    install_child_logging(queue, label)
    for seq in range(300):
        logger.bind(seq=seq).debug("request {}", seq)
    # returns normally: multiprocessing's exit sends what still waits


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_childs_last_debug_records_reach_the_parent_when_it_exits(method: str, log_file: Path) -> None:
    received, child = _run_child(method, log_file, _log_debug_then_return)
    assert child.exitcode == 0
    assert [record["extra"]["seq"] for record in received if record["label"] == "prices"] == list(range(300))
