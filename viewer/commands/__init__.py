"""Headless subcommands of ``python -m viewer``; each module has ``add_arguments`` and ``run``."""
