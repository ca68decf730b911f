"""The Spring paginator on plain dicts: no server, every way a page can lie."""

from __future__ import annotations

from typing import Any

import pytest

from etl.failures import FetchError
from etl.paging import SpringPaginator


def spring_page(rows: list[Any], number: int, size: int, total: int, **overrides: Any) -> dict[str, Any]:
    pages = -(-total // size) if size else 0
    page = {"content": rows, "number": number, "size": size, "totalElements": total, "totalPages": pages,
            "last": number + 1 >= pages, "numberOfElements": len(rows)}
    return {**page, **overrides}


def read_all(paginator: SpringPaginator, serve) -> tuple[list[Any], list[dict[str, Any]]]:
    """Drive the paginator as the client does; `serve(request)` answers each request."""
    rows: list[Any] = []
    requests: list[dict[str, Any]] = []
    while (request := paginator.next_request()) is not None:
        requests.append(request)
        rows.extend(paginator.update(serve(request)))
    return rows, requests


def test_pages_until_last_with_a_short_final_page() -> None:
    data = list(range(7))
    rows, requests = read_all(SpringPaginator(3, 10),
                              lambda r: spring_page(data[r["page"] * 3:(r["page"] + 1) * 3], r["page"], 3, 7))
    assert rows == data
    assert requests == [{"size": 3, "page": 0}, {"size": 3, "page": 1}, {"size": 3, "page": 2}]


def test_the_server_capping_the_page_size_loses_no_row() -> None:
    data = list(range(5))  # asked for 500 a page, served 2 a page
    rows, requests = read_all(SpringPaginator(500, 10),
                              lambda r: spring_page(data[r["page"] * 2:(r["page"] + 1) * 2], r["page"], 2, 5))
    assert rows == data and len(requests) == 3
    assert all(request["size"] == 500 for request in requests)


def test_an_empty_first_page_ends_at_once() -> None:
    rows, requests = read_all(SpringPaginator(500, 10), lambda r: spring_page([], 0, 500, 0, totalPages=0))
    assert rows == [] and len(requests) == 1


def test_an_empty_first_page_that_claims_rows_is_refused() -> None:
    paginator = SpringPaginator(500, 10)
    paginator.next_request()
    with pytest.raises(FetchError) as raised:
        paginator.update(spring_page([], 0, 500, 12))
    assert raised.value.outcome == "inconsistent_page"
    assert "carries 0 rows where 12 were due" in raised.value.detail


def test_a_short_page_in_the_middle_is_refused_and_the_same_page_is_asked_again() -> None:
    paginator = SpringPaginator(3, 10)
    assert paginator.next_request() == {"size": 3, "page": 0}
    with pytest.raises(FetchError) as raised:
        paginator.update(spring_page([1, 2], 0, 3, 7))  # 2 rows where 3 were due: cut short
    assert raised.value.outcome == "inconsistent_page"
    assert paginator.next_request() == {"size": 3, "page": 0}  # nothing advanced: the retry asks again
    assert paginator.update(spring_page([1, 2, 3], 0, 3, 7)) == [1, 2, 3]
    assert paginator.next_request() == {"size": 3, "page": 1}


def test_a_lying_total_elements_is_an_error_not_a_silent_end() -> None:
    paginator = SpringPaginator(2, 100)
    paginator.next_request()
    assert paginator.update(spring_page([1, 2], 0, 2, 50)) == [1, 2]
    paginator.next_request()
    with pytest.raises(FetchError) as raised:
        paginator.update(spring_page([], 1, 2, 50))
    assert raised.value.outcome == "inconsistent_page"


def test_endless_last_false_stops_at_max_pages() -> None:
    paginator = SpringPaginator(2, 4)
    pages = 0
    with pytest.raises(FetchError) as raised:
        while (request := paginator.next_request()) is not None:
            paginator.update(spring_page([0, 0], request["page"], 2, 10**9, last=False))
            pages += 1
    assert pages == 4
    assert raised.value.outcome == "too_many_pages" and "more than 4 pages" in raised.value.detail


@pytest.mark.parametrize(("page", "fragment"), [
    (spring_page([1], 1, 1, 3), "asked for page 0, got page 1"),
    (spring_page([1, 2], 0, 5, 2, numberOfElements=3), "claims 3 rows, carries 2"),
    ({"rows": []}, "Spring page with a 'content' array"),
    (["not", "a", "page"], "Spring page with a 'content' array"),
    (spring_page([1], 0, 1, 1, totalElements="many"), "totalElements='many' is not a whole number"),
])
def test_a_page_that_contradicts_itself_names_what_is_wrong(page: Any, fragment: str) -> None:
    paginator = SpringPaginator(1, 10)
    paginator.next_request()
    with pytest.raises(FetchError) as raised:
        paginator.update(page)
    assert fragment in raised.value.detail
    assert raised.value.outcome in {"inconsistent_page", "bad_shape"}


def test_a_page_without_paging_metadata_is_the_last() -> None:
    paginator = SpringPaginator(500, 10)
    paginator.next_request()
    assert paginator.update({"content": [1, 2]}) == [1, 2]
    assert paginator.next_request() is None


def test_json_the_fast_decoder_refuses_is_read_as_python_reads_it() -> None:
    from etl.payloads import parse_json_body

    assert parse_json_body(b'{"content": [{"closePrice": 10.5, "totalTrades": 3}]}') == {
        "content": [{"closePrice": 10.5, "totalTrades": 3}]}
    values = parse_json_body(b"[NaN, Infinity, 1]")  # orjson refuses these literals; json reads them
    assert values[2] == 1 and values[0] != values[0] and values[1] == float("inf")
    assert parse_json_body('["utf-16"]'.encode("utf-16")) == ["utf-16"]
    with pytest.raises(FetchError, match="not valid JSON"):
        parse_json_body(b'{"content": [')


def test_spring_paginator_says_how_many_pages_are_left_once_the_server_has_said() -> None:
    paginator = SpringPaginator(page_size=2, max_pages=10)
    assert paginator.pages_left is None  # nothing known before the first page
    paginator.update({"content": [1, 2], "number": 0, "size": 2, "totalElements": 5, "totalPages": 3,
                      "last": False})
    assert paginator.pages_left == 2
    paginator.update({"content": [3, 4], "number": 1, "size": 2, "totalElements": 5, "totalPages": 3,
                      "last": False})
    paginator.update({"content": [5], "number": 2, "size": 2, "totalElements": 5, "totalPages": 3, "last": True})
    assert paginator.pages_left == 0


def test_a_history_that_ignores_the_window_stops_at_its_first_day() -> None:
    from etl.paging import StopBefore

    # 20 days newest first, 5 a page; the window starts at day 12: pages 0..1 reach it, page 2 is not asked.
    days = [{"businessDate": f"2026-01-{day:02d}"} for day in range(20, 0, -1)]
    paginator = StopBefore(SpringPaginator(5, 10), "businessDate", "2026-01-12")
    rows, requests = read_all(paginator, lambda r: spring_page(days[r["page"] * 5:(r["page"] + 1) * 5],
                                                               r["page"], 5, 20))
    assert [request["page"] for request in requests] == [0, 1]
    assert rows == days[:10]  # day 11 came on the same page as day 12: kept, as published
    whole, _ = read_all(StopBefore(SpringPaginator(5, 10), "businessDate", "2025-12-01"),
                        lambda r: spring_page(days[r["page"] * 5:(r["page"] + 1) * 5], r["page"], 5, 20))
    assert whole == days  # a window older than the history reads every page, up to 'last'
