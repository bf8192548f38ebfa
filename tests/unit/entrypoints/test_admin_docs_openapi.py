"""``/docs`` works with no internet (Swagger UI from our own origin) and the OpenAPI
document gives a generated client meaningful names: stable operation ids and enums for
statuses and categories."""

from __future__ import annotations

import re
from typing import Any

from billing.auth_tokens import Role
from billing.entrypoints.http.middleware import DOCS_CSP
from tests.unit.entrypoints import test_admin_api
from tests.unit.entrypoints.test_admin_api import Api

api = test_admin_api.api  # the same fixture: the real graph on SQLite with fakes

EXPECTED_IDS = {
    ("post", "/api/subscriptions"): "create_subscription",
    ("get", "/api/subscriptions"): "list_subscriptions",
    ("get", "/api/subscriptions/{subscription_id}"): "show_subscription",
    ("post", "/api/subscriptions/{subscription_id}/retry"): "retry",
    ("post", "/api/attempts/{attempt_id}/refund"): "refund",
    ("get", "/api/invoices"): "list_invoices",
    ("get", "/api/audit"): "audit",
}


def test_docs_load_everything_from_our_own_origin(api: Api) -> None:
    page = api.call("GET", "/docs", role=None)
    assert page.status_code == 200
    assert "cdn." not in page.text and "https://" not in page.text
    assert "<script>" not in page.text  # no inline script: the CSP allows none
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        asset = api.call("GET", "/" + src, role=None)
        assert asset.status_code == 200, src
        assert len(asset.content) > 100
    init = api.call("GET", "/docs/init.js", role=None).text
    assert '"openapi.json"' in init
    csp = page.headers["content-security-policy"]
    assert "http" not in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert csp == DOCS_CSP


def test_operation_ids_are_the_use_cases_names(api: Api) -> None:
    document: dict[str, Any] = api.call("GET", "/openapi.json", role=None).json()
    ids = {
        (method, path): operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    for key, name in EXPECTED_IDS.items():
        assert ids[key] == name
    assert len(set(ids.values())) == len(ids)


def test_statuses_and_categories_are_enums(api: Api) -> None:
    document: dict[str, Any] = api.call("GET", "/openapi.json", role=None).json()
    schemas = document["components"]["schemas"]
    assert "held" in schemas["SubscriptionStatus"]["enum"]
    assert set(schemas["InvoiceStatus"]["enum"]) == {"open", "paid", "uncollectible", "void"}
    assert "needs_operator" in schemas["AttemptState"]["enum"]
    assert "do_not_retry" in schemas["Category"]["enum"]
    assert "unknown" in schemas["RefundState"]["enum"]
    parameters = document["paths"]["/api/subscriptions"]["get"]["parameters"]
    status = next(p for p in parameters if p["name"] == "status")
    assert "SubscriptionStatus" in str(status["schema"])


def test_search_by_subscription_customer_or_order_number(api: Api) -> None:
    first = api.create("approve-1", customer_id="c-alpha", start_at=api.clock().isoformat())
    api.create("approve-2", customer_id="c-beta")
    api.tick()
    [attempt] = api.attempts(first["id"])
    for q in (str(first["id"]), "c-alpha", attempt.order_number):
        found = api.call("GET", "/api/search", role=Role.VIEWER, params={"q": q})
        assert found.status_code == 200 and found.json()["subscription_ids"] == [first["id"]]
    nothing = api.call("GET", "/api/search", role=Role.VIEWER, params={"q": str(2**70)})
    assert nothing.json()["subscription_ids"] == []
    bad = api.call("GET", "/api/search", params={"q": "a\x00b"})
    assert bad.status_code == 422 and bad.json()["message"].startswith("q")
