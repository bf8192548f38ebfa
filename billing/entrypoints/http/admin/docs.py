"""``/docs`` without the internet: Swagger UI served from the ``swagger-ui-bundle`` package
that ships its files, with the start-up script as a file of ours (no inline script, so the
page's Content-Security-Policy allows nothing but this origin).

It decides only where the interactive docs come from. It must never load anything from a
CDN, and never need a token (the document is public; calls made from the page need one).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from billing.errors import ConfigurationError

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} · API docs</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"""
_INIT = """window.ui = SwaggerUIBundle({{
  url: {url},
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
}});
"""


def swagger_ui_assets() -> Path:
    """The directory of the installed Swagger UI files."""
    vendor = Path(str(resources.files("swagger_ui_bundle"))) / "vendor"
    found = sorted(vendor.glob("swagger-ui-*/swagger-ui-bundle.js"))
    if not found:
        raise ConfigurationError("the swagger-ui-bundle package has no Swagger UI files")
    return found[-1].parent


def install_docs(api: FastAPI, *, title: str, openapi_url: str = "openapi.json") -> None:
    """``GET /docs`` (the page), ``/docs/init.js`` and ``/docs/assets/*`` (Swagger UI)."""
    page = _PAGE.format(title=title)
    init = _INIT.format(url=json.dumps(openapi_url))

    @api.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page)

    @api.get("/docs/init.js", include_in_schema=False)
    def docs_init() -> Response:
        return Response(init, media_type="application/javascript")

    api.mount("/docs/assets", StaticFiles(directory=swagger_ui_assets()), name="docs-assets")
