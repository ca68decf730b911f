"""Everything nepse-etl knows about the shape of the NEPSE web API, in one place.

NEPSE publishes no API and changes it without notice, so every path, header and
auth detail lives here: a change on their side should be a one-line fix on ours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://www.nepalstock.com"

PROVE_PATH = "/api/authenticate/prove"
COMPANY_LIST_PATH = "/api/nots/company/list"
SECURITY_LIST_PATH = "/api/nots/security"  # every listed security, promoter shares included
SECURITY_LIST_PARAMS = {"nonDelisted": "true"}
PRICE_HISTORY_PATH = "/api/nots/market/history/security/{id}"
REPORTS_PATH = "/api/nots/application/reports/{id}"
DIVIDENDS_PATH = "/api/nots/application/dividend/{id}"
PROFILE_PATH = "/api/nots/security/profile/{id}"
# Indices (docs/nepse-api-notes.md says where each fact was found). The list is an unpaged array of
# {id, indexCode, indexName, description, sectorMaster, activeStatus, keyIndexFlag, ...}; each index's
# daily history is a Spring page of {businessDate, exchangeIndexId, closingIndex, openIndex, highIndex,
# lowIndex, turnoverValue, turnoverVolume, totalTransaction, absChange, percentageChange,
# fiftyTwoWeekHigh, fiftyTwoWeekLow}, newest first, under the same auth as every /api/nots call.
INDEX_LIST_PATH = "/api/nots/index"
INDEX_HISTORY_PATH = "/api/nots/index/history/{id}"
# The headline indices' ids; the sector sub-indices are 51-56, 59-61 and 64-67 (the list says which).
NEPSE_INDEX_ID = 58
SENSITIVE_INDEX_ID = 57
FLOAT_INDEX_ID = 62
SENSITIVE_FLOAT_INDEX_ID = 63
# The site's own module that computes the token junk positions (the path nepse-api-helper downloads).
CSS_WASM_PATH = "/assets/prod/css.wasm"
CSS_WASM_EXPORTS = ("cdx", "rdx", "bdx", "ndx", "mdx")
# How the public clients call those exports, one call per junk position: (export, indices into
# (salt1, ..., salt5)). Each export answers from its second argument: salt2 for the access token,
# salt1 for the refresh token.
ACCESS_POSITION_CALLS = (("cdx", (0, 1, 2, 3, 4)), ("rdx", (0, 1, 3, 2, 4)), ("bdx", (0, 1, 3, 2, 4)),
                         ("ndx", (0, 1, 3, 2, 4)), ("mdx", (0, 1, 3, 2, 4)))
REFRESH_POSITION_CALLS = (("cdx", (1, 0, 2, 4, 3)), ("rdx", (1, 0, 2, 3, 4)), ("bdx", (1, 0, 3, 2, 4)),
                          ("ndx", (1, 0, 3, 2, 4)), ("mdx", (1, 0, 3, 2, 4)))

AUTH_SCHEME = "Salter"
# The site's access token lives about 60 s; public clients re-prove well before that.
TOKEN_REFRESH_AFTER_S = 45.0
# Spring paging: the largest page size known to be accepted.
MAX_PAGE_SIZE = 500

USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)

# Table D of the site's css.wasm, as reduced in docs (see nepse-api.md, "Authentication"). The built-in
# formula below is the fallback when the module itself cannot be fetched or run (etl/wasm_auth.py).
_JUNK_TABLE = (
    5, 8, 4, 7, 9, 4, 6, 9, 5, 5, 6, 5, 3, 5, 4, 4, 9, 6, 6, 8,
    8, 6, 8, 6, 5, 8, 4, 9, 5, 9, 8, 5, 3, 4, 7, 7, 4, 7, 3, 9,
)


def browser_headers(base_url: str) -> dict[str, str]:
    """Headers that make us look like the site's own single-page app."""
    parts = urlsplit(base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return {
        "User-Agent": USER_AGENT,
        "Accept": "application/json, text/plain, */*",
        "Accept-Language": "en-US,en;q=0.9",
        "Referer": origin + "/",
        "Origin": origin,
    }


Positions = tuple[int, ...]
# (access token positions, refresh token positions) from a /prove body's salts.
PositionSource = Callable[[Mapping[str, Any]], tuple[Positions, Positions]]


def junk_positions(salt: int) -> tuple[int, int, int, int, int]:
    """The five 0-based indices of the junk characters NEPSE inserts into a token (the built-in formula)."""
    a = (salt // 100) % 10
    b = (salt // 10) % 10
    c = salt % 10
    k = _JUNK_TABLE[a + b + c]
    return (k + 22, a + b + k + 32, a + b + k + 60, b + k + 88, a + k + 110)


def formula_positions(body: Mapping[str, Any]) -> tuple[Positions, Positions]:
    """Access positions from salt2, refresh positions from salt1."""
    return junk_positions(int(body["salt2"])), junk_positions(int(body["salt1"]))


def remove_junk(raw_token: str, positions: Positions) -> str:
    """The token without the characters at `positions` (indices into the raw token)."""
    drop = set(positions)
    if max(drop) >= len(raw_token):
        raise ValueError(f"token of {len(raw_token)} characters is too short to be a NEPSE token")
    return "".join(ch for index, ch in enumerate(raw_token) if index not in drop)


def clean_token(raw_token: str, salt: int) -> str:
    """Remove the junk characters from a token as served by /prove or /refresh-token."""
    return remove_junk(raw_token, junk_positions(salt))


def access_token(prove_body: Mapping[str, Any], positions: PositionSource = formula_positions) -> str:
    """The clean access token from a /prove body.

    The refresh token beside it is left alone: renewing through /refresh-token costs one request, as a new
    /prove does, and needs a refresh token that has not expired yet, so re-proving is never dearer and has
    one path fewer to go wrong."""
    access_positions, _refresh_positions = positions(prove_body)
    return remove_junk(str(prove_body["accessToken"]), access_positions)


def auth_header(access_token: str) -> dict[str, str]:
    return {"Authorization": f"{AUTH_SCHEME} {access_token}"}
