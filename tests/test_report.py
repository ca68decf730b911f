"""The run's facts and exit code are decided in etl.report, once."""

from __future__ import annotations

from pathlib import Path

from etl.load import LoadCounts
from etl.report import RunFacts, build_report, exit_code_for, exit_code_of, exit_meaning
from etl.settings import Settings


def facts(**overrides) -> RunFacts:
    return RunFacts(Settings(output=Path("/data/out")), "run-1", **overrides)


def test_a_clean_run_reports_its_counts_and_exit_code_0() -> None:
    extract = {"prices": {"companies_ok": 3, "requests": 4, "errors": [], "not_a_report_field": 1}}
    loads = {"prices": LoadCounts(files=3, new=10, updated=1, unchanged=2), "securities": LoadCounts(new=5)}
    report = build_report(facts(company_list_requests=2), extract, loads, 0, ("prices", "reports"))
    assert report["exit_code"] == 0
    prices = report["types"]["prices"]
    assert (prices["companies_ok"], prices["requests"], prices["new"], prices["updated"]) == (3, 4, 10, 1)
    assert "not_a_report_field" not in prices and report["types"]["reports"]["new"] == 0
    assert report["securities"]["new"] == 5 and report["company_list_requests"] == 2
    assert report["log_path"] == "/data/out/logs/run-1.log"
    assert report["report_path"] == "/data/out/runs/run-1.json"


def test_failures_bad_files_a_fatal_error_and_an_interruption_set_the_code() -> None:
    failed = {"prices": {"companies_failed": 1, "errors": [{"symbol": "ADBL"}]}}
    assert build_report(facts(), failed, {}, 0, ("prices",))["exit_code"] == 1
    assert build_report(facts(), {}, {"prices": LoadCounts(bad_files=["x"])}, 0, ("prices",))["exit_code"] == 1
    fatal = build_report(facts(), {}, {}, 0, ("prices",), fatal_error="no company list")
    assert (fatal["exit_code"], fatal["fatal_error"]) == (1, "no company list")
    assert build_report(facts(interrupted=True), failed, {}, 0, ("prices",))["exit_code"] == 130


def test_a_sparse_report_implies_its_code_and_a_stored_code_wins() -> None:
    assert exit_code_for({}) == 0
    assert exit_code_for({"types": {"prices": {"errors": [{"symbol": "ADBL"}]}}}) == 1
    assert exit_code_of({"exit_code": 2, "types": {}}) == 2
    assert [exit_meaning(code) for code in (0, 1, 2, 130, 7)] == [
        "success", "finished with some failures", "bad usage or configuration", "interrupted", "error"]
