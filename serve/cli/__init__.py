"""The `enclave` commands."""
