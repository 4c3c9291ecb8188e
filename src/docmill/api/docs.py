"""
The interactive API docs at ``/docs`` (Swagger UI) and ``/redoc``.

A self-hosted service should document itself without the internet, so the
pages load their scripts from this server when the ``docs`` extra
(``pip install 'docmill[docs]'``, which brings ``fastapi-offline``) is
installed. Without it they load them from cdn.jsdelivr.net, as FastAPI does,
and say so: on a machine that cannot reach the CDN the page shows that note
and where the contract is, instead of staying blank.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

logger = logging.getLogger(__name__)

ASSETS_PATH = "/docs-assets"
ASSET_FILES = (
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "redoc.standalone.js",
    "favicon.png",
)
CDN = {
    "swagger-ui-bundle.js": (
        "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
    ),
    "swagger-ui.css": "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css",
    "redoc.standalone.js": (
        "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"
    ),
    "favicon.png": "https://fastapi.tiangolo.com/img/favicon.png",
}
CDN_NOTE = (
    '<p style="font: 15px system-ui, sans-serif; margin: 2rem">'
    "These docs load {tool} from cdn.jsdelivr.net, which this browser "
    "cannot reach. Install docmill with its <code>docs</code> extra "
    "(<code>pip install 'docmill[docs]'</code>) to serve them from this "
    'server. The contract itself is at <a href="{openapi}">{openapi}</a>.</p>'
)
# The docs pages hold a key field of their own ("Authorize"): no other site
# may frame them.
HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


def local_assets() -> Path | None:
    """
    Where the installed ``fastapi-offline`` keeps the docs' scripts, if it does.

    It is read as a folder of files, not called: its one function builds a
    FastAPI app of its own. A release that moves or renames them makes this
    None, and the docs fall back to the CDN rather than break.
    """
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static"
    if all((folder / name).is_file() for name in ASSET_FILES):
        return folder
    return None


def install(app: FastAPI, assets: Path | None) -> None:
    """
    Add ``/docs``, its OAuth2 redirect and ``/redoc`` to an app built with
    ``docs_url=None, redoc_url=None``.

    Args:
        assets: the folder of ``ASSET_FILES`` to serve, or None for the CDN.
    """
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"
    if assets is not None:
        app.mount(ASSETS_PATH, StaticFiles(directory=assets), name="docs-assets")
    else:
        logger.info(
            "API docs at /docs and /redoc load their scripts from "
            "cdn.jsdelivr.net; install docmill[docs] to serve them from this "
            "server",
            extra={"action": "docs_from_cdn"},
        )

    def url(request: Request, name: str) -> str:
        if assets is None:
            return CDN[name]
        return f"{request.scope.get('root_path', '')}{ASSETS_PATH}/{name}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=url(request, "swagger-ui-bundle.js"),
            swagger_css_url=url(request, "swagger-ui.css"),
            swagger_favicon_url=url(request, "favicon.png"),
            oauth2_redirect_url=root + redirect_url,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        html = bytes(page.body).decode()
        if assets is None:
            # Swagger UI replaces what its element holds once it loads; if it
            # never does, the note stays.
            note = CDN_NOTE.format(tool="Swagger UI", openapi=root + openapi_url)
            html = html.replace(
                '<div id="swagger-ui">', f'<div id="swagger-ui">{note}', 1
            )
        return HTMLResponse(html, headers=HEADERS)

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=url(request, "redoc.standalone.js"),
            redoc_favicon_url=url(request, "favicon.png"),
            with_google_fonts=False,
        )
        html = bytes(page.body).decode()
        if assets is None:
            # As on /docs: ReDoc renders into its element, over the note.
            note = CDN_NOTE.format(tool="ReDoc", openapi=root + openapi_url)
            html = html.replace("></redoc>", f">{note}</redoc>", 1)
        return HTMLResponse(html, headers=HEADERS)
