"""The service edge: the ``enclave`` CLI now; the FastAPI app (chat, admin, audit) with its issues."""
