"""Financial reports, dividend declarations and company profiles of one security.

Every record is drawn from its own RNG keyed by (seed, security, fiscal year, slot) and its ids
come from the same key, so records are stable and unique no matter which security is asked first.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass

from etl.simulator import names
from etl.simulator.companies import DELISTED, EQUITY, MUTUAL_FUND, Security
from etl.simulator.nepal_calendar import FiscalYear, fiscal_year_of

QUARTER_NAMES = {1: "First Quarter", 2: "Second Quarter", 3: "Third Quarter", 4: "Fourth Quarter"}
QUARTERLY_REPORT = {"id": 1, "reportName": "Quarterly Report"}
ANNUAL_REPORT = {"id": 2, "reportName": "Annual Report"}
ANNUAL_SLOT = 5
REPORTED_FISCAL_YEARS = 2
DIVIDEND_FISCAL_YEARS = 6

# Id spaces: one per kind of object, so no two objects of a kind share an id.
REPORT_ID_BASE = 100_000_000
FISCAL_REPORT_ID_BASE = 200_000_000
DOCUMENT_ID_BASE = 300_000_000
DIVIDEND_ID_BASE = 400_000_000
NEWS_ID_BASE = 500_000_000
NOTICE_ID_BASE = 600_000_000

P_NULL_FISCAL_REPORT = 0.03
P_NULL_NUMBER = 0.05
P_NUMBER_AS_STRING = 0.05


def record_key(security_id: int, fiscal_year: FiscalYear, slot: int) -> int:
    """A number unique per (security, fiscal year, slot) for ids below 100,000 and slot < 10."""
    return security_id * 1_000 + (fiscal_year.bs_start_year % 100) * 10 + slot


def record_rng(seed: int, kind: str, security_id: int, fiscal_year: FiscalYear, slot: int) -> random.Random:
    return random.Random(f"{seed}:{kind}:{security_id}:{fiscal_year.bs_start_year}:{slot}")


def nepal_timestamp(rng: random.Random, day: datetime.date) -> str:
    """Local Nepal time without an offset, milliseconds included, as NEPSE writes it."""
    moment = datetime.datetime.combine(day, datetime.time(rng.randint(9, 17), rng.randint(0, 59)))
    return moment.replace(second=rng.randint(0, 59), microsecond=rng.randint(0, 999) * 1000).isoformat(
        timespec="milliseconds"
    )


def fiscal_year_json(fiscal_year: FiscalYear) -> dict:
    return {
        "id": fiscal_year.bs_start_year - 2000,
        "fyName": fiscal_year.long_name,
        "fyNameNepali": fiscal_year.short_name,
        "fromYear": str(fiscal_year.bs_start_year),
        "toYear": str(fiscal_year.bs_start_year + 1),
    }


def sometimes_string(rng: random.Random, value: float) -> float | str:
    return str(value) if rng.random() < P_NUMBER_AS_STRING else value


def messy_number(rng: random.Random, value: float) -> float | str | None:
    """Mostly the number; sometimes null, sometimes the number as a string."""
    return None if rng.random() < P_NULL_NUMBER else sometimes_string(rng, value)


@dataclass(frozen=True)
class Fundamentals:
    paid_up_capital: float
    annual_eps: float
    net_worth_per_share: float
    price_level: float


def fundamentals(seed: int, security: Security) -> Fundamentals:
    rng = random.Random(f"{seed}:fundamentals:{security.id}")
    return Fundamentals(
        paid_up_capital=round(1.2e9 * rng.lognormvariate(0, 0.9), -5),
        annual_eps=rng.gauss(14, 14),
        net_worth_per_share=rng.uniform(80, 250),
        price_level=security.traits.anchor_price,
    )


@dataclass(frozen=True)
class ReportPeriod:
    fiscal_year: FiscalYear
    quarter: int | None  # None: the annual report

    @property
    def slot(self) -> int:
        return self.quarter or ANNUAL_SLOT

    @property
    def end(self) -> datetime.date:
        return self.fiscal_year.quarter_end(self.quarter or 4)


def report_periods(today: datetime.date) -> list[ReportPeriod]:
    """The quarters and years of the last two fiscal years that are already over, newest first."""
    current = fiscal_year_of(today)
    periods = [
        ReportPeriod(current.shifted(-back), quarter)
        for back in range(REPORTED_FISCAL_YEARS)
        for quarter in (None, 4, 3, 2, 1)
    ]
    return [period for period in periods if period.end < today]


def files_reports(security: Security, fiscal_year: FiscalYear) -> bool:
    last_day = security.traits.last_trading_day
    delisted_before = security.status == DELISTED and last_day is not None and last_day < fiscal_year.start
    return security.instrument_type == EQUITY and not delisted_before


def fiscal_report_json(
    rng: random.Random, security: Security, period: ReportPeriod, basics: Fundamentals, record_id: int
) -> dict:
    quarters_elapsed = period.quarter or 4
    eps = round(basics.annual_eps * rng.uniform(0.8, 1.2), 2)
    shares = basics.paid_up_capital / 100
    quarter_master = (
        None if period.quarter is None else {"id": period.quarter, "quarterName": QUARTER_NAMES[period.quarter]}
    )
    return {
        "id": FISCAL_REPORT_ID_BASE + record_id,
        "quarterMaster": quarter_master,
        "reportTypeMaster": dict(ANNUAL_REPORT if period.quarter is None else QUARTERLY_REPORT),
        "financialYear": fiscal_year_json(period.fiscal_year),
        "peValue": messy_number(rng, round(basics.price_level / eps, 2) if eps else 0.0),
        "epsValue": messy_number(rng, eps),
        "paidUpCapital": messy_number(rng, basics.paid_up_capital),
        "profitAmount": messy_number(rng, round(eps * shares * quarters_elapsed / 4, 2)),
        "netWorthPerShare": messy_number(rng, round(basics.net_worth_per_share * rng.uniform(0.95, 1.05), 2)),
        "remarks": rng.choice((None, "", "", "Unaudited", "Audited figures")),
    }


def report_json(
    seed: int, security: Security, period: ReportPeriod, basics: Fundamentals, today: datetime.date
) -> dict:
    rng = record_rng(seed, "report", security.id, period.fiscal_year, period.slot)
    record_id = record_key(security.id, period.fiscal_year, period.slot)
    submitted = min(period.end + datetime.timedelta(days=rng.randint(1, 30)), today)
    label = f"Q{period.quarter}" if period.quarter else "Annual"
    fy_label = period.fiscal_year.short_name.replace("/", "_")
    document = {
        "id": sometimes_string(rng, DOCUMENT_ID_BASE + record_id),
        "submittedDate": nepal_timestamp(rng, submitted),
        "filePath": f"{security.symbol.strip()}_{label}_{fy_label}.pdf",
        "encryptedId": f"{rng.getrandbits(128):032x}",
    }
    has_report = rng.random() >= P_NULL_FISCAL_REPORT
    return {
        "id": REPORT_ID_BASE + record_id,
        "activeStatus": "A",  # no modifiedDate: real report records carry none
        "applicationType": "Financial Report",
        "applicationStatus": "APPROVED",
        "fiscalReport": fiscal_report_json(rng, security, period, basics, record_id) if has_report else None,
        "applicationDocumentDetailsList": [document],
    }


def reports(seed: int, security: Security, today: datetime.date) -> list[dict]:
    basics = fundamentals(seed, security)
    return [
        report_json(seed, security, period, basics, today)
        for period in report_periods(today)
        if files_reports(security, period.fiscal_year)
    ]


def declares_dividends(security: Security) -> bool:
    return security.instrument_type in (EQUITY, MUTUAL_FUND)


def dividend_rates(rng: random.Random, security: Security) -> tuple[float, float | None]:
    """(cash %, bonus %); bonus is often missing or 0, and at least one of them is positive."""
    if security.instrument_type == MUTUAL_FUND:
        return round(rng.uniform(2, 15), 2), None
    bonus_draw = rng.random()
    bonus = None if bonus_draw < 0.5 else 0.0 if bonus_draw < 0.65 else round(rng.uniform(2, 30), 2)
    if bonus and rng.random() < 0.4:
        return round(bonus * 0.0526, 4), bonus  # the cash that only covers the tax on the bonus
    return round(rng.uniform(1, 30), 2), bonus


def isin(security: Security) -> str:
    return f"NPE{security.id % 1000:03d}A{security.id:05d}{security.id % 7}"


def dividend_json(seed: int, security: Security, fiscal_year: FiscalYear, slot: int, declared: datetime.date) -> dict:
    rng = record_rng(seed, "dividend", security.id, fiscal_year, slot)
    record_id = record_key(security.id, fiscal_year, slot)
    cash, bonus = dividend_rates(rng, security)
    name = security.company_name.strip()
    headline = (
        f"{name} has proposed {cash}% cash dividend and {bonus or 0}% bonus shares for FY {fiscal_year.short_name}"
    )
    return {
        "id": DIVIDEND_ID_BASE + record_id,
        "activeStatus": "A",
        "modifiedDate": nepal_timestamp(rng, declared),
        "applicationType": "Dividend",
        "applicationStatus": "APPROVED",
        "companyNews": {
            "id": NEWS_ID_BASE + record_id,
            "newsSource": rng.choice(("Company", "NEPSE")),
            "newsType": "Dividend Declaration",
            "newsHeadline": headline,
            "newsBody": f"<p>{headline}, subject to approval of the AGM.</p>",
            "expiryDate": (declared + datetime.timedelta(days=30)).isoformat(),
            "security": {"id": security.id, "symbol": security.symbol, "isin": isin(security)},
            "dividendsNotice": {
                "id": NOTICE_ID_BASE + record_id,
                "financialYear": fiscal_year_json(fiscal_year),
                "cashDividend": cash,
                "bonusShare": bonus,
                "rightShare": None if rng.random() < 0.95 else float(rng.choice((10, 25, 50, 100))),
                "remarks": rng.choice((None, "", "Subject to AGM approval", "Revised")),
            },
        },
        "applicationDocumentDetailsList": [],
    }


def dividends(seed: int, security: Security, today: datetime.date) -> list[dict]:
    """Declarations for the last few fiscal years that were already made by `today`, newest first."""
    if not declares_dividends(security):
        return []
    records = []
    last_day = security.traits.last_trading_day
    for back in range(1, DIVIDEND_FISCAL_YEARS + 1):
        fiscal_year = fiscal_year_of(today).shifted(-back)
        rng = record_rng(seed, "declaration", security.id, fiscal_year, 0)
        declares = rng.random() < 0.65
        declared = fiscal_year.end + datetime.timedelta(days=rng.randint(60, 200))
        declarations = 2 if rng.random() < 0.08 else 1
        if not declares or declared > today or (last_day is not None and declared > last_day):
            continue
        for slot in reversed(range(declarations)):
            records.append(
                dividend_json(seed, security, fiscal_year, slot, declared + datetime.timedelta(days=slot * 9))
            )
    return records


def profile(seed: int, security: Security) -> dict:
    rng = random.Random(f"{seed}:profile:{security.id}")
    contact = names.person_name(rng) + rng.choice(("", "", "", " "))
    street = rng.choice(names.STREETS)
    return {
        "companyName": security.company_name,
        "companyEmail": security.email,
        "companyProfile": None if rng.random() < 0.4 else f"{security.company_name.strip()} is listed on NEPSE.",
        "companyContactPerson": contact,
        "logoFilePath": None if rng.random() < 0.3 else f"/assets/company-logo/{security.id}.png",
        "addressType": rng.choice(("Registered Office", "Corporate Office", "Head Office")),
        "addressField": street + rng.choice((", Ward No. 1", "  ", "", " - 4")),
        "phoneNumber": f"01-4{rng.randint(0, 999_999):06d}",
        "fax": rng.choice((None, "", f"01-4{rng.randint(0, 999_999):06d}")),
        "town": rng.choice(names.TOWNS) + rng.choice(("", "", "", " ")),
    }
