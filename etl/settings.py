"""One typed settings object: defaults, then `.env`, then the environment, then flags.

Every setting is declared once in `SPECS`; the argparse parser, the `NEPSE_*` variable
names, `.env.example` and validation all read that table.
"""

from __future__ import annotations

import argparse
import difflib
import math
import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from dotenv import dotenv_values

from etl import api
from etl.exitcodes import EXIT_CODE_TABLE

NEPAL_TZ = timezone(timedelta(hours=5, minutes=45))


class ConfigError(ValueError):
    """Bad usage or configuration: the CLI prints the message on one line and exits 2."""


def nepal_today() -> date:
    return datetime.now(NEPAL_TZ).date()


# ---- value parsers: each takes the raw text and returns the typed value or raises ValueError


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def parse_positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError("expected a whole number such as 10") from None
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def _parse_finite(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError("expected a number such as 0.5") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def parse_positive_float(text: str) -> float:
    value = _parse_finite(text)
    if value <= 0:
        raise ValueError("must be a number above 0")
    return value


def parse_non_negative_float(text: str) -> float:
    value = _parse_finite(text)
    if value < 0:
        raise ValueError("must be a number of at least 0")
    return value


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError("expected a date as YYYY-MM-DD") from None


def parse_types(text: str) -> tuple[str, ...]:
    """Type names as written; the run checks them against the registry (etl.datatypes.select)."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("name at least one data type, e.g. prices,reports")
    return tuple(dict.fromkeys(names))


def parse_symbols(text: str) -> tuple[str, ...]:
    symbols = [part.strip().upper() for part in text.split(",") if part.strip()]
    if not symbols:
        raise ValueError("name at least one symbol, e.g. NABIL,ADBL")
    return tuple(dict.fromkeys(symbols))


class UnechoedValue(ValueError):
    """A bad value that must not be repeated in the error (it holds a password)."""


def parse_base_url(text: str) -> str:
    url = text.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("expected an http(s) URL such as https://www.nepalstock.com")
    if parts.username is not None or parts.password is not None:
        raise UnechoedValue("a user name or password in the URL is not supported (it would travel and be logged "
                            "in the clear); give the bare host, e.g. https://www.nepalstock.com")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {parts.netloc.rsplit(':', 1)[-1]} is out of range 1-65535")
    if parts.path or parts.query or parts.fragment:
        raise ValueError("give only scheme://host[:port], without a path, query or fragment: nepse-etl adds the "
                         "API paths itself")
    return url


def parse_path(text: str) -> Path:
    if not text.strip():
        raise ValueError("must not be empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid UTF-8 (SQLite and the run report need UTF-8 names); choose a name in "
                         "UTF-8") from None
    return Path(text.strip()).expanduser()


def default_start_method() -> str:
    """A fork server where the platform has one (Linux, macOS): each type's process forks from a process that
    loaded the extract's modules once, instead of starting an interpreter and importing them (~0.5 s of CPU a
    process under spawn, ~2 s a run), and nothing is forked from the parent's threads. Python 3.14 makes it
    the default on Linux for the second reason. Elsewhere, spawn."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def parse_start_method(text: str) -> str:
    method = text.strip().lower()
    if method not in {"spawn", "fork", "forkserver"}:
        raise ValueError("choose spawn, fork or forkserver")
    if method not in multiprocessing.get_all_start_methods():
        raise ValueError(f"{method} is not available on this platform; choose "
                         + " or ".join(multiprocessing.get_all_start_methods()))
    return method


@dataclass(frozen=True)
class SettingSpec:
    name: str
    parse: Callable[[str], Any]
    help: str
    group: str
    flag: str | None = None  # None: "--" + name with dashes
    is_switch: bool = False  # a flag that takes no value
    switch_value: str = "true"  # what the switch sets ("false" for a switch that turns a setting off)
    metavar: str | None = None
    default: str | None = None  # the default in words, where the typed default alone does not say it
    example: str | None = None  # the value shown in .env.example (default: the default)

    @property
    def env(self) -> str:
        return "NEPSE_" + self.name.upper()

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


SPECS: tuple[SettingSpec, ...] = (
    # What to fetch
    SettingSpec("types", parse_types, "data types to fetch, comma separated: prices, reports, dividends, profiles, "
                "indices", "what to fetch", metavar="LIST", default="every type", example="prices,indices"),
    SettingSpec("symbols", parse_symbols, "only these symbols, comma separated", "what to fetch", metavar="LIST",
                default="every active company", example="NABIL,ADBL"),
    SettingSpec("limit", parse_positive_int, "only the first N companies of the universe", "what to fetch",
                metavar="N", example="10"),
    SettingSpec("since", parse_date, "first day of the price window", "what to fetch", metavar="YYYY-MM-DD",
                default="365 days before --until", example="2025-01-01"),
    SettingSpec("until", parse_date, "last day of the price window", "what to fetch", metavar="YYYY-MM-DD",
                default="today in Nepal", example="2025-12-31"),
    SettingSpec("full", parse_bool, "refetch the whole price window instead of only the days after those "
                "already saved", "what to fetch", is_switch=True),
    SettingSpec("include_promoter", parse_bool, "also fetch the prices of listed securities the company list "
                "lacks (promoter shares first of all, e.g. NIMBPO), read from NEPSE's security list, each under "
                "its own security id and symbol; --symbols and --limit apply to them too. Reports, dividends "
                "and profiles stay per company", "what to fetch", is_switch=True),
    # Stages
    SettingSpec("load_only", parse_bool, "only load the Parquet already in the raw zone into SQLite", "stages",
                is_switch=True),
    SettingSpec("extract_only", parse_bool, "only fetch into the raw zone; do not load SQLite", "stages",
                is_switch=True),
    SettingSpec("dry_run", parse_bool, "fetch only the company and index lists; print the plan and the estimated time",
                "stages", is_switch=True),
    SettingSpec("report_only", parse_bool, "only write output/report.html from the database and the last run; "
                "fetch and load nothing", "stages", is_switch=True),
    SettingSpec("html_report", parse_bool, "do not write output/report.html at the end of the run "
                "(--report-only still writes it)", "stages",
                flag="--no-report", is_switch=True, switch_value="false", default="write it"),
    SettingSpec("demo", parse_bool, "start the bundled NEPSE simulator on a free loopback port and run against "
                "it", "stages", is_switch=True),
    SettingSpec("output", parse_path, "output directory: raw zone, nepse.db, runs, logs, report.html", "stages",
                metavar="DIR"),
    # Connection
    SettingSpec("base_url", parse_base_url, "API host", "connection", metavar="URL"),
    SettingSpec("tls_verify", parse_bool, "do not verify the server's TLS certificate (verification is on "
                "unless this is given)", "connection", flag="--insecure", is_switch=True, switch_value="false",
                default="verify"),
    SettingSpec("ca_bundle", parse_path, "a CA bundle file to verify the server with instead of the system's "
                "roots (not needed for NEPSE's incomplete chain, which is completed from its AIA URL)",
                "connection", metavar="FILE", example="/path/to/ca-bundle.pem"),
    SettingSpec("timeout", parse_positive_float, "seconds before one request is abandoned", "connection",
                metavar="S"),
    # Politeness
    SettingSpec("max_rps", parse_positive_float, "request starts per second for the whole host, across every "
                "process of every run on this machine (concurrent runs keep to the smallest). Each data type's "
                "process gets a share in proportion to the requests it still has to make, up to its own "
                "--concurrency and --pacing", "politeness", metavar="R"),
    SettingSpec("concurrency", parse_positive_int, "requests in flight at most, per process (one process per "
                "data type)", "politeness", metavar="N"),
    SettingSpec("pacing", parse_non_negative_float, "seconds between request starts, per process", "politeness",
                metavar="S"),
    SettingSpec("min_rps", parse_positive_float, "the host rate is halved on throttling but never below this",
                "politeness", metavar="R", default="max-rps / 8", example="0.625"),
    SettingSpec("recover_after", parse_positive_float, "quiet seconds after throttling before the host rate "
                "steps back up", "politeness", metavar="S"),
    SettingSpec("max_attempts", parse_positive_int, "attempts per request before a company is recorded as "
                "failed", "politeness", metavar="N"),
    SettingSpec("backoff_base", parse_positive_float, "first retry wait in seconds; doubles each attempt, with "
                "full jitter", "politeness", metavar="S"),
    SettingSpec("backoff_cap", parse_positive_float, "longest single retry wait in seconds", "politeness",
                metavar="S"),
    SettingSpec("max_retry_after", parse_non_negative_float, "longest wait a server's Retry-After (in seconds "
                "or as an HTTP date) may ask for; a request asked to wait longer fails at once, with the server's "
                "value in the message", "politeness", metavar="S"),
    SettingSpec("state_dir", parse_path, "where runs on this machine share each host's budget (one small "
                "locked file per API host) and the site's css.wasm modules", "politeness", metavar="DIR",
                default="$XDG_CACHE_HOME/nepse-etl, else ~/.cache/nepse-etl", example="~/.cache/nepse-etl"),
    # Guards against a broken server, and internals
    SettingSpec("page_size", parse_positive_int, "rows asked per page of a daily history, prices or indices (500 "
                "is the most NEPSE is known to accept)", "limits", metavar="N"),
    SettingSpec("max_pages", parse_positive_int, "most pages read for one company before giving up", "limits",
                metavar="N"),
    SettingSpec("max_body_mb", parse_positive_float, "largest response body accepted, in MB", "limits",
                metavar="MB"),
    SettingSpec("db_busy_timeout", parse_non_negative_float, "seconds the load waits for another program's "
                "write lock on nepse.db before giving up (the raw zone is kept: --load-only finishes later)",
                "limits", metavar="S"),
    SettingSpec("start_method", parse_start_method,
                "multiprocessing start method: spawn, fork or forkserver (one process loads the extract's modules "
                "once and forks the others from it: less CPU at start)", "limits", metavar="METHOD",
                default="forkserver, spawn where the platform has no fork server", example="forkserver"),
    SettingSpec("demo_seed", parse_positive_int, "seed of the simulator started by --demo", "limits", metavar="N"),
    SettingSpec("demo_companies", parse_positive_int, "companies in the --demo simulator", "limits", metavar="N"),
    # Output
    SettingSpec("quiet", parse_bool, "only warnings, errors and the summary", "display", is_switch=True),
    SettingSpec("verbose", parse_bool, "also show debug lines (every request and retry)", "display",
                is_switch=True),
)

_SPEC_BY_NAME = {spec.name: spec for spec in SPECS}

GROUP_DESCRIPTIONS = {
    "politeness": "--max-rps bounds the whole host: request starts in any one-second window, auth calls "
    "included, shared by every process of every run on this machine (each host's state is a small file in "
    "--state-dir; concurrent runs keep to the smallest --max-rps among them). Each data type's process "
    "gets a share in proportion to the requests it still has to make, so the types finish together. "
    "--concurrency and --pacing bound each process "
    "(there is one per data type). When some types finish early, the processes still running may use the "
    "whole host budget, up to their own limits. On throttling (three HTTP 429s, or eight transient "
    "failures or 429s, among a process's last 20 requests) the host rate is halved, down to --min-rps, and "
    "stepped back up after --recover-after quiet seconds. A lone 429 only delays its own request (Retry-After, "
    "in seconds or as an HTTP date, up to --max-retry-after).",
    "limits": "Guards against a broken or hostile server, and internals.",
}


@dataclass(frozen=True)
class Settings:
    types: tuple[str, ...] = ()  # empty: every registered type
    symbols: tuple[str, ...] | None = None
    limit: int | None = None
    since: date | None = None
    until: date | None = None
    full: bool = False
    include_promoter: bool = False
    load_only: bool = False
    extract_only: bool = False
    dry_run: bool = False
    report_only: bool = False
    html_report: bool = True
    demo: bool = False
    output: Path = Path("output")
    base_url: str = api.DEFAULT_BASE_URL
    tls_verify: bool = True
    ca_bundle: Path | None = None
    timeout: float = 30.0
    max_rps: float = 5.0
    concurrency: int = 5
    pacing: float = 0.2
    min_rps: float | None = None
    recover_after: float = 10.0
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 600.0
    state_dir: Path | None = None
    page_size: int = 500
    max_pages: int = 200
    max_body_mb: float = 32.0
    db_busy_timeout: float = 5.0
    start_method: str = field(default_factory=default_start_method)
    demo_seed: int = 42
    demo_companies: int = 600
    quiet: bool = False
    verbose: bool = False
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def window(self) -> tuple[date, date]:
        """The price window (since, until), both inclusive."""
        until = self.until or nepal_today()
        since = self.since or until - timedelta(days=365)
        return since, until

    @property
    def host_floor_rps(self) -> float:
        return self.min_rps if self.min_rps is not None else self.max_rps / 8

    @property
    def budget_state_dir(self) -> Path:
        from etl.budget import default_state_dir

        return self.state_dir or default_state_dir()

    @property
    def db_path(self) -> Path:
        return self.output / "nepse.db"


class _ArgumentParser(argparse.ArgumentParser):
    """Bad flags are bad usage like any other: one line, exit 2 (via ConfigError)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message}; see --help")


_FIELD_DEFAULTS = {item.name: item.default for item in fields(Settings)}


def default_text(spec: SettingSpec) -> str:
    """A setting's default as the documentation and --help give it."""
    if spec.default is not None:
        return spec.default
    value = _FIELD_DEFAULTS[spec.name]
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def example_value(spec: SettingSpec) -> str:
    """The value .env.example shows for a setting."""
    if spec.example is not None:
        return spec.example
    value = _FIELD_DEFAULTS[spec.name]
    return str(value).lower() if isinstance(value, bool) else str(value)


def variable_text(spec: SettingSpec) -> str:
    """The variable, and for a switch that turns a setting off, the value it stands for."""
    return spec.env if spec.switch_value == "true" else f"{spec.env}={spec.switch_value}"


def help_text(spec: SettingSpec) -> str:
    shown = "" if spec.is_switch or default_text(spec) == "-" else f" (default: {default_text(spec)})"
    return f"{spec.help}{shown} [{variable_text(spec)}]"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nepse-etl")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


DESCRIPTION = ("Backfill NEPSE daily prices, financial reports, dividends, company profiles and index history into "
               "SQLite, politely and resumably. Every option can also be set as a NEPSE_* variable in the "
               "environment or in .env (flags win over the environment, which wins over .env).")


def build_arg_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line, from SPECS. ``prog`` None: the name it was started by (nepse-etl, backfill.py)."""
    epilog = "Exit codes: " + ", ".join(f"{code} {meaning}" for code, meaning, _ in EXIT_CODE_TABLE) + "."
    parser = _ArgumentParser(prog=prog, description=DESCRIPTION, epilog=epilog)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for spec in SPECS:
        group = groups.get(spec.group) or groups.setdefault(
            spec.group, parser.add_argument_group(spec.group, GROUP_DESCRIPTIONS.get(spec.group)))
        if spec.is_switch:
            group.add_argument(spec.option, dest=spec.name, action="store_const", const=spec.switch_value,
                               help=help_text(spec))
        else:
            group.add_argument(spec.option, dest=spec.name, metavar=spec.metavar, help=help_text(spec))
    return parser


def _raw_values(
    flags: Mapping[str, str | None], environ: Mapping[str, str], dotenv: Mapping[str, str | None]
) -> dict[str, tuple[str, str]]:
    """name -> (raw text, where it came from), by precedence."""
    raw: dict[str, tuple[str, str]] = {}
    for spec in SPECS:
        if flags.get(spec.name) is not None:
            raw[spec.name] = (flags[spec.name] or "", spec.option)
        elif spec.env in environ:
            raw[spec.name] = (environ[spec.env], f"environment variable {spec.env}")
        elif dotenv.get(spec.env) is not None:
            raw[spec.name] = (str(dotenv[spec.env]), f"{spec.env} in .env")
    return raw


def load_dotenv_file(path: Path) -> dict[str, str | None]:
    if not path.is_file():
        return {}
    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; fix or remove the file") from None
    refuse_unknown_names(values, str(path))
    return dict(values)


def refuse_unknown_names(names: Iterable[str], where: str) -> None:
    """A NEPSE_* name we do not know is a typo until shown otherwise (NEPSE_MAXRPS=1 must not pass
    unnoticed), in .env and in the environment alike."""
    unknown = sorted(name for name in names if name.startswith("NEPSE_") and name[6:].lower() not in _SPEC_BY_NAME)
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], [spec.env for spec in SPECS], n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise ConfigError(f"unknown setting {unknown[0]} in {where}; {hint}see .env.example for the valid NEPSE_* names")


def resolve_settings(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
) -> Settings:
    """Build and validate the settings. Raises ConfigError; argparse exits 2 on unknown flags."""
    environ = os.environ if environ is None else environ
    refuse_unknown_names(environ, "the environment")
    flags = vars(build_arg_parser().parse_args(argv))
    dotenv = load_dotenv_file(dotenv_path or Path(".env"))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (text, source) in _raw_values(flags, environ, dotenv).items():
        try:
            values[name] = _SPEC_BY_NAME[name].parse(text)
        except UnechoedValue as exc:
            raise ConfigError(f"{source}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"{source}={text!r}: {exc}") from None
        sources[name] = source
    settings = Settings(**values, sources=sources)
    validate(settings)
    return settings


def source_of(settings: Settings, name: str) -> str:
    """Where a setting's value came from, for error messages: a flag, a variable or .env."""
    return settings.sources.get(name, _SPEC_BY_NAME[name].option)


def validate(settings: Settings) -> None:
    """Rules that involve more than one setting."""
    if settings.load_only and settings.extract_only:
        raise ConfigError("--load-only and --extract-only exclude each other; choose one")
    since, until = settings.window
    if since > until:
        raise ConfigError(f"--since {since} is after --until {until}; give a window that runs forward")
    if settings.until and settings.until > nepal_today() + timedelta(days=1):
        raise ConfigError(f"--until {settings.until} is in the future; leave it out to end today")
    if settings.min_rps is not None and settings.min_rps > settings.max_rps:
        raise ConfigError(f"{source_of(settings, 'min_rps')} ({settings.min_rps}) is above the host budget "
                          f"{settings.max_rps}; lower it or raise --max-rps")
    if settings.page_size > api.MAX_PAGE_SIZE:
        raise ConfigError(f"{source_of(settings, 'page_size')}={settings.page_size} is above "
                          f"{api.MAX_PAGE_SIZE}, the largest page NEPSE is known to accept")
    if settings.ca_bundle is not None and not settings.ca_bundle.is_file():
        raise ConfigError(f"{source_of(settings, 'ca_bundle')}: no file at {settings.ca_bundle}")
    stages = [name for name in ("load_only", "extract_only", "dry_run") if getattr(settings, name)]
    if settings.report_only and stages:
        raise ConfigError(f"--report-only and {_SPEC_BY_NAME[stages[0]].option} exclude each other; choose one")
    if settings.quiet and settings.verbose:
        raise ConfigError("--quiet and --verbose exclude each other; choose one")


def settings_as_dict(settings: Settings) -> dict[str, Any]:
    """JSON-safe view for the run report (never holds secrets: there are none in settings)."""
    result: dict[str, Any] = {}
    for item in fields(settings):
        if item.name == "sources":
            continue
        value = getattr(settings, item.name)
        if isinstance(value, (Path, date)):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        result[item.name] = value
    return result
