"""Retrieval: the Qdrant collection schema, the sparse encoder, hybrid search with the access filter."""
