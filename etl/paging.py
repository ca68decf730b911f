"""Paging as an object: the client asks a paginator for the next request and feeds it each page.

The contract, two methods, as dlt's paginators have it:

- `next_request()`: the query parameters of the next page, or None when every page is read;
- `update(page)`: check a decoded page and return its rows, advancing only once the page is sound.

A page that fails `update` raises a FetchError and leaves the paginator where it was, so the
client's retry asks for the same page again.
"""

from __future__ import annotations

from typing import Any, Protocol

from etl.failures import FetchError


class Paginator(Protocol):
    def next_request(self) -> dict[str, Any] | None: ...

    def update(self, page: Any) -> list[Any]: ...

    @property
    def pages_left(self) -> int | None:
        """Pages still to read, once the server has said how many there are (for the host budget's shares)."""
        ...


class SpringPaginator:
    """Spring Data pages (`content`, `number`, `size`, `totalElements`, `totalPages`, `last`).

    A page that contradicts its own metadata is a page NEPSE silently cut short: it is refused
    (retryable), never taken as the end. At most `max_pages` pages are read; a server that never
    says it is done is an error, not a hang.
    """

    def __init__(self, page_size: int, max_pages: int) -> None:
        self.page_size = page_size
        self.max_pages = max_pages
        self.page = 0  # the page to ask for next
        self.done = False
        self.total_pages: int | None = None

    def next_request(self) -> dict[str, Any] | None:
        if self.done:
            return None
        if self.page >= self.max_pages:
            raise FetchError("too_many_pages", f"more than {self.max_pages} pages (the server never said 'last')")
        return {"size": self.page_size, "page": self.page}

    def update(self, page: Any) -> list[Any]:
        content = self._checked_content(page)
        self.total_pages = _whole(page, "totalPages", 0)
        if page.get("last", True) or not content or self.page + 1 >= self.total_pages:
            self.done = True
        self.page += 1
        return content

    @property
    def pages_left(self) -> int | None:
        if self.done:
            return 0
        return None if self.total_pages is None else max(0, self.total_pages - self.page)

    def _checked_content(self, body: Any) -> list[Any]:
        page = self.page
        if not isinstance(body, dict) or not isinstance(body.get("content"), list):
            raise FetchError("bad_shape", "expected a Spring page with a 'content' array")
        content = body["content"]
        number = _whole(body, "number", page)
        if number != page:
            raise FetchError("inconsistent_page", f"asked for page {page}, got page {number}")
        claimed = _whole(body, "numberOfElements", len(content))
        if claimed != len(content):
            raise FetchError("inconsistent_page", f"page {page} claims {claimed} rows, carries {len(content)}")
        size = _whole(body, "size", 0)
        total = _whole(body, "totalElements", None)
        if size > 0 and total is not None:
            expected = max(0, min(size, total - page * size))
            if len(content) != expected:
                raise FetchError("inconsistent_page", f"page {page} carries {len(content)} rows where "
                                 f"{expected} were due ({total} in all, {size} a page)")
        return content


class StopBefore:
    """A newest-first daily history: no page after one that reaches a day before `since`.

    For a server that ignores the window's startDate (not established for every NEPSE history
    endpoint, see docs/nepse-api-notes.md): a daily run then reads one page, not the whole history.
    """

    def __init__(self, inner: Paginator, date_field: str, since: str) -> None:
        self.inner = inner
        self.date_field = date_field
        self.since = since
        self.reached = False

    @property
    def pages_left(self) -> int | None:
        return 0 if self.reached else self.inner.pages_left

    def next_request(self) -> dict[str, Any] | None:
        return None if self.reached else self.inner.next_request()

    def update(self, page: Any) -> list[Any]:
        rows = self.inner.update(page)
        days = [row[self.date_field][:10] for row in rows
                if isinstance(row, dict) and isinstance(row.get(self.date_field), str)]
        if days and min(days) < self.since:
            self.reached = True
        return rows


def _whole(body: dict[str, Any], key: str, default: int | None) -> Any:
    """A page's metadata number; missing or null gives `default`, anything else not a whole number is
    a malformed page."""
    value = body.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FetchError("bad_shape", f"page metadata {key}={value!r} is not a whole number") from None
