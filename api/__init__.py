"""The HTTP API and web UI of evidence-locker: thin routes over `evidence` services."""
