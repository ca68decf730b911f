"""What a response body must look like before anyone reads it.

Each check takes the decoded JSON and returns what the caller gets back, or raises a FetchError
(a retryable `bad_shape`): a server that answers 200 with the wrong shape is a server having a bad
moment, not a bug of ours.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from etl import api
from etl.failures import FetchError

# Takes a decoded body, returns what the caller receives (the body itself, or the rows of a page).
BodyCheck = Callable[[Any], Any]


def parse_json_body(body: bytes) -> Any:
    if not body.strip():
        raise FetchError("empty_body", "empty 200 response")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass  # what orjson refuses but Python reads (NaN, UTF-16, integers beyond 64 bits) reads as before
    try:
        return json.loads(body)
    except ValueError:
        raise FetchError("bad_json", "response is not valid JSON") from None


def check_prove_body(body: Any, positions: api.PositionSource = api.formula_positions) -> Any:
    keys = ("accessToken", "salt1", "salt2")
    if not isinstance(body, dict) or any(key not in body for key in keys):
        raise FetchError("bad_shape", "authentication answer lacks the token fields")
    try:
        api.access_token(body, positions)
    except (ValueError, TypeError, KeyError) as exc:
        raise FetchError("bad_shape", f"unusable token: {exc}") from None
    return body


def check_json_list(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise FetchError("bad_shape", f"expected a JSON array, got {type(body).__name__}")
    return body


def check_json_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FetchError("bad_shape", f"expected a JSON object, got {type(body).__name__}")
    return body
