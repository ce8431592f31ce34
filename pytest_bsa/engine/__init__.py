"""Calling models: transports, retries, caching and scheduling (no pytest import)."""
