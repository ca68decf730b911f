"""The token handshake against the documented junk positions."""

from __future__ import annotations

import random
import string

import pytest

from etl import api

D = [5, 8, 4, 7, 9, 4, 6, 9, 5, 5, 6, 5, 3, 5, 4, 4, 9, 6, 6, 8, 8, 6, 8, 6, 5, 8, 4, 9, 5, 9, 8, 5, 3, 4, 7, 7, 4,
     7, 3, 9]


def test_positions_for_a_worked_salt() -> None:
    # salt 27431: a=4, b=3, c=1, k=D[8]=5 -> 27, 44, 72, 96, 119
    assert api.junk_positions(27431) == (27, 44, 72, 96, 119)


def test_positions_match_the_documented_formula_for_many_salts() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        salt = rng.randrange(0, 100000)
        a, b, c = (salt // 100) % 10, (salt // 10) % 10, salt % 10
        k = D[a + b + c]
        assert api.junk_positions(salt) == (k + 22, a + b + k + 32, a + b + k + 60, b + k + 88, a + k + 110)


def _corrupt(clean: str, salt: int) -> str:
    raw = list(clean)
    for position in api.junk_positions(salt):  # increasing: each index is into the raw string
        raw.insert(position, "#")
    return "".join(raw)


def test_clean_token_removes_exactly_the_inserted_characters() -> None:
    rng = random.Random(2)
    for _ in range(500):
        clean = "".join(rng.choice(string.ascii_letters + string.digits + "-_.") for _ in range(160))
        salt = rng.randrange(0, 100000)
        assert api.clean_token(_corrupt(clean, salt), salt) == clean


def test_access_uses_salt2_and_refresh_uses_salt1() -> None:
    access, refresh = "a" * 150, "r" * 150
    body = {"accessToken": _corrupt(access, 222), "refreshToken": _corrupt(refresh, 111), "salt1": 111, "salt2": 222}
    assert api.formula_positions(body) == (api.junk_positions(222), api.junk_positions(111))
    assert api.access_token(body) == access


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        api.clean_token("x" * 50, 12345)


def test_browser_headers_name_the_host() -> None:
    headers = api.browser_headers("https://www.nepalstock.com")
    assert headers["Origin"] == "https://www.nepalstock.com"
    assert headers["Referer"] == "https://www.nepalstock.com/"
    assert "Mozilla/" in headers["User-Agent"]
