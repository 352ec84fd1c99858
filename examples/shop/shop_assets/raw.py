"""Raw data. A real project would read an API or a database; we make it up, deterministically."""

import random
from datetime import date, timedelta

import pyarrow as pa

from prefect_assets import AssetContext, asset

N_ORDERS = 5_000
N_CUSTOMERS = 200
PRODUCTS = {"kettle": 39.0, "teapot": 24.5, "mug": 8.0, "tea-sampler": 15.0, "strainer": 6.5}


@asset(group="raw", retries=2, retry_delay_seconds=1, tags={"source": "shopfront"})
def orders(context: AssetContext) -> pa.Table:
    """Every order placed in the last 90 days."""
    rng = random.Random(42)
    start = date(2026, 1, 1)
    rows = {
        "order_id": list(range(1, N_ORDERS + 1)),
        "customer_id": [rng.randint(1, N_CUSTOMERS) for _ in range(N_ORDERS)],
        "product": [rng.choice(sorted(PRODUCTS)) for _ in range(N_ORDERS)],
        "quantity": [rng.randint(1, 4) for _ in range(N_ORDERS)],
        "day": [start + timedelta(days=rng.randint(0, 89)) for _ in range(N_ORDERS)],
        "status": [rng.choices(["paid", "cancelled"], weights=[9, 1])[0] for _ in range(N_ORDERS)],
    }
    context.log.info("generated %d orders", N_ORDERS)
    return pa.table(rows)


@asset(group="raw", tags={"source": "crm"})
def customers() -> pa.Table:
    """Customer master data."""
    rng = random.Random(7)
    countries = ["DE", "FR", "NL", "PL", "SE"]
    return pa.table({
        "customer_id": list(range(1, N_CUSTOMERS + 1)),
        "country": [rng.choice(countries) for _ in range(N_CUSTOMERS)],
    })


@asset(group="raw")
def prices() -> dict:
    """The price list, stored as JSON."""
    return dict(PRODUCTS)
