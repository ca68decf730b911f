"""The HTML report: the data behind each chart, and a page that loads nothing from anywhere."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from etl.datatypes.prices import PRICES
from etl.datatypes.securities import SECURITIES
from etl.eventlog import EventRecorder, event_line, events_path, read_events
from etl.htmlreport import REPORT_NAME, build_html_report, charts, database_section, gather
from etl.load import ensure_quarantine_table, ensure_table, open_database
from etl.report import not_loaded_note
from etl.settings import resolve_settings

START, END = date(2025, 1, 1), date(2025, 3, 31)
SECTORS = {"AAA": "Banks", "BBB": "Banks", "CCC": "Banks", "DDD": "Hydro", "EEE": "Hydro", "FFF": "Hydro"}


def weekdays(since: date, until: date) -> list[str]:
    days = (since + timedelta(days=n) for n in range((until - since).days + 1))
    return [day.isoformat() for day in days if day.weekday() < 5]


@pytest.fixture
def market(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Six companies in two sectors trading every weekday of the first quarter of 2025."""
    connection = open_database(tmp_path / "nepse.db")
    for data_type in (SECURITIES, PRICES):
        ensure_table(connection, data_type)
    ensure_quarantine_table(connection)
    with connection:
        connection.executemany("INSERT INTO securities (security_id, symbol, status, sector) VALUES (?, ?, 'A', ?)",
                               [(n, symbol, sector) for n, (symbol, sector) in enumerate(SECTORS.items())])
        connection.executemany("INSERT INTO prices (symbol, business_date, close) VALUES (?, ?, 100)",
                               [(symbol, day) for symbol in SECTORS for day in weekdays(START, END)])
    yield connection
    connection.close()


def cell(cells: pl.DataFrame, symbol: str, month: str) -> dict:
    rows = cells.filter((pl.col("symbol") == symbol) & (pl.col("month") == month)).to_dicts()
    assert len(rows) <= 1
    return rows[0] if rows else {}


# ---- coverage


def test_full_market_is_fully_covered(market: sqlite3.Connection) -> None:
    cells = gather.coverage(market)
    assert cells.height == 6 * 3
    assert cells["share"].to_list() == [1.0] * 18
    assert cell(cells, "AAA", "2025-02") == {"symbol": "AAA", "group": "Banks", "month": "2025-02", "days": 20,
                                             "expected": 20, "share": 1.0}
    # grouped by sector, then symbol
    assert cells["group"].to_list() == ["Banks"] * 9 + ["Hydro"] * 9


def test_a_planted_gap_drops_its_cell(market: sqlite3.Connection) -> None:
    market.execute("DELETE FROM prices WHERE symbol = 'BBB' AND business_date LIKE '2025-02-%'")
    market.execute("DELETE FROM prices WHERE symbol = 'EEE' AND business_date BETWEEN '2025-03-01' AND '2025-03-16'")
    cells = gather.coverage(market)
    assert cell(cells, "BBB", "2025-02")["share"] == 0.0
    assert cell(cells, "BBB", "2025-01")["share"] == cell(cells, "BBB", "2025-03")["share"] == 1.0
    march = cell(cells, "EEE", "2025-03")
    assert (march["days"], march["expected"]) == (11, 21)
    gaps = cells.filter(pl.col("share") < 1).select("symbol", "month").rows()
    assert gaps == [("BBB", "2025-02"), ("EEE", "2025-03")]


def test_trading_days_are_the_days_most_active_securities_traded(market: sqlite3.Connection) -> None:
    market.execute("INSERT INTO prices (symbol, business_date) VALUES ('AAA', '2025-02-08')")  # a lone Saturday
    market.execute("DELETE FROM prices WHERE business_date = '2025-02-10' AND symbol IN ('AAA', 'BBB')")
    days = gather.market_trading_days(gather.price_days(market))
    assert "2025-02-08" not in days["business_date"].to_list()
    assert days.filter(pl.col("business_date") == "2025-02-10").rows() == [("2025-02-10", 4, 6)]
    assert days.height == len(weekdays(START, END))
    # the Saturday row does not lift AAA above a full month
    assert cell(gather.coverage(market), "AAA", "2025-02")["share"] == 19 / 20


def test_a_late_listing_is_not_a_gap_and_a_delisting_ends_the_row(market: sqlite3.Connection) -> None:
    market.execute("INSERT INTO securities (security_id, symbol, status, sector) VALUES (10, 'NEW', 'A', 'Hydro'), "
                   "(11, 'OLD', 'D', 'Hydro'), (12, 'QUIET', 'A', 'Hydro')")
    market.executemany("INSERT INTO prices (symbol, business_date) VALUES (?, ?)",
                       [("NEW", day) for day in weekdays(date(2025, 2, 17), END)]
                       + [("OLD", day) for day in weekdays(START, date(2025, 2, 14))]
                       + [("QUIET", day) for day in weekdays(START, date(2025, 1, 31))])
    cells = gather.coverage(market)
    assert cell(cells, "NEW", "2025-01") == {}
    assert cell(cells, "NEW", "2025-02")["expected"] == 10 and cell(cells, "NEW", "2025-02")["share"] == 1.0
    assert cell(cells, "OLD", "2025-02")["share"] == 1.0 and cell(cells, "OLD", "2025-03") == {}
    # still listed as active but silent since February: that is a gap
    assert cell(cells, "QUIET", "2025-02")["share"] == cell(cells, "QUIET", "2025-03")["share"] == 0.0


def test_equities_are_grouped_by_sector_and_other_securities_by_kind(market: sqlite3.Connection) -> None:
    market.execute("UPDATE securities SET instrument_type = 'Equity'")
    market.execute("INSERT INTO securities (security_id, symbol, status, sector, instrument_type) "
                   "VALUES (30, 'NABILD87', 'A', 'Banks', 'Non-Convertible Debentures')")
    market.executemany("INSERT INTO prices (symbol, business_date) VALUES ('NABILD87', ?)",
                       [(day,) for day in weekdays(START, END)[::10]])  # trades every other week
    groups = dict(gather.coverage(market).group_by("symbol").agg(pl.col("group").first()).rows())
    assert groups["AAA"] == "Banks" and groups["DDD"] == "Hydro"
    assert groups["NABILD87"] == "Non-Convertible Debentures"


def test_no_prices_means_no_cells(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "empty.db")
    assert gather.coverage(connection).is_empty()
    assert gather.market_trading_days(gather.price_days(connection)).is_empty()


def test_the_compact_heatmap_data_expands_to_the_cells(market: sqlite3.Connection) -> None:
    market.execute("DELETE FROM prices WHERE symbol = 'CCC' AND business_date LIKE '2025-02-%'")
    market.execute("INSERT INTO securities (security_id, symbol, status, sector) VALUES (20, 'DEC', 'A', 'Hydro')")
    market.execute("INSERT INTO prices (symbol, business_date) VALUES ('DEC', '2024-12-31')")  # across a year end
    cells = gather.coverage(market)
    expanded = charts.expand_coverage(charts.coverage_values(cells))
    expected = cells.select("group", "symbol", "month", percent=(pl.col("share") * 100).round().cast(pl.Int64))
    assert expanded.sort("symbol", "month").equals(expected.sort("symbol", "month"))
    assert cell(cells, "DEC", "2024-12")["share"] == 1.0 and cell(cells, "DEC", "2025-01")["share"] == 0.0


# ---- the run


def request(at: float, label: str) -> dict:
    return {"t": at + 0.05, "label": label, "event": "request", "started": at, "outcome": "ok"}


def test_run_activity_counts_starts_per_second_per_type() -> None:
    t0 = 1_700_000_000.0
    events = [request(t0 + offset, "prices") for offset in (0.0, 0.3, 0.6, 1.2, 2.5)]
    events += [request(t0 + 0.1, "reports"), request(t0 + 0.2, "main")]
    events += [
        {"t": t0 + 1.5, "label": "prices", "event": "retry", "reason": "HTTP 502", "attempt": 1},
        {"t": t0 + 1.7, "label": "prices", "event": "retry", "reason": "HTTP 502", "attempt": 2},
        {"t": t0 + 2.0, "label": "reports", "event": "rate_changed", "rate": 2.5, "old_rate": 5.0, "reason": "429s"},
        {"t": t0 + 2.01, "label": "prices", "event": "rate_changed", "rate": 2.5, "old_rate": 5.0, "reason": "429s"},
        {"t": t0 + 2.9, "label": "reports", "event": "rate_changed", "rate": 3.75, "old_rate": 2.5, "reason": "up"},
        {"t": t0 + 2.2, "label": "reports", "event": "company_failed", "type": "reports", "symbol": "NABIL",
         "reason": "HTTP 404"},
        {"t": t0 + 2.3, "label": "prices", "event": "company_done", "symbol": "ADBL"},
    ]
    activity = gather.run_activity(events, budget_rps=5)
    assert activity.bucket_s == 1 and activity.requests == 7
    assert activity.rate.rows() == [(0, "company list", 1.0), (0, "prices", 3.0), (0, "reports", 1.0),
                                    (1, "prices", 1.0), (2, "prices", 1.0)]
    assert activity.budget.rows() == [(0.0, 5.0), (pytest.approx(2.0), 2.5), (pytest.approx(2.9), 3.75)]
    # the parent's samples of the host rate, when the run has them, say when it changed
    sampled = [*events, {"t": t0 + 1.9, "label": "main", "event": "host_rate", "rate": 2.5},
               {"t": t0 + 2.4, "label": "main", "event": "host_rate", "rate": 3.75}]
    assert gather.run_activity(sampled, budget_rps=5).budget.rows() == [
        (0.0, 5.0), (pytest.approx(1.9), 2.5), (pytest.approx(2.4), 3.75)]
    marks = activity.marks.select("kind", "type", "count").rows()
    assert marks == [("retry", "prices", 2), ("throttle", "reports", 1), ("failure", "reports", 1)]
    assert "NABIL" in activity.marks.filter(pl.col("kind") == "failure")["detail"][0]


def test_a_long_run_is_drawn_in_wider_buckets_still_in_starts_per_second() -> None:
    t0 = 1_700_000_000.0
    events = [request(t0 + n * 0.25, "prices") for n in range(4 * 3000)]  # 4 starts a second for 50 minutes
    activity = gather.run_activity(events, budget_rps=5)
    assert activity.bucket_s == 10
    assert activity.rate.height <= gather.MAX_RATE_POINTS
    assert set(activity.rate["rps"].to_list()) == {4.0}


def test_event_recorder_keeps_only_event_records(tmp_path: Path) -> None:
    path = events_path(tmp_path, "RUN1")
    with EventRecorder(path) as recorder:
        recorder.handle({"time": 1.5, "label": "prices", "message": "GET ...", "extra": {}})
        recorder.handle({"time": 2.5, "label": "prices", "message": "m",
                         "extra": {"event": "request", "started": 2.4, "outcome": "ok", "label": "prices"}})
    with path.open("a") as stream:
        stream.write('{"t": 3, "event": "req')  # a killed run's torn last line
    assert list(read_events(path)) == [{"t": 2.5, "label": "prices", "event": "request", "started": 2.4,
                                        "outcome": "ok"}]
    assert event_line({"time": 1, "extra": {"event": 5}}) is None


# ---- data quality and failures


def test_quality_counts_quarantined_and_flagged_rows_by_rule(market: sqlite3.Connection) -> None:
    rows = [("prices", f"h{n}", "AAA", "no business_date", "{}", None, "2025-01-01") for n in range(3)]
    rows.append(("reports", "r1", "BBB", "unparseable eps", "{}", None, "2025-01-01"))
    market.executemany("INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    counts = gather.quality_counts(market)
    assert counts.rows() == [("quarantined", "prices", "no business_date", 3),
                             ("quarantined", "reports", "unparseable eps", 1)]
    market.execute("CREATE TABLE data_issues (data_type TEXT, key TEXT, rule TEXT, detail TEXT, first_seen TEXT)")
    market.executemany("INSERT INTO data_issues VALUES ('prices', ?, 'close_outside_high_low', '', '2025')",
                       [(f"AAA|{n}",) for n in range(2)])
    assert gather.quality_counts(market).filter(pl.col("kind") == "flagged").rows() == [
        ("flagged", "prices", "close_outside_high_low", 2)]


def failed_run(**arguments: object) -> dict:
    return {"run_id": "R", "arguments": {"output": "output", "demo": False, "max_rps": 5.0, **arguments},
            "types": {"prices": {"errors": [{"type": "prices", "symbol": "NABIL", "reason": "HTTP 502", "attempts": 6},
                                            {"type": "prices", "symbol": "NICAD85/86", "reason": "HTTP 404",
                                             "attempts": 1}]},
                      "reports": {"errors": [{"type": "reports", "symbol": "*", "reason": "process died",
                                              "attempts": 0}]},
                      "dividends": {"errors": []}}}


def test_retry_commands_fetch_only_what_failed_and_are_valid_flags() -> None:
    report = failed_run(output="/data/nepse out", since="2024-01-01", limit=50, tls_verify=False)
    commands = gather.retry_commands(report)
    assert commands == [
        "nepse-etl --types prices --symbols NABIL,NICAD85/86 --since 2024-01-01 --output '/data/nepse out' --insecure",
        "nepse-etl --types reports --limit 50 --since 2024-01-01 --output '/data/nepse out' --insecure",
    ]
    import shlex

    for command in commands:
        settings = resolve_settings(shlex.split(command)[1:], environ={}, dotenv_path=Path("/nonexistent"))
        assert settings.since == date(2024, 1, 1) and not settings.tls_verify
    assert gather.latest_failures(report).height == 3
    assert gather.retry_commands({"types": {"prices": {"errors": []}}}) == []


# ---- the database at a glance


@pytest.mark.parametrize("has_database", [True, False])
def test_after_an_extract_only_run_the_database_section_says_it_was_not_loaded(
        market: sqlite3.Connection, tmp_path: Path, has_database: bool) -> None:
    extract_only = not_loaded_note({"arguments": {"extract_only": True}})
    assert extract_only is not None and "--load-only" in extract_only
    assert not_loaded_note({"arguments": {"extract_only": False}}) is None and not_loaded_note(None) is None
    connection = market if has_database else None
    said = database_section(connection, tmp_path / "nepse.db", extract_only).html_before
    assert "The database was not loaded by this run, which extracted only (--extract-only)" in said
    assert "not loaded" not in database_section(connection, tmp_path / "nepse.db").html_before



def test_database_glance_covers_every_table_with_its_date_range(market: sqlite3.Connection, tmp_path: Path) -> None:
    market.execute("CREATE TABLE indices (index_id INTEGER, business_date TEXT, close REAL)")
    market.executemany("INSERT INTO indices VALUES (58, ?, 2000)", [("2024-05-01",), ("2025-03-02",)])
    market.commit()
    glance = {row["table"]: row for row in gather.database_glance(market).to_dicts()}
    assert set(glance) == {"securities", "prices", "quarantine", "indices"}
    assert glance["prices"] == {"table": "prices", "rows": 6 * len(weekdays(START, END)),
                                "date_column": "business_date", "first": "2025-01-01", "last": "2025-03-31"}
    assert (glance["indices"]["rows"], glance["indices"]["first"], glance["indices"]["last"]) == (
        2, "2024-05-01", "2025-03-02")
    assert glance["securities"]["date_column"] is None and glance["securities"]["rows"] == 6
    files = [tmp_path / "nepse.db", tmp_path / "nepse.db-wal"]  # the write-ahead log counts too
    assert gather.database_size(tmp_path / "nepse.db") == sum(path.stat().st_size for path in files if path.exists())
    assert (tmp_path / "nepse.db-wal").exists()


# ---- the page


def coverage_in_page(page: Path) -> pl.DataFrame:
    """The coverage cells as the page carries them (its flatten transform undone)."""
    return charts.expand_coverage(chart_specs(page.read_text())["chart-coverage"]["datasets"]["cells"])


def plant_gap_and_run(market: sqlite3.Connection, output: Path) -> None:
    """DDD misses March; a run report with failures and ten seconds of requests, a retry among them."""
    market.execute("DELETE FROM prices WHERE symbol = 'DDD' AND business_date LIKE '2025-03-%'")
    market.commit()
    runs = output / "runs"
    runs.mkdir()
    report = failed_run()
    report.update(run_id="20250101T000000Z-abcdef", budget_rps=5.0, exit_code=1, elapsed_s=10.0)
    (runs / f"{report['run_id']}.json").write_text(json.dumps(report))
    with EventRecorder(events_path(runs, report["run_id"])) as recorder:
        for n in range(40):
            recorder.handle({"time": 100 + n / 4, "label": ("prices", "reports")[n % 2],
                             "extra": {"event": "request", "started": 100 + n / 4, "outcome": "ok"}})
        recorder.handle({"time": 104, "label": "prices", "extra": {"event": "retry", "reason": "HTTP 502"}})


def chart_specs(page: str) -> dict:
    match = re.search(r"const specs = (\{.*?\});\nconst renderers", page, re.DOTALL)
    assert match, "the page carries its chart specs"
    return json.loads(match.group(1).replace("<\\/", "</"))


def test_the_page_is_self_contained_and_carries_the_planted_gap(market: sqlite3.Connection, tmp_path: Path) -> None:
    plant_gap_and_run(market, tmp_path)
    page = build_html_report(tmp_path).read_text()
    assert (tmp_path / REPORT_NAME).is_file()
    # nothing is loaded from anywhere: no external script, style, image or data
    markup = re.sub(r"(<script>).*?(</script>)", r"\1\2", page, flags=re.DOTALL)
    assert markup.count("<script>") == 2 and "vegaEmbed" in page
    assert not re.search(r"""<(script|link|img|iframe|object|embed)[^>]*\s(src|href|data)\s*=""", markup, re.I)
    assert "@import" not in markup and "url(" not in markup
    specs = chart_specs(page)
    assert set(specs) == {"chart-run", "chart-coverage"}
    assert '"url"' not in json.dumps(specs)
    coverage = coverage_in_page(tmp_path / REPORT_NAME)
    assert coverage.filter(pl.col("percent") < 100).select("symbol", "month", "percent").rows() == [
        ("DDD", "2025-03", 0)]
    assert "nepse-etl --types prices --symbols NABIL,NICAD85/86" in page
    assert "no data_issues table" in page


# ---- in a real browser

CHROMIUM = Path("/usr/bin/chromium")


def chromium(page: Path, profile: Path, *mode: str) -> tuple[str, list[str]]:
    """Run headless Chromium on the page with every network request sent to a dead proxy (so a load from
    anywhere fails); return its stdout and the page's console messages."""
    import subprocess

    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               "--proxy-server=127.0.0.1:9", "--enable-logging=stderr", "--v=0", "--hide-scrollbars",
               "--window-size=1280,1600", "--virtual-time-budget=15000", *mode, page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not installed at /usr/bin/chromium "
                    "(Debian package 'chromium'; .ci/run installs it)")
def test_the_report_renders_its_charts_in_headless_chromium(market: sqlite3.Connection, tmp_path: Path) -> None:
    plant_gap_and_run(market, tmp_path)
    page = build_html_report(tmp_path)
    dom, console = chromium(page, tmp_path / "profile", "--dump-dom")
    assert console == [], f"the page wrote to the console: {console}"
    charts_in_dom = dict(re.findall(r'<div class="chart vega-embed" id="(chart-[a-z]+)"[^>]*data-rendered="(\w+)"',
                                    dom))
    assert charts_in_dom == {"chart-run": "yes", "chart-coverage": "yes"}
    run_chart = dom[dom.index('id="chart-run"'):dom.index('id="chart-coverage"')]
    assert "<svg" in run_chart and 'class="mark-rect' in run_chart  # the bars were drawn
    assert "<canvas" in dom[dom.index('id="chart-coverage"'):]
    shot = tmp_path / "report.png"
    _, console = chromium(page, tmp_path / "profile", f"--screenshot={shot}")
    assert console == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_the_vega_bundle_is_made_once_then_read_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vl_convert

    from etl.htmlreport import page

    calls: list[str] = []

    def bundle(vl_version: str) -> str:
        calls.append(vl_version)
        return f"/* vega {vl_version} */"

    monkeypatch.setattr(vl_convert, "javascript_bundle", bundle)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    page.vega_bundle.cache_clear()
    try:
        first = page.vega_bundle()
        page.vega_bundle.cache_clear()
        assert page.vega_bundle() == first and len(calls) == 1
        assert calls[0] in vl_convert.get_vegalite_versions() and calls[0].startswith(alt_major())
        (cached,) = (tmp_path / "cache" / "nepse-etl").iterdir()
        assert cached.read_text() == first
    finally:
        page.vega_bundle.cache_clear()


def alt_major() -> str:
    import altair

    return altair.SCHEMA_VERSION.lstrip("v").split(".")[0]


# ---- end to end: the real command


def test_a_run_writes_the_report_and_report_only_shows_a_planted_gap(tmp_path: Path, simulator, cli_env, run_cli,
                                                                     fast) -> None:
    output = tmp_path / "output"
    env = cli_env(NEPSE_HTML_REPORT="true")
    done = run_cli("--base-url", simulator.base_url, "--types", "prices", "--limit", "12", "--output", str(output),
                   *fast, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert f"Report: {output / REPORT_NAME}" in done.stdout
    report = json.loads(next((output / "runs").glob("*.json")).read_text())
    events = list(read_events(events_path(output / "runs", report["run_id"])))
    requests = [event for event in events if event["event"] == "request"]
    assert len(requests) == report["types"]["prices"]["requests"] + report["company_list_requests"]
    assert {event["label"] for event in requests} == {"main", "prices"}
    assert all(event["outcome"] == "ok" and event["started"] <= event["t"] for event in requests)
    before = coverage_in_page(output / REPORT_NAME)

    # an equity that traded most days of a month loses that month
    symbol, month, percent = before.filter(pl.col("percent") >= 80).sort("symbol", "month").select(
        "symbol", "month", "percent").row(3)
    connection = sqlite3.connect(output / "nepse.db")
    with connection:
        connection.execute("DELETE FROM prices WHERE symbol = ? AND substr(business_date, 1, 7) = ?", (symbol, month))
        connection.execute("INSERT INTO data_issues (data_type, key, rule, detail, first_seen) "
                           "VALUES ('prices', 'PLANTED|2025-01-01', 'planted_rule', '', '2025-01-01')")
    connection.close()
    done = run_cli("--report-only", "--output", str(output), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    after = coverage_in_page(output / REPORT_NAME)
    changed = before.join(after, on=["group", "symbol", "month"], suffix="_after").filter(
        pl.col("percent") != pl.col("percent_after"))
    assert changed.select("symbol", "month", "percent", "percent_after").rows() == [(symbol, month, percent, 0)]

    # the quality chart counts exactly what data_issues holds (the simulator's odd days and the planted one)
    connection = sqlite3.connect(output / "nepse.db")
    flagged = connection.execute("SELECT data_type, rule, COUNT(*) FROM data_issues GROUP BY 1, 2").fetchall()
    connection.close()
    specs = chart_specs((output / REPORT_NAME).read_text())
    shown = [(row["data_type"], row["rule"], row["rows"]) for row in
             specs.get("chart-quality", {}).get("datasets", {}).get("counts", []) if row["kind"] == "flagged"]
    assert sorted(shown) == sorted(flagged) and ("prices", "planted_rule", 1) in shown


def test_report_only_needs_something_to_report(tmp_path: Path, run_cli, cli_env) -> None:
    done = run_cli("--report-only", "--output", str(tmp_path / "nothing"), cwd=tmp_path, env=cli_env())
    assert done.returncode == 2
    assert done.stderr.startswith("error: nothing to report in") and done.stderr.count("\n") == 1
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "nepse.db").write_text("not a database")
    done = run_cli("--report-only", "--output", str(tmp_path / "foreign"), cwd=tmp_path, env=cli_env())
    assert done.returncode == 2 and "cannot read" in done.stderr and done.stderr.count("\n") == 1
    done = run_cli("--report-only", "--dry-run", cwd=tmp_path, env=cli_env())
    assert done.returncode == 2 and "exclude each other" in done.stderr


def test_the_quality_chart_uses_a_log_scale_only_when_one_rule_dwarfs_another() -> None:
    def scale(rows: list[int]) -> str:
        counts = pl.DataFrame({"kind": ["flagged"] * len(rows), "data_type": ["prices"] * len(rows),
                               "rule": [f"rule{n}" for n in range(len(rows))], "rows": rows})
        spec = charts.quality_chart(counts)
        assert spec["datasets"]["counts"][0]["label"] == "prices: rule0"
        return spec["encoding"]["x"]["scale"]["type"]

    assert (scale([4, 3]), scale([10_000, 3])) == ("linear", "symlog")
