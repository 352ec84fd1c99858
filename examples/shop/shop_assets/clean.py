"""Cleaned tables: paid orders only, priced, joined to customers."""

import pyarrow as pa
import pyarrow.compute as pc

from prefect_assets import asset


@asset(group="clean")
def paid_orders(orders: pa.Table, prices: dict) -> pa.Table:
    """Paid orders with their revenue."""
    paid = orders.filter(pc.equal(orders["status"], "paid"))
    unit = pa.array([prices[p] for p in paid["product"].to_pylist()], pa.float64())
    return paid.append_column("revenue", pc.multiply(unit, paid["quantity"]))


@asset(group="clean")
def orders_by_customer(paid_orders: pa.Table, customers: pa.Table) -> pa.Table:
    """Paid orders with the customer's country."""
    return paid_orders.join(customers, keys="customer_id")
