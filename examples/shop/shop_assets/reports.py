"""Reports for the BI team."""

import pyarrow as pa

from prefect_assets import AssetContext, Output, asset


@asset(key_prefix="reports", group="reports", tags={"team": "bi"})
def daily_revenue(paid_orders: pa.Table) -> pa.Table:
    """Revenue per day."""
    return paid_orders.group_by("day").aggregate([("revenue", "sum"), ("order_id", "count")]).sort_by("day")


@asset(key_prefix="reports", group="reports", tags={"team": "bi"})
def revenue_by_country(orders_by_customer: pa.Table) -> pa.Table:
    """Revenue per customer country."""
    return orders_by_customer.group_by("country").aggregate([("revenue", "sum")]).sort_by("country")


@asset(key_prefix="reports", group="reports", tags={"team": "bi"})
def top_customers(orders_by_customer: pa.Table) -> list:
    """The ten customers with the most revenue, as JSON."""
    totals = orders_by_customer.group_by("customer_id").aggregate([("revenue", "sum")])
    best = totals.sort_by([("revenue_sum", "descending")]).slice(0, 10)
    return best.to_pylist()


@asset(key_prefix="reports", group="reports", tags={"team": "finance"})
def kpis(context: AssetContext, reports__daily_revenue: pa.Table, prices: dict) -> Output[dict]:
    """Headline numbers; a full key as parameter name: reports/daily_revenue is reports__daily_revenue."""
    total = sum(reports__daily_revenue["revenue_sum"].to_pylist())
    days = reports__daily_revenue.num_rows
    context.log.info("total revenue %.2f over %d days", total, days)
    return Output({"revenue": round(total, 2), "days": days, "products": len(prices)},
                  metadata={"revenue_per_day": round(total / max(days, 1), 2)})
