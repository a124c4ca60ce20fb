"""/docs (Swagger UI) and /redoc (ReDoc) from local files, so they work with no internet.

The JavaScript and CSS are not ours: they come from the `fastapi-offline` package (MIT; it
ships swagger-ui, Apache-2.0, and redoc, MIT, as package data), served from where pip
installed it. FastAPI's own pages load them from a CDN, which an offline or locked-down
deployment cannot reach.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS_URL = "/docs-assets"
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
# The default validatorUrl makes Swagger UI fetch a badge from swagger.io.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}
# The browser enforces "nothing from outside": ReDoc's side menu always shows a logo from
# cdn.redoc.ly (no option turns it off; offline its <img> just hides), and a later
# version of either bundle may want more. Inline script and styles: the pages' own.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
    )
)


def _assets_directory() -> str:
    return str(Path(fastapi_offline.__file__).parent / "static")


def _self_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve the two documentation pages and their assets; build the app with
    `docs_url=None, redoc_url=None` so FastAPI's CDN pages are not installed too."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=_assets_directory()), name="docs-assets")

    def urls(request: Request) -> tuple[str, str]:
        # Behind a proxy that serves the API under a prefix, the page must ask for it too.
        root = request.scope.get("root_path", "")
        return f"{root}{app.openapi_url}", f"{root}{DOCS_ASSETS_URL}"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi_url, assets = urls(request)
        return _self_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title}: API reference",
                swagger_js_url=f"{assets}/swagger-ui-bundle.js",
                swagger_css_url=f"{assets}/swagger-ui.css",
                swagger_favicon_url=f"{assets}/favicon.png",
                oauth2_redirect_url=None,  # Bearer keys only: no OAuth2 flow to return from
                swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
            )
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        openapi_url, assets = urls(request)
        return _self_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{app.title}: API reference",
                redoc_js_url=f"{assets}/redoc.standalone.js",
                redoc_favicon_url=f"{assets}/favicon.png",
                with_google_fonts=False,
            )
        )
