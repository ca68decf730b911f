"""Everything nepse-etl knows about the shape of the NEPSE web API, in one place.

NEPSE publishes no API and changes it without notice, so every path, header and
auth detail lives here: a change on their side should be a one-line fix on ours.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://www.nepalstock.com"

PROVE_PATH = "/api/authenticate/prove"
REFRESH_PATH = "/api/authenticate/refresh-token"
COMPANY_LIST_PATH = "/api/nots/company/list"
SECURITY_LIST_PATH = "/api/nots/security"  # every listed security, promoter shares included
SECURITY_LIST_PARAMS = {"nonDelisted": "true"}
PRICE_HISTORY_PATH = "/api/nots/market/history/security/{id}"
REPORTS_PATH = "/api/nots/application/reports/{id}"
DIVIDENDS_PATH = "/api/nots/application/dividend/{id}"
PROFILE_PATH = "/api/nots/security/profile/{id}"

AUTH_SCHEME = "Salter"
# The site's access token lives about 60 s; public clients re-prove well before that.
TOKEN_REFRESH_AFTER_S = 45.0
# Spring paging: the largest page size known to be accepted.
MAX_PAGE_SIZE = 500

USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)

# Table D of the site's css.wasm, as reduced in docs (see nepse-api.md, "Authentication").
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


def junk_positions(salt: int) -> tuple[int, int, int, int, int]:
    """The five 0-based indices of the junk characters NEPSE inserts into a token."""
    a = (salt // 100) % 10
    b = (salt // 10) % 10
    c = salt % 10
    k = _JUNK_TABLE[a + b + c]
    return (k + 22, a + b + k + 32, a + b + k + 60, b + k + 88, a + k + 110)


def clean_token(raw_token: str, salt: int) -> str:
    """Remove the junk characters from a token as served by /prove or /refresh-token."""
    positions = set(junk_positions(salt))
    if max(positions) >= len(raw_token):
        raise ValueError(f"token of {len(raw_token)} characters is too short to be a NEPSE token")
    return "".join(ch for index, ch in enumerate(raw_token) if index not in positions)


def clean_tokens(prove_body: dict) -> tuple[str, str]:
    """(access token, refresh token) from a /prove body: access uses salt2, refresh salt1."""
    access = clean_token(str(prove_body["accessToken"]), int(prove_body["salt2"]))
    refresh = clean_token(str(prove_body["refreshToken"]), int(prove_body["salt1"]))
    return access, refresh


def auth_header(access_token: str) -> dict[str, str]:
    return {"Authorization": f"{AUTH_SCHEME} {access_token}"}
