"""The admin side: an HTTP API (FastAPI) for operators and the SaaS backend.

``billing.admin.api.create_admin_app`` builds the app; ``billing.admin.auth`` reads the
bearer tokens (``BILLING_ADMIN_TOKENS``) and imports no web framework, so settings can
check them without loading FastAPI. The use cases live in ``billing.services.actions`` and ``billing.services.read``.
"""

from billing.admin.auth import Principal, Role, TokenConfig

__all__ = ["Principal", "Role", "TokenConfig"]
