"""Token issuing for the simulated /api/authenticate endpoints.

NEPSE corrupts each token it hands out by inserting five junk characters at positions derived from
the salts. The simulator only does the insertion; undoing it is the client's job.
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass, field

JUNK_POSITION_TABLE = (
    5, 8, 4, 7, 9, 4, 6, 9, 5, 5, 6, 5, 3, 5, 4, 4, 9, 6, 6, 8,
    8, 6, 8, 6, 5, 8, 4, 9, 5, 9, 8, 5, 3, 4, 7, 7, 4, 7, 3, 9,
)  # fmt: skip
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"
CLEAN_TOKEN_LENGTH = 150
SALT_RANGE = (10_000, 99_999)
SALT_TEXT_LENGTH = 32  # the answer's string "salt", which no client uses
REFRESH_LIFETIME_FACTOR = 30


def junk_positions(salt: int, table: tuple[int, ...] = JUNK_POSITION_TABLE) -> tuple[int, int, int, int, int]:
    """Increasing 0-based indices, into the corrupted token, of the five inserted characters."""
    a, b, c = (salt // 100) % 10, (salt // 10) % 10, salt % 10
    k = table[a + b + c]
    return (k + 22, a + b + k + 32, a + b + k + 60, b + k + 88, a + k + 110)


def insert_junk(clean: str, positions: tuple[int, ...]) -> str:
    """Insert one random character so that it lands at each position of the result."""
    corrupted = clean
    for position in sorted(positions):
        corrupted = corrupted[:position] + secrets.choice(TOKEN_ALPHABET) + corrupted[position:]
    return corrupted


def new_clean_token() -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(CLEAN_TOKEN_LENGTH))


def new_salts() -> dict[str, int]:
    low, high = SALT_RANGE
    return {f"salt{index}": low + secrets.randbelow(high - low + 1) for index in range(1, 6)}


@dataclass
class TokenStore:
    """Clean tokens the server accepts, with their expiry (time.monotonic seconds)."""

    access_lifetime_s: float
    table: tuple[int, ...] = JUNK_POSITION_TABLE  # the simulator's css.wasm is generated for this table
    access: dict[str, float] = field(default_factory=dict)
    refresh: dict[str, float] = field(default_factory=dict)

    def issue(self) -> dict:
        """A fresh /prove or /refresh-token answer; remembers the clean tokens."""
        now = time.monotonic()
        self._forget_expired(now)
        access, refresh = new_clean_token(), new_clean_token()
        self.access[access] = now + self.access_lifetime_s
        self.refresh[refresh] = now + self.access_lifetime_s * REFRESH_LIFETIME_FACTOR
        salts = new_salts()
        return {
            "accessToken": insert_junk(access, junk_positions(salts["salt2"], self.table)),
            "refreshToken": insert_junk(refresh, junk_positions(salts["salt1"], self.table)),
            "salt": new_clean_token()[:SALT_TEXT_LENGTH],
            **salts,
            "serverTime": int(time.time() * 1000),
            "tokenType": None,
            "isDisplayActive": False,
            "popupDocFor": "ALL",
        }

    def access_is_valid(self, token: str) -> bool:
        return self.access.get(token, 0.0) > time.monotonic()

    def refresh_is_valid(self, token: str) -> bool:
        return self.refresh.get(token, 0.0) > time.monotonic()

    def _forget_expired(self, now: float) -> None:
        for tokens in (self.access, self.refresh):
            for token in [token for token, expiry in tokens.items() if expiry <= now]:
                del tokens[token]
