"""Celery app and tasks: thin wrappers that call ingest by document or job id (later)."""
