"""Adapter for the RBS-family acquiring gateway (httpx)."""
