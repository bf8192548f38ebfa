"""The admin HTTP API (FastAPI) for operators and the SaaS backend.

``billing.entrypoints.http.admin.app.create_admin_app`` builds it; the bearer tokens are
parsed by :mod:`billing.auth_tokens` (no web framework, so settings can check them). The
use cases live in ``billing.services``.
"""
