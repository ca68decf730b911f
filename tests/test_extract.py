"""What the server can do to a company is recorded and the run goes on; a bug in our code stops it loudly."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from etl.budget import WorkMeter
from etl.client import ClientStats
from etl.datatypes import REGISTRY
from etl.datatypes.base import REJECT_REASON, Company, FetchWindow
from etl.datatypes.securities import SECURITIES
from etl.extract import ExtractCounts, ExtractJob, _worker
from etl.failures import FetchError
from etl.plan import WorkItem
from etl.rawzone import RawZone
from etl.settings import Settings

NABIL = Company(131, "NABIL")
WINDOW = FetchWindow(date(2026, 1, 1), date(2026, 1, 31))


class FakeApi:
    """Answers a type's fetch from a dict of security id -> body (or an exception to raise)."""

    page_size = 500
    max_pages = 10

    def __init__(self, answers: dict[int, Any]) -> None:
        self.answers = answers
        self.stats = ClientStats()

    async def get_json(self, path: str, params: dict[str, Any] | None = None, validate=None) -> Any:
        self.stats.requests += 1
        answer = self.answers[int(path.rstrip("/").rsplit("/", 1)[-1])]
        if isinstance(answer, Exception):
            raise answer
        return validate(answer) if validate else answer

    async def get_pages(self, path: str, params: dict[str, Any], paginator) -> list[Any]:
        raise AssertionError("not used by these types")


class NoShares:
    """Stands in for the host budget: these tests count requests, not shares."""

    def set_remaining(self, requests: int) -> None:
        pass


def run_worker(tmp_path: Path, data_type, companies: list[Company], api: FakeApi) -> ExtractCounts:
    job = ExtractJob(data_type.name, [WorkItem(company, WINDOW) for company in companies], 0,
                     Settings(output=tmp_path), "job-1", "run-1")
    counts = ExtractCounts(data_type.name)
    queue: asyncio.Queue[tuple[WorkItem, int]] = asyncio.Queue()
    for item in job.items:
        queue.put_nowait((item, 1))
    meter = WorkMeter(NoShares(), len(job.items))  # type: ignore[arg-type]
    asyncio.run(_worker(queue, api, data_type, RawZone(tmp_path), job, counts, meter))  # type: ignore[arg-type]
    return counts


def test_failed_requests_and_unsafe_symbols_are_recorded_and_the_rest_is_fetched(tmp_path: Path) -> None:
    companies = [Company(1, "ADBL"), Company(2, "X" * 65), NABIL]
    api = FakeApi({1: FetchError("http_5xx", "HTTP 502", attempts=6), 131: {"companyName": "Nabil Bank"}})
    counts = run_worker(tmp_path, REGISTRY["profiles"], companies, api)
    assert (counts.companies_ok, counts.companies_failed) == (1, 2)
    assert [(error["symbol"], error["reason"]) for error in counts.errors] == [
        ("ADBL", "HTTP 502"), ("X" * 65, f"UnsafeSymbol: symbol {'X' * 65!r} is empty or longer than 64 characters")]
    assert (tmp_path / "raw" / "profiles" / "symbol=NABIL" / "part.parquet").is_file()


@pytest.mark.parametrize("bug", [TypeError("unsupported operand"), KeyError("closePrice"), AttributeError("x")])
def test_a_bug_in_a_parser_is_not_a_failed_company_but_stops_the_type(tmp_path: Path, bug: Exception) -> None:
    def broken_parse(records: Any, company: Company) -> list:
        raise bug

    buggy = dataclasses.replace(REGISTRY["profiles"], parse=broken_parse)
    api = FakeApi({1: {"companyName": "A"}, 131: {"companyName": "Nabil Bank"}})
    with pytest.raises(type(bug)):
        run_worker(tmp_path, buggy, [Company(1, "ADBL"), NABIL], api)
    assert api.stats.requests == 1  # the run did not go on to fail every other company the same way


def test_records_the_server_garbled_are_kept_with_a_reason_that_quotes_them(tmp_path: Path) -> None:
    dividends = [{"id": 7, "companyNews": ["not", "an", "object"]},
                 {"id": 8, "companyNews": {"dividendsNotice": "pending"}},
                 {"id": 9, "companyNews": {"dividendsNotice": {"financialYear": {"fyName": "2081/82"},
                                                               "cashDividend": "10"}}}]
    counts = run_worker(tmp_path, REGISTRY["dividends"], [NABIL], FakeApi({131: dividends}))
    assert (counts.companies_ok, counts.rows_fetched) == (1, 3)
    rows = REGISTRY["dividends"].parse(dividends, NABIL)
    assert rows[0][REJECT_REASON] == ('companyNews is a list, not an object in record '
                                      '{"companyNews": ["not", "an", "object"], "id": 7}')
    assert rows[1][REJECT_REASON].startswith("companyNews.dividendsNotice is a str, not an object in record")
    assert REJECT_REASON not in rows[2] and rows[2]["cash_pct"] == 10.0


@pytest.mark.parametrize(("record", "reason"), [
    ({"id": 1, "fiscalReport": {"financialYear": "2080/81"}}, "fiscalReport.financialYear is a str, not an object"),
    ({"id": 2, "fiscalReport": {}, "applicationDocumentDetailsList": {"id": 9}},
     "applicationDocumentDetailsList is a dict, not an array"),
    ({"id": 10**20, "fiscalReport": {}}, "id 100000000000000000000 is too large for a 64-bit integer"),
    ({"id": 3, "fiscalReport": {"remarks": "bad \ud800 text"}}, "text 'bad \\ud800 text' is not valid Unicode"),
])
def test_shapes_a_parser_relies_on_are_checked(record: dict, reason: str) -> None:
    (row,) = REGISTRY["reports"].parse([record], NABIL)
    assert row[REJECT_REASON].startswith(f"{reason} in record {{")


def test_a_reason_quotes_a_long_record_shortened_and_the_row_still_fits_the_schema(tmp_path: Path) -> None:
    record = {"id": "x", "symbol": "LONG", "companyName": "N" * 1000, "note": "\ud800"}
    (row,) = SECURITIES.parse([record])
    assert row[REJECT_REASON].startswith("id 'x' is not a number in record {") and row[REJECT_REASON].endswith("…")
    assert len(row[REJECT_REASON]) < 400
    from etl.extract import rows_to_table

    assert rows_to_table([row], SECURITIES, "2026-01-01T00:00:00+00:00").num_rows == 1
