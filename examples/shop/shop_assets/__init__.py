"""The shop's assets: raw synthetic data, cleaned tables, and reports."""
