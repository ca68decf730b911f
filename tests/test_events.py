"""Progress events are typed: a misspelt kind or a missing field fails here, not as a blank line at run time."""

from __future__ import annotations

import dataclasses
import io

import pytest
from rich.console import Console

from etl.events import (
    EVENTS,
    CompanyDone,
    CompanyFailed,
    HostRate,
    RateChanged,
    Request,
    Retry,
    TypeEnd,
    TypeStart,
    as_extra,
    count_noun,
    from_extra,
)
from etl.progress import make_display

SAMPLES = [
    TypeStart(type="prices", total=600, skipped=12, budget_rps=5.0),
    CompanyDone(type="prices", symbol="NABIL", rows=251, requests=3, retries=1),
    CompanyFailed(type="reports", symbol="ADBL", reason="HTTP 502", attempts=5, requests=9, retries=4),
    RateChanged(rate=2.5, old_rate=5.0, reason="host rate halved: repeated HTTP 429"),
    TypeEnd(type="prices", requests=603, retries=2, throttle_events=1),
    Request(method="GET", path="/api/nots/security/131", params={}, started=1.5, seconds=0.25, outcome="ok",
            bytes=2048),
    Retry(reason="HTTP 502", attempt=2, wait=1.234),
    HostRate(rate=3.75),
]


def test_every_kind_has_a_sample_and_a_distinct_name() -> None:
    assert sorted(type(sample).kind for sample in SAMPLES) == sorted(EVENTS)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda event: event.kind)
def test_an_event_survives_the_trip_as_a_record(event) -> None:
    extra = as_extra(event)
    assert extra["event"] == event.kind
    assert from_extra(extra) == event
    assert event.describe() and "{" not in event.describe()


def test_the_wording_of_each_event() -> None:
    assert [event.describe() for event in SAMPLES] == [
        "600 companies to fetch, 12 already complete",
        "done (251 records)",
        "failed: HTTP 502 after 5 attempts",
        "request rate now 2.5 req/s (host rate halved: repeated HTTP 429)",
        "finished: 603 requests, 2 retries, 1 throttle event",
        "GET /api/nots/security/131  -> 2,048 bytes in 0.250s",
        "HTTP 502; retry 2 in 1.23s",
        "host rate 3.75 req/s",
    ]
    assert (count_noun(1, "retry", "retries"), count_noun(1_234, "record")) == ("1 retry", "1,234 records")


def test_a_missing_or_misspelt_field_fails_where_the_event_is_built() -> None:
    with pytest.raises(TypeError):
        CompanyDone(type="prices", symbol="NABIL", rows=1, requests=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        TypeEnd(type="prices", requests=1, retries=0, throttle_event=1)  # type: ignore[call-arg]
    with pytest.raises(dataclasses.FrozenInstanceError):
        SAMPLES[1].rows = 2  # type: ignore[misc]


def test_a_record_with_a_malformed_event_is_an_error_not_a_blank_line() -> None:
    assert from_extra({"symbol": "NABIL"}) is None  # an ordinary log line
    with pytest.raises(ValueError, match="unknown event 'company_dnoe'"):
        from_extra({"event": "company_dnoe", "type": "prices"})
    with pytest.raises(ValueError, match="event company_done lacks symbol, retries"):
        from_extra({"event": "company_done", "type": "prices", "rows": 1, "requests": 1})


def test_the_display_refuses_a_malformed_event() -> None:
    display = make_display("plain", Console(file=io.StringIO()), 5.0)
    with pytest.raises(ValueError, match="lacks"):
        display.handle({"time": 0.0, "level": "INFO", "message": "", "label": "prices",
                        "extra": {"event": "type_start", "type": "prices"}, "exception": None})


def test_request_events_are_debug_lines_for_the_display_not_progress() -> None:
    out = io.StringIO()
    quiet, verbose = make_display("plain", Console(file=io.StringIO()), 5.0), make_display(
        "plain", Console(file=out, width=200), 5.0, verbose=True)
    for display in (quiet, verbose):
        for sample in SAMPLES[-3:]:
            display.handle({"time": 0.0, "level": sample.level, "message": sample.describe(), "label": "prices",
                            "extra": as_extra(sample), "exception": None})
    assert "GET /api/nots/security/131" in out.getvalue() and "host rate 3.75" in out.getvalue()
    assert quiet.stats("prices").requests == 0
