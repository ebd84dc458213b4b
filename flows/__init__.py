"""Prefect flows: thin wiring of the stage tasks in tasks/, plus the CLI (``python -m flows``)."""
