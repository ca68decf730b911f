"""A full disk: one line that names the path, the free space and what to do, and nothing lost or garbled."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from loguru import logger

from etl import load as load_module
from etl.datatypes import REGISTRY
from etl.datatypes.base import Company, FetchWindow
from etl.extract import ExtractJob, extract_type
from etl.load import DatabaseNotUsable, load_all
from etl.logs import close_parent_logging, ensure_file_sink
from etl.plan import WorkItem
from etl.rawzone import RawZone
from etl.settings import resolve_settings
from etl.simulator import SimData, SimulatorProcess
from tests.raw_prices import price, write_prices


def test_a_full_disk_under_the_log_file_is_one_line_not_a_flood(capfd: pytest.CaptureFixture[str]) -> None:
    close_parent_logging()
    try:
        ensure_file_sink(Path("/dev/full"))  # every write fails with ENOSPC
        for number in range(50):
            logger.info(f"line {number}")
    finally:
        close_parent_logging()
    err = capfd.readouterr().err
    assert "Logging error" not in err and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "/dev/full" in lines[0] and "no space left" in lines[0], err


def test_the_load_reports_the_real_sqlite_full_not_a_failed_rollback(tmp_path: Path, monkeypatch) -> None:
    zone = RawZone(tmp_path)
    write_prices(zone, "AAA", [price(day) for day in range(1, 29)])
    opened = load_module.open_database

    def small_database(path: Path, busy_timeout_s: float = 5.0) -> sqlite3.Connection:
        connection = opened(path, busy_timeout_s)
        connection.execute("PRAGMA max_page_count = 3")  # SQLite's own SQLITE_FULL, as on a full disk
        return connection

    monkeypatch.setattr(load_module, "open_database", small_database)
    with pytest.raises(DatabaseNotUsable) as caught:
        load_all(tmp_path / "nepse.db", zone, [REGISTRY["prices"]])
    message = str(caught.value)
    assert "is full" in message and "cannot rollback" not in message
    assert str(tmp_path / "nepse.db") in message and "free" in message and "--load-only" in message


def test_a_load_that_fills_the_disk_reports_sqlite_full(tmp_path: Path, small_disk: Path) -> None:
    """The raw zone lies elsewhere; the database fills the small disk mid-transaction."""
    zone = RawZone(tmp_path / "elsewhere")
    for number in range(12):
        write_prices(zone, f"S{number:02d}", [price(day, close=100.0 + day) for day in range(1, 29)])
    output = small_disk / "out"
    output.mkdir()
    (output / "raw").symlink_to(zone.root)
    with pytest.raises(DatabaseNotUsable) as caught:
        for round_ in range(40):  # each round adds rows under new symbols until the disk is full
            load_all(output / "nepse.db", RawZone(output), [REGISTRY["prices"]])
            for number in range(30):
                write_prices(zone, f"R{round_}X{number}", [price(day) for day in range(1, 29)])
    message = str(caught.value)
    assert "is full" in message and "cannot rollback" not in message, message


def test_the_extract_starts_no_new_company_once_a_write_fails_for_space(tmp_path: Path, simulator: SimulatorProcess,
                                                                       sim_data: SimData, monkeypatch, make_budget,
                                                                       fast) -> None:
    companies = [Company(c["id"], c["symbol"].strip()) for c in sim_data.companies() if c["status"] == "A"][:12]
    settings = resolve_settings(["--base-url", simulator.base_url, "--output", str(tmp_path), "--concurrency", "2",
                                 *fast], environ={}, dotenv_path=tmp_path / ".env")
    writes: list[Path] = []

    def write(self: RawZone, path: Path, table, meta) -> Path:
        writes.append(path)
        if len(writes) > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return path

    monkeypatch.setattr(RawZone, "write", write)
    window = FetchWindow(date(2026, 1, 1), date(2026, 1, 2))
    job = ExtractJob("profiles", [WorkItem(company, window) for company in companies], 0, settings, "job", "run")
    budget = make_budget(40, 1, 10)
    result = asyncio.run(extract_type(job, budget, lambda: False))
    assert len(writes) <= 2 + 2 * settings.concurrency  # those in flight finish (two workers per slot); none starts
    assert result.companies_ok == 2 and result.companies_failed == len(companies) - 2
    reasons = {error["reason"] for error in result.errors}
    assert any("no space left" in reason and str(tmp_path) in reason for reason in reasons), reasons
    assert any(reason.startswith("not started") for reason in reasons), reasons


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root; skipped elsewhere)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs is not permitted here")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


@pytest.fixture
def full_disk(small_disk: Path) -> Path:
    """The small tmpfs filled to the last byte."""
    mount_point = small_disk
    descriptor = os.open(mount_point / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(descriptor, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(descriptor)
    return mount_point


def test_a_run_on_a_full_disk_says_so_in_one_line(tmp_path: Path, full_disk: Path, simulator: SimulatorProcess,
                                                  run_cli, fast) -> None:
    output = full_disk / "out"
    result = run_cli("--base-url", simulator.base_url, "--limit", "2", "--output", str(output), *fast, cwd=tmp_path)
    text = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in text and "Logging error" not in text, text
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, text
    assert f"no space left on the device holding {full_disk}" in lines[0], lines[0]
    assert "free" in lines[0] and "--output" in lines[0]
    assert shutil.disk_usage(full_disk).free < 8192
