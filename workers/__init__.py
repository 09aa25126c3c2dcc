"""Celery app and tasks: thin wrappers that call ingest.jobs by job or item id."""
