"""Benchmark runners and metrics over ../shared/data: retrieval quality, answers, speed."""
