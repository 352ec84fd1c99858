"""Graph → Prefect flow: the only place where Prefect runs assets."""
