"""Quarterly and annual financial reports: one unpaged call per company."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from etl import api
from etl.datatypes.base import (
    Api,
    Company,
    DataType,
    FetchWindow,
    ParseProblem,
    Row,
    as_array,
    as_object,
    clean_text,
    describe_by,
    first_reason,
    fiscal_year,
    nested,
    parse_each,
    required,
    to_float,
    to_int,
)
from etl.datatypes.securities import COMPANIES
from etl.payloads import check_json_list

if TYPE_CHECKING:
    import polars as pl

SCHEMA = pa.schema([
    ("symbol", pa.string()),
    ("fiscal_year", pa.string()),  # Bikram Sambat, '2080/81'
    ("period", pa.string()),  # 'Q1'..'Q4' or 'annual'
    ("eps", pa.float64()),
    ("pe", pa.float64()),
    ("paid_up_capital", pa.float64()),
    ("profit", pa.float64()),
    ("net_worth_per_share", pa.float64()),
    ("report_type", pa.string()),
    ("remarks", pa.string()),
    ("report_id", pa.int64()),
    ("application_id", pa.int64()),
    ("modified_date", pa.string()),
    ("submitted_date", pa.string()),
    ("security_id", pa.int64()),
])

_QUARTER_WORDS = {"first": "Q1", "second": "Q2", "third": "Q3", "fourth": "Q4"}
_QUARTER_DIGIT = re.compile(r"\b([1-4])(?:st|nd|rd|th)?\b")


async def fetch(client: Api, company: Company, window: FetchWindow) -> list[Any]:
    return await client.get_json(api.REPORTS_PATH.format(id=company.security_id), validate=check_json_list)


def period_of(fiscal_report: dict) -> str:
    quarter_name = clean_text(nested(fiscal_report, "quarterMaster", "quarterName"))
    report_name = (clean_text(nested(fiscal_report, "reportTypeMaster", "reportName")) or "").lower()
    if quarter_name is None:
        if "annual" in report_name or not report_name:
            return "annual"
        raise ParseProblem(f"report {report_name!r} names no quarter")
    lowered = quarter_name.lower()
    for word, period in _QUARTER_WORDS.items():
        if word in lowered:
            return period
    digit = _QUARTER_DIGIT.search(lowered)
    if digit:
        return f"Q{digit.group(1)}"
    raise ParseProblem(f"unknown quarter {quarter_name!r}")


def parse(records: Any, company: Company) -> list[Row]:
    def parse_one(record: dict) -> Row | None:
        report = record.get("fiscalReport")
        if not isinstance(report, dict):
            return None  # an application with no report attached: nothing to keep
        financial_year = as_object(report.get("financialYear"), "fiscalReport.financialYear")
        documents = as_array(record.get("applicationDocumentDetailsList"), "applicationDocumentDetailsList")
        first_document = documents[0] if documents and isinstance(documents[0], dict) else {}
        return {
            "symbol": company.symbol,
            "fiscal_year": fiscal_year(financial_year.get("fyNameNepali") or financial_year.get("fyName")),
            "period": period_of(report),
            "eps": to_float(report.get("epsValue"), "epsValue"),
            "pe": to_float(report.get("peValue"), "peValue"),
            "paid_up_capital": to_float(report.get("paidUpCapital"), "paidUpCapital"),
            "profit": to_float(report.get("profitAmount"), "profitAmount"),
            "net_worth_per_share": to_float(report.get("netWorthPerShare"), "netWorthPerShare"),
            "report_type": clean_text(nested(report, "reportTypeMaster", "reportName")),
            "remarks": clean_text(report.get("remarks")),
            "report_id": to_int(report.get("id"), "fiscalReport.id"),
            "application_id": to_int(record.get("id"), "id"),
            "modified_date": clean_text(record.get("modifiedDate")),
            "submitted_date": clean_text(first_document.get("submittedDate")),
            "security_id": company.security_id,
        }

    rows = parse_each(records, parse_one, {"symbol": company.symbol, "security_id": company.security_id})
    # A company that re-files a period: the later filing (higher application id) stands.
    rows.sort(key=lambda row: (row.get("application_id") or 0))
    return rows


def contract() -> pl.Expr:
    return first_reason(required("symbol", "fiscal_year", "period"))


REPORTS = DataType(
    name="reports",
    table="reports",
    schema=SCHEMA,
    natural_key=("symbol", "fiscal_year", "period"),
    scope=COMPANIES,
    fetch=fetch,
    parse=parse,
    contract=contract,
    noun="report",
    describe_new=describe_by("report", lambda row: " ".join(filter(None, (row.get("fiscal_year"), row.get("period"))))),
)
