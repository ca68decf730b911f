"""Simulator settings, and the one mapping between them and the command-line flags."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from etl.simulator.tokens import JUNK_POSITION_TABLE


@dataclass(frozen=True)
class SimConfig:
    seed: int = 42
    n_companies: int = 600
    today: datetime.date | None = None
    history_days: int = 365
    page_size_cap: int = 500
    token_lifetime_s: float = 60.0
    require_browser_headers: bool = True
    # The token junk-position table; the css.wasm the simulator serves is generated for it.
    junk_table: tuple[int, ...] = JUNK_POSITION_TABLE
    css_wasm_blocked: bool = False  # answer 404 for /assets/prod/css.wasm
    # Faults. All off by default; they only touch /api/... calls, never /_sim/....
    latency_median_s: float = 0.0
    latency_sigma: float = 0.0
    p_drop: float = 0.0
    p_502: float = 0.0
    p_500: float = 0.0
    p_empty_200: float = 0.0
    p_malformed_json: float = 0.0
    p_429: float = 0.0
    retry_after_s: float = 1.0
    p_slow: float = 0.0
    slow_s: float = 3.0
    p_short_page: float = 0.0
    fail_ids: frozenset[int] = frozenset()
    fault_seed: int | None = None


# The faults that --fault-rate spreads its rate evenly across.
FAULT_RATE_FIELDS: tuple[str, ...] = (
    "p_drop",
    "p_502",
    "p_500",
    "p_empty_200",
    "p_malformed_json",
    "p_429",
    "p_short_page",
)


def parse_date(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


def parse_id_set(text: str) -> frozenset[int]:
    return frozenset(int(part) for part in text.split(",") if part.strip())


def format_id_set(ids: frozenset[int]) -> str:
    return ",".join(str(security_id) for security_id in sorted(ids))


def parse_junk_table(text: str) -> tuple[int, ...]:
    values = tuple(int(part) for part in text.split(","))
    if len(values) != len(JUNK_POSITION_TABLE) or not all(0 <= value <= 9 for value in values):
        raise argparse.ArgumentTypeError(f"expected {len(JUNK_POSITION_TABLE)} comma-separated digits 0-9")
    return values


def format_int_list(values: tuple[int, ...]) -> str:
    return ",".join(map(str, values))


def parse_flag(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class CliFlag:
    field: str
    flag: str
    parse: Callable[[str], Any]
    format: Callable[[Any], str] = str
    help: str = ""


CLI_FLAGS: tuple[CliFlag, ...] = (
    CliFlag("seed", "--seed", int, help="seed of the synthetic data"),
    CliFlag("n_companies", "--companies", int, help="number of companies in the list"),
    CliFlag("today", "--today", parse_date, datetime.date.isoformat, "simulated date YYYY-MM-DD; none: today in Nepal"),
    CliFlag("history_days", "--history-days", int, help="days of price history served"),
    CliFlag("page_size_cap", "--page-size-cap", int, help="largest page size honoured"),
    CliFlag("token_lifetime_s", "--token-lifetime", float, repr, "access-token lifetime in seconds"),
    CliFlag("latency_median_s", "--latency-median", float, repr, "median added latency (s)"),
    CliFlag("latency_sigma", "--latency-sigma", float, repr, "log-normal sigma of the latency"),
    CliFlag("p_drop", "--p-drop", float, repr, "probability to drop the connection"),
    CliFlag("p_502", "--p-502", float, repr, "probability of a 502"),
    CliFlag("p_500", "--p-500", float, repr, "probability of a 500"),
    CliFlag("p_empty_200", "--p-empty-200", float, repr, "probability of a 200 with an empty body"),
    CliFlag("p_malformed_json", "--p-malformed-json", float, repr, "probability of truncated JSON"),
    CliFlag("p_429", "--p-429", float, repr, "probability of a 429 with Retry-After"),
    CliFlag("retry_after_s", "--retry-after", float, repr, "Retry-After seconds sent with a 429"),
    CliFlag("p_slow", "--p-slow", float, repr, "probability of a slow answer"),
    CliFlag("slow_s", "--slow-s", float, repr, "extra delay of a slow answer (s)"),
    CliFlag("p_short_page", "--p-short-page", float, repr, "probability a page silently misses rows"),
    CliFlag("fail_ids", "--fail-ids", parse_id_set, format_id_set, "comma-separated ids that always 500"),
    CliFlag("fault_seed", "--fault-seed", int, help="seed of the fault RNG (default: from --seed)"),
    CliFlag("junk_table", "--junk-table", parse_junk_table, format_int_list,
            "the 40 digits of the token junk-position table, comma separated; css.wasm is generated for it"),
    CliFlag("css_wasm_blocked", "--css-wasm-blocked", parse_flag, str, "true: answer 404 for css.wasm"),
)

BROWSER_CHECK_FIELD = "require_browser_headers"
BROWSER_CHECK_FLAG = "--require-browser-headers"


def _dest(flag: CliFlag) -> str:
    return flag.flag.lstrip("-").replace("-", "_")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per SimConfig field, plus --fault-rate; every default is None (= SimConfig's)."""
    defaults = SimConfig()
    for flag in CLI_FLAGS:
        default = getattr(defaults, flag.field)
        help_text = f"{flag.help} (default: {flag.format(default) if default is not None else 'none'})"
        parser.add_argument(flag.flag, dest=_dest(flag), type=flag.parse, default=None, help=help_text)
    parser.add_argument(
        BROWSER_CHECK_FLAG,
        action=argparse.BooleanOptionalAction,
        default=None,
        help="answer 403 to clients whose User-Agent is not a browser's (default: on)",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=None,
        help="spread this probability evenly over " + ", ".join(FAULT_RATE_FIELDS),
    )


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Build a SimConfig; an explicit per-fault flag wins over --fault-rate."""
    values: dict[str, Any] = {}
    if args.fault_rate is not None:
        share = args.fault_rate / len(FAULT_RATE_FIELDS)
        values.update(dict.fromkeys(FAULT_RATE_FIELDS, share))
    for flag in CLI_FLAGS:
        given = getattr(args, _dest(flag))
        if given is not None:
            values[flag.field] = given
    browser_check = getattr(args, BROWSER_CHECK_FIELD)
    if browser_check is not None:
        values[BROWSER_CHECK_FIELD] = browser_check
    return SimConfig(**values)


def config_to_args(config: SimConfig) -> list[str]:
    """The flags that make the command line reproduce `config` (only non-default values)."""
    defaults = SimConfig()
    args: list[str] = []
    for flag in CLI_FLAGS:
        value = getattr(config, flag.field)
        if value != getattr(defaults, flag.field):
            args += [flag.flag, flag.format(value)]
    if config.require_browser_headers != defaults.require_browser_headers:
        args.append(BROWSER_CHECK_FLAG if config.require_browser_headers else "--no-require-browser-headers")
    return args


def config_fields() -> set[str]:
    return {field.name for field in dataclasses.fields(SimConfig)}
