"""The synthetic company list: who is listed, under which symbol, and how each one trades."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import itertools
import math
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from etl.simulator import names

EQUITY = "Equity"
DEBENTURE = "Non-Convertible Debentures"
MUTUAL_FUND = "Mutual Funds"
PREFERENCE = "Preference Shares"

ACTIVE, DELISTED, SUSPENDED = "A", "D", "S"

INSTRUMENT_SHARES: dict[str, float] = {EQUITY: 0.765, DEBENTURE: 0.14, MUTUAL_FUND: 0.09, PREFERENCE: 0.005}

STATUS_SHARES: dict[str, dict[str, float]] = {
    EQUITY: {ACTIVE: 0.555, DELISTED: 0.395, SUSPENDED: 0.05},
    DEBENTURE: {ACTIVE: 0.92, DELISTED: 0.08},
    MUTUAL_FUND: {ACTIVE: 0.72, DELISTED: 0.28},
    PREFERENCE: {DELISTED: 1.0},
}

REGULATORS: dict[str, str] = {
    "Commercial Banks": "Nepal Rastra Bank",
    "Development Banks": "Nepal Rastra Bank",
    "Finance": "Nepal Rastra Bank",
    "Microfinance": "Nepal Rastra Bank",
    "Investment": "Nepal Rastra Bank",
    "Mutual Fund": "Nepal Rastra Bank",
    "Hydro Power": "Nepal Hydropower Board",
    "Life Insurance": "Nepal Insurance Board",
    "Non Life Insurance": "Nepal Insurance Board",
    "Manufacturing And Processing": "Department of Industry",
    "Tradings": "Department of Industry",
    "Hotels And Tourism": "Ministry of Tourism",
    "Others": "N/A",
}

EQUITY_SECTOR_SHARES: dict[str, float] = {
    "Hydro Power": 98,
    "Development Banks": 96,
    "Finance": 75,
    "Microfinance": 71,
    "Commercial Banks": 31,
    "Manufacturing And Processing": 29,
    "Non Life Insurance": 19,
    "Life Insurance": 18,
    "Others": 11,
    "Hotels And Tourism": 8,
    "Investment": 7,
    "Tradings": 5,
}
DEBENTURE_SECTOR_SHARES: dict[str, float] = {
    "Commercial Banks": 72,
    "Development Banks": 8,
    "Finance": 4,
    "Investment": 2,
}
FUND_SECTOR_SHARES: dict[str, float] = {
    "Commercial Banks": 39,
    "Mutual Fund": 13,
    "Development Banks": 2,
    "Life Insurance": 2,
    "Finance": 1,
}
PREFERENCE_SECTOR_SHARES: dict[str, float] = {"Commercial Banks": 1, "Hotels And Tourism": 1}

# Typical price level per sector (NPR), the centre of a log-normal spread.
SECTOR_PRICE_LEVEL: dict[str, float] = {
    "Commercial Banks": 250,
    "Development Banks": 350,
    "Finance": 400,
    "Microfinance": 800,
    "Hydro Power": 260,
    "Life Insurance": 600,
    "Non Life Insurance": 700,
    "Manufacturing And Processing": 900,
    "Hotels And Tourism": 600,
    "Investment": 1000,
    "Tradings": 2000,
    "Others": 800,
    "Mutual Fund": 10,
}

# The one debenture every consumer can rely on: a slash in the symbol, and active.
SLASH_DEBENTURE = {
    "symbol": "NICAD85/86",
    "company_name": "NIC Asia Bank Ltd.",
    "security_name": "8.5% NIC Asia Debenture 2085/86",
}

EARLY_LISTING_RANGE = (datetime.date(1994, 1, 1), datetime.date(2019, 12, 31))
LATE_LISTING_RANGE = (datetime.date(2020, 6, 1), datetime.date(2026, 3, 31))
DELISTING_RANGE = (datetime.date(2016, 1, 1), datetime.date(2026, 6, 30))
SUSPENSION_RANGE = (datetime.date(2025, 6, 1), datetime.date(2026, 9, 30))


@dataclass(frozen=True)
class TradingTraits:
    """How a security trades; fixed per security, independent of the simulated 'today'."""

    anchor_price: float
    daily_volatility: float
    trade_probability: float
    zero_volume_probability: float
    median_volume: float
    shares_per_trade: float
    first_trading_day: datetime.date
    last_trading_day: datetime.date | None


@dataclass(frozen=True)
class Security:
    id: int
    symbol: str  # as served: may carry stray spaces
    company_name: str
    security_name: str
    status: str
    instrument_type: str
    sector: str
    email: str
    website: str
    traits: TradingTraits

    def company_json(self) -> dict:
        return {
            "id": self.id,
            "companyName": self.company_name,
            "symbol": self.symbol,
            "securityName": self.security_name,
            "status": self.status,
            "companyEmail": self.email,
            "website": self.website,
            "sectorName": self.sector,
            "regulatoryBody": REGULATORS[self.sector],
            "instrumentType": self.instrument_type,
        }


def quota_list(rng: random.Random, shares: dict[str, float], count: int) -> list[str]:
    """`count` labels in exact proportion to `shares` (largest remainder), shuffled."""
    total = sum(shares.values())
    exact = {label: count * share / total for label, share in shares.items()}
    allotted = {label: math.floor(value) for label, value in exact.items()}
    by_remainder = sorted(exact, key=lambda label: exact[label] - allotted[label], reverse=True)
    for label in by_remainder[: count - sum(allotted.values())]:
        allotted[label] += 1
    labels = [label for label, times in allotted.items() for _ in range(times)]
    rng.shuffle(labels)
    return labels


def security_ids(rng: random.Random, count: int) -> list[int]:
    """Increasing, unique, mostly consecutive ids with occasional gaps, like NEPSE's."""
    ids = [rng.randint(100, 140)]
    while len(ids) < count:
        gap = 1 if rng.random() < 0.7 else rng.randint(2, 15)
        ids.append(ids[-1] + gap)
    return ids


class SymbolBook:
    """Hands out unique (trimmed) ticker symbols."""

    def __init__(self, reserved: set[str]) -> None:
        self.taken = set(reserved)

    def claim(self, rng: random.Random, candidates: list[str]) -> str:
        """The first free candidate, else the first one's stem plus a random letter."""
        fallbacks = (candidates[0][:5] + rng.choice(string.ascii_uppercase) for _ in itertools.count())
        symbol = next(c for c in itertools.chain(candidates, fallbacks) if c not in self.taken)
        self.taken.add(symbol)
        return symbol


def symbol_candidates(rng: random.Random, name: str) -> list[str]:
    words = [word for word in name.replace(".", " ").replace("-", " ").split() if word[0].isalpha()]
    initials = "".join(word[0] for word in words).upper()
    first = words[0].upper()
    candidates = [initials, first[:2] + initials[1:], first[:3] + initials[1:], first[:5], first[:4] + "L"]
    if rng.random() < 0.5:
        candidates[0], candidates[1] = candidates[1], candidates[0]
    return [candidate[:6] for candidate in candidates if len(candidate) >= 3]


@dataclass(frozen=True)
class Listing:
    """Names and symbol of one security, before whitespace quirks are sprinkled in."""

    symbol: str
    company_name: str
    security_name: str
    sector: str


def equity_listing(rng: random.Random, book: SymbolBook, sector: str) -> Listing:
    name = names.company_name(rng, sector)
    return Listing(book.claim(rng, symbol_candidates(rng, name)), name, name, sector)


def debenture_listing(rng: random.Random, book: SymbolBook, sector: str) -> Listing:
    place = names.place(rng)
    issuer = names.company_name(rng, sector, place)
    coupon = rng.choice((8.5, 9, 10, 10.25, 10.5, 11, 12))
    maturity = rng.randint(2082, 2093)
    next_year = f"/{(maturity + 1) % 100:02d}" if rng.random() < 0.5 else ""  # "2085/86" or "2085"
    roots = [candidate[:4] for candidate in symbol_candidates(rng, issuer)]
    symbol = book.claim(rng, [f"{root}D{maturity % 100}{next_year}" for root in roots])
    return Listing(symbol, issuer, f"{coupon:g}% {place} Debenture {maturity}{next_year}", sector)


def fund_listing(rng: random.Random, book: SymbolBook, sector: str) -> Listing:
    place = names.place(rng)
    fund = names.fund_name(rng, place)
    sponsor = fund if sector == "Mutual Fund" else names.company_name(rng, sector, place)
    symbol = book.claim(rng, symbol_candidates(rng, fund))
    return Listing(symbol, sponsor, fund, sector)


def preference_listing(rng: random.Random, book: SymbolBook, sector: str) -> Listing:
    name = names.company_name(rng, sector)
    symbol = book.claim(rng, [candidate[:5] + "P" for candidate in symbol_candidates(rng, name)])
    return Listing(symbol, name, f"{name} Preference Share", sector)


LISTING_BUILDERS = {
    EQUITY: (equity_listing, EQUITY_SECTOR_SHARES),
    DEBENTURE: (debenture_listing, DEBENTURE_SECTOR_SHARES),
    MUTUAL_FUND: (fund_listing, FUND_SECTOR_SHARES),
    PREFERENCE: (preference_listing, PREFERENCE_SECTOR_SHARES),
}


def random_day(rng: random.Random, bounds: tuple[datetime.date, datetime.date]) -> datetime.date:
    low, high = bounds
    return low + datetime.timedelta(days=rng.randint(0, (high - low).days))


def anchor_price(rng: random.Random, instrument_type: str, sector: str) -> float:
    if instrument_type == DEBENTURE:
        return rng.uniform(900, 1100)
    if instrument_type == MUTUAL_FUND:
        return rng.uniform(8, 16)
    if instrument_type == PREFERENCE:
        return rng.uniform(90, 130)
    price = SECTOR_PRICE_LEVEL[sector] * rng.lognormvariate(0, 0.5)
    if rng.random() < 0.03:
        price *= 6
    return max(price, 100.0)


# 54 of the 79 active debentures in the real company list have no row in ten years of real prices; those
# that trade do so on 16% to 88% of days.
DEBENTURE_NEVER_TRADES = 0.68
DEBENTURE_TRADE_PROBABILITY = (0.16, 0.88)


def debenture_trade_probability(rng: random.Random) -> float:
    return 0.0 if rng.random() < DEBENTURE_NEVER_TRADES else rng.uniform(*DEBENTURE_TRADE_PROBABILITY)


def trading_traits(rng: random.Random, instrument_type: str, sector: str, status: str) -> TradingTraits:
    volatility = {DEBENTURE: 0.004, MUTUAL_FUND: 0.01, PREFERENCE: 0.01}.get(instrument_type)
    trade_probability = {DEBENTURE: debenture_trade_probability(rng), PREFERENCE: 0.2}.get(instrument_type)
    median_volume = {DEBENTURE: 60.0, MUTUAL_FUND: 20_000.0, PREFERENCE: 200.0}.get(instrument_type)
    listed_late = rng.random() < 0.12
    last_day = {
        DELISTED: random_day(rng, DELISTING_RANGE),
        SUSPENDED: random_day(rng, SUSPENSION_RANGE),
    }.get(status)
    return TradingTraits(
        anchor_price=anchor_price(rng, instrument_type, sector),
        daily_volatility=volatility or rng.uniform(0.012, 0.03),
        trade_probability=rng.uniform(0.955, 1.0) if trade_probability is None else trade_probability,
        zero_volume_probability=0.01,
        median_volume=median_volume or 10_000 * rng.lognormvariate(0, 1.0),
        shares_per_trade=rng.uniform(40, 400),
        first_trading_day=random_day(rng, LATE_LISTING_RANGE if listed_late else EARLY_LISTING_RANGE),
        last_trading_day=last_day,
    )


def contact_details(rng: random.Random, company_name: str) -> tuple[str, str]:
    domain = names.domain_for(rng, company_name)
    email = rng.choice(("info@", "info@", "share@", "compliance@", "company.affairs@")) + domain
    if rng.random() < 0.35:
        return email, ""
    return email, rng.choice(names.WEBSITE_PREFIXES) + domain


def sample_indices(rng: random.Random, candidates: list[int], share: float, minimum: int = 1) -> list[int]:
    wanted = max(minimum, round(len(candidates) * share))
    return rng.sample(candidates, min(wanted, len(candidates)))


def with_double_space(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    if len(words) < 2:
        return text
    cut = rng.randint(1, len(words) - 1)
    return " ".join(words[:cut]) + "  " + " ".join(words[cut:])


def add_whitespace_quirks(rng: random.Random, securities: list[Security], protected: int | None) -> None:
    """Sprinkle the whitespace mess the real list carries (in place); `protected` is left alone."""
    everyone = [i for i in range(len(securities)) if i != protected]
    with_website = [i for i in everyone if securities[i].website]
    equities = [i for i in everyone if securities[i].instrument_type == EQUITY]

    def change(indices: list[int], field: str, edit: Callable[[str], str]) -> None:
        for i in indices:
            securities[i] = dataclasses.replace(securities[i], **{field: edit(getattr(securities[i], field))})

    # Rates of the real company list (613 securities, 402 with a website): 15 company names and 8 security
    # names with a double space, 5 and 9 with a trailing space, 1 with a leading one; 2 websites ending in
    # tabs, 3 with stray spaces; 1 e-mail with a trailing space.
    double_space = functools.partial(with_double_space, rng)
    change(sample_indices(rng, everyone, 15 / 613), "company_name", double_space)
    change(sample_indices(rng, everyone, 8 / 613), "security_name", double_space)
    change(sample_indices(rng, everyone, 5 / 613), "company_name", lambda text: text + " ")
    change(sample_indices(rng, everyone, 9 / 613), "security_name", lambda text: text + " ")
    change(sample_indices(rng, everyone, 1 / 613), "company_name", lambda text: " " + text)
    change(sample_indices(rng, with_website, 2 / 402), "website", lambda text: text + "\t\t\t\t")
    change(sample_indices(rng, with_website, 3 / 402), "website", lambda text: f" {text} ")
    change(sample_indices(rng, everyone, 1 / 613), "email", lambda text: text + " ")
    padded = sample_indices(rng, equities, 0.0, minimum=2)
    change(padded[:1], "symbol", lambda text: f" {text} ")
    change(padded[1:], "symbol", lambda text: text + " ")


def abbreviate_limited(text: str) -> str:
    return text.replace("Limited", "Ltd.") if "Limited" in text else text.replace("Ltd.", "Limited")


def status_order(rng: random.Random, kind: str, count: int) -> list[str]:
    """Statuses for the `count` securities of one kind; the first debenture is always active."""
    statuses = quota_list(rng, STATUS_SHARES[kind], count)
    if kind == DEBENTURE and statuses and ACTIVE in statuses:
        first_active = statuses.index(ACTIVE)
        statuses[0], statuses[first_active] = statuses[first_active], statuses[0]
    return statuses


def generate_securities(seed: int, count: int) -> list[Security]:
    """The company list for `seed`, in id order."""
    rng = random.Random(f"{seed}:companies")
    ids = security_ids(rng, count)
    instrument_types = quota_list(rng, INSTRUMENT_SHARES, count)
    sectors = {
        kind: iter(quota_list(rng, shares, instrument_types.count(kind)))
        for kind, (_, shares) in LISTING_BUILDERS.items()
    }
    statuses = {kind: iter(status_order(rng, kind, instrument_types.count(kind))) for kind in STATUS_SHARES}
    book = SymbolBook(reserved={SLASH_DEBENTURE["symbol"]})
    first_debenture = instrument_types.index(DEBENTURE) if DEBENTURE in instrument_types else None
    securities = []
    for position, (security_id, kind) in enumerate(zip(ids, instrument_types, strict=True)):
        build, _ = LISTING_BUILDERS[kind]
        listing = build(rng, book, next(sectors[kind]))
        if position == first_debenture:
            listing = dataclasses.replace(listing, **SLASH_DEBENTURE)
        if rng.random() < 0.05:
            listing = dataclasses.replace(listing, security_name=abbreviate_limited(listing.security_name))
        status = next(statuses[kind])
        email, website = contact_details(rng, listing.company_name)
        traits = trading_traits(random.Random(f"{seed}:traits:{security_id}"), kind, listing.sector, status)
        if position == first_debenture and traits.trade_probability == 0.0:  # the one every consumer relies on
            traits = dataclasses.replace(traits, trade_probability=DEBENTURE_TRADE_PROBABILITY[1])
        securities.append(
            Security(
                id=security_id,
                symbol=listing.symbol,
                company_name=listing.company_name,
                security_name=listing.security_name,
                status=status,
                instrument_type=kind,
                sector=listing.sector,
                email=email,
                website=website,
                traits=traits,
            )
        )
    add_whitespace_quirks(rng, securities, protected=first_debenture)
    return securities
