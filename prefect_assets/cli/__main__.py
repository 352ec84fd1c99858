"""``python -m prefect_assets.cli``: the same as the ``prefect-assets`` command."""

from prefect_assets.cli import main

main()
