"""The operators' web console: server-rendered pages, plain forms, no JavaScript build."""

from billing.entrypoints.http.console.app import ConsoleDeps, Operator, create_console_app

__all__ = ["ConsoleDeps", "Operator", "create_console_app"]
