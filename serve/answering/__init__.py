"""The answer path: retrieval with the access filter, the model, verification, records.

Knows nothing of HTTP or the terminal (DESIGN.md).
"""
