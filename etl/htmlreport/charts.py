"""Vega-Lite specs (built with Altair) from the frames of `gather.py`. Nothing here reads the database."""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

from etl.htmlreport.gather import RunActivity

Spec = dict[str, Any]

MARK_COLOURS = {"retry": "#f28e2b", "throttle": "#e15759", "failure": "#b07aa1"}
# A full month is a calm blue; a gap is red, so it stands out from across the room.
COVERAGE_DOMAIN = [0, 0.5, 0.8, 1]
COVERAGE_RANGE = ["#b2182b", "#fddbc7", "#92c5de", "#2166ac"]
WIDTH = 860


def _spec(chart: alt.TopLevelMixin, **datasets: list[dict[str, Any]]) -> Spec:
    """The chart's spec with its data joined as named datasets: Altair would copy every value it is handed."""
    return {**chart.to_dict(validate=False), "datasets": datasets}


def _data(name: str) -> alt.NamedData:
    return alt.NamedData(name=name)


def run_chart(activity: RunActivity) -> Spec:
    """Request starts per second, stacked by type, under the host budget; retries, throttle halvings and
    failures as marks on a strip below, on the same time axis."""
    unit = "s" if activity.bucket_s == 1 else f"{activity.bucket_s}-s buckets"
    end = (activity.duration_s // activity.bucket_s + 1) * activity.bucket_s  # the last bar ends inside
    x = alt.X("second:Q", title=f"seconds since the run started ({unit})", scale=alt.Scale(domain=[0, end], nice=False))
    rate = alt.Chart(_data("rate")).mark_bar(opacity=0.85, binSpacing=0).encode(
        x=x, x2="end:Q", y=alt.Y("sum(rps):Q", stack="zero", title="request starts per second"),
        color=alt.Color("type:N", title="data type", legend=alt.Legend(orient="top")),
        tooltip=["type:N", alt.Tooltip("second:Q", title="second"), alt.Tooltip("rps:Q", format=".2f")],
    ).transform_calculate(end=f"datum.second + {activity.bucket_s}")
    budget = alt.Chart(_data("budget")).mark_line(
        interpolate="step-after", color="#222", strokeDash=[6, 3], strokeWidth=1.5).encode(
        x=x, y="rps:Q", tooltip=[alt.Tooltip("rps:Q", title="host budget (req/s)")])
    budget_end = alt.Chart(_data("budget_end")).mark_rule(
        color="#222", strokeDash=[6, 3], strokeWidth=1.5).encode(x=x, x2="end:Q", y="rps:Q")
    top = alt.layer(rate, budget, budget_end).properties(width=WIDTH, height=240)
    marks = alt.Chart(_data("marks")).mark_point(filled=True, size=60).encode(
        x=x, y=alt.Y("kind:N", title=None, sort=list(MARK_COLOURS)),
        color=alt.Color("kind:N", scale=alt.Scale(domain=list(MARK_COLOURS), range=list(MARK_COLOURS.values())),
                        legend=None),
        shape=alt.Shape("type:N", legend=alt.Legend(title="data type", orient="bottom")),
        tooltip=["kind:N", "type:N", alt.Tooltip("second:Q", format=".1f"), "count:Q", "detail:N"],
    ).properties(width=WIDTH, height=alt.Step(22))
    datasets = {"rate": activity.rate.to_dicts(), "budget": activity.budget.to_dicts(),
                "budget_end": [_last_budget(activity, end)]}
    if activity.marks.is_empty():
        return _spec(top, **datasets)
    chart = alt.vconcat(top, marks, spacing=6).resolve_scale(x="shared", color="independent", shape="independent")
    return _spec(chart, **datasets, marks=activity.marks.to_dicts())


def _last_budget(activity: RunActivity, end: float) -> dict[str, float]:
    last = activity.budget.tail(1).to_dicts()[0]
    return {"second": last["second"], "end": max(end, last["second"]), "rps": last["rps"]}


def coverage_values(cells: pl.DataFrame) -> list[dict[str, Any]]:
    """One compact record per company: group g, symbol s, first month m0 (year * 12 + month - 1) and the
    share of each month from there in whole percent (null where the company has no cell).

    The page expands it with a flatten transform; 600 companies x 120 months stay a few hundred KB
    instead of several MB of one record per cell.
    """
    per_company = (cells.with_columns(k=pl.col("month").str.slice(0, 4).cast(pl.Int64) * 12
                                      + pl.col("month").str.slice(5, 2).cast(pl.Int64) - 1,
                                      v=(pl.col("share") * 100).round().cast(pl.Int64))
                   .group_by("group", "symbol", maintain_order=True).agg("k", "v"))
    records = []
    for group_name, symbol, months, shares in per_company.iter_rows():
        first = min(months)
        values: list[int | None] = [None] * (max(months) - first + 1)
        for month, share in zip(months, shares, strict=True):
            values[month - first] = share
        records.append({"g": group_name, "s": symbol, "m0": first, "v": values})
    return records


def expand_coverage(records: list[dict[str, Any]]) -> pl.DataFrame:
    """The inverse of `coverage_values`, as the page's transforms compute it (for tests)."""
    rows = [{"group": r["g"], "symbol": r["s"], "month": f"{(r['m0'] + i) // 12:04d}-{(r['m0'] + i) % 12 + 1:02d}",
             "percent": value} for r in records for i, value in enumerate(r["v"]) if value is not None]
    return pl.DataFrame(rows, schema={"group": pl.String, "symbol": pl.String, "month": pl.String,
                                      "percent": pl.Int64})


def coverage_chart(cells: pl.DataFrame) -> Spec:
    """Companies (rows, grouped by sector) by month, shaded by the share of trading days with a price row."""
    months = cells["month"].n_unique()
    companies = cells["symbol"].n_unique()
    x_step = max(5, min(40, WIDTH // max(1, months)))
    y_step = 12 if companies <= 80 else 9
    base = alt.Chart(_data("cells")).transform_flatten(["v"]).transform_window(
        i="row_number()", groupby=["s"]).transform_filter("datum.v != null").transform_calculate(
        k="datum.m0 + datum.i - 1", month="datetime(floor(datum.k / 12), datum.k % 12, 1)")
    year_labels = "month(datum.value) == 0 ? timeFormat(datum.value, '%Y') : ''"
    chart = base.mark_rect().encode(
        x=alt.X("yearmonth(month):O", title=None,
                axis=alt.Axis(labelExpr=year_labels if months > 24 else "timeFormat(datum.value, '%b %Y')",
                              labelAngle=0 if months > 24 else -45, orient="top", ticks=False)),
        y=alt.Y("s:N", title=None, sort=None, axis=alt.Axis(labelFontSize=8 if y_step < 12 else 10)),
        color=alt.Color("v:Q", title="% of trading days with a price",
                        scale=alt.Scale(domain=[d * 100 for d in COVERAGE_DOMAIN], range=COVERAGE_RANGE),
                        legend=alt.Legend(orient="top", gradientLength=240)),
        tooltip=[alt.Tooltip("s:N", title="symbol"), alt.Tooltip("g:N", title="group"),
                 alt.Tooltip("yearmonth(month):T", title="month"), alt.Tooltip("v:Q", title="% of trading days")],
    ).properties(width=alt.Step(x_step), height=alt.Step(y_step)).facet(
        row=alt.Row("g:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left", labelFontWeight="bold",
                                                         labelOrient="top", labelPadding=4)),
        spacing=8,
    ).resolve_scale(y="independent")
    return _spec(chart, cells=coverage_values(cells))


def quality_chart(counts: pl.DataFrame) -> Spec:
    """Quarantined and flagged rows by rule and data type."""
    frame = counts.with_columns(label=pl.col("data_type") + ": " + pl.col("rule"))
    spread = int(frame["rows"].max() or 1) / max(1, int(frame["rows"].min() or 1))
    # A log scale only where one rule's count dwarfs another's; whole rows on the axis either way.
    chart = alt.Chart(_data("counts")).mark_bar().encode(
        x=alt.X("rows:Q", title="rows", scale=alt.Scale(type="symlog" if spread > 50 else "linear"),
                axis=alt.Axis(tickMinStep=1, format="~s")),
        y=alt.Y("label:N", title=None, sort="-x", axis=alt.Axis(labelLimit=420)),
        color=alt.Color("kind:N", title=None, scale=alt.Scale(domain=["quarantined", "flagged"],
                                                              range=["#e15759", "#f28e2b"]),
                        legend=alt.Legend(orient="top")),
        tooltip=["kind:N", "data_type:N", "rule:N", "rows:Q"],
    ).properties(width=WIDTH - 420, height=alt.Step(18))
    return _spec(chart, counts=frame.to_dicts())
