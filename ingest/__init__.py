"""Ingestion: parse (unstructured) -> chunk (llama-index) -> embed (sentence-transformers) -> store."""
