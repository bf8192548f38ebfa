"""Observability shared by every layer: the Prometheus metric objects and the logging context.

Nothing here decides anything about money, and nothing here reaches the database, Redis
or the gateway: counters are cheap in-memory increments, the context is a contextvar.
"""
