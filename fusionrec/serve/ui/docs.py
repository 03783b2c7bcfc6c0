"""The API docs pages (``/docs`` Swagger UI, ``/redoc`` ReDoc) from local files, so they work offline.

FastAPI's own docs pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from
Google), so on a machine without internet they stay blank. The ``fastapi-offline``
package ships those same browser bundles as package data; they are served here under
``/docs-assets`` and FastAPI's two routes are replaced by pages that point at them.
"""
from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute

log = logging.getLogger("fusionrec.serve")

ASSETS_URL = "/docs-assets"


def docs_assets_dir() -> Path | None:
    """The folder with ``swagger-ui-bundle.js``, ``swagger-ui.css``, ``redoc.standalone.js``; None when absent."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    needed = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
    return folder if all((folder / n).is_file() for n in needed) else None


# ReDoc's sidebar footer always shows its maker's logo from their CDN: the one external URL in the
# bundle. An empty inline image takes its place, so the page makes no request off this server.
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_EMPTY_IMAGE = b"data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"  # 1x1 transparent


def _offline_redoc(path: Path) -> bytes:
    return path.read_bytes().replace(_REDOC_LOGO, _EMPTY_IMAGE)


def _without(routes: list[BaseRoute], paths: set[str]) -> list[BaseRoute]:
    return [r for r in routes if getattr(r, "path", None) not in paths]


def mount_offline_docs(app: FastAPI) -> bool:
    """Serve ``app.docs_url`` and ``app.redoc_url`` from local assets; False (CDN pages kept) without them."""
    folder = docs_assets_dir()
    if folder is None:
        log.warning("fastapi-offline is not installed, so /docs and /redoc load their scripts from a CDN and "
                    "stay blank offline; install it with `pip install fastapi-offline`")
        return False
    if not app.openapi_url:
        return False
    docs_url, redoc_url, openapi_url = app.docs_url, app.redoc_url, app.openapi_url
    app.router.routes[:] = _without(app.router.routes, {p for p in (docs_url, redoc_url) if p})
    redoc_js = _offline_redoc(folder / "redoc.standalone.js")

    # registered before the mount below, which would otherwise serve the file as shipped
    @app.get(f"{ASSETS_URL}/redoc.standalone.js", include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(redoc_js, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    app.mount(ASSETS_URL, StaticFiles(directory=str(folder)), name="docs-assets")
    favicon = f"{ASSETS_URL}/favicon.png"

    if docs_url:
        @app.get(docs_url, include_in_schema=False)
        async def swagger_ui(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "").rstrip("/")
            oauth = app.swagger_ui_oauth2_redirect_url
            return get_swagger_ui_html(
                openapi_url=root + openapi_url, title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css", swagger_favicon_url=root + favicon,
                oauth2_redirect_url=root + oauth if oauth else None, init_oauth=app.swagger_ui_init_oauth,
                # validatorUrl None: Swagger UI would otherwise send the spec to an online validator
                swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None})

    if redoc_url:
        @app.get(redoc_url, include_in_schema=False)
        async def redoc(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "").rstrip("/")
            return get_redoc_html(openapi_url=root + openapi_url, title=f"{app.title} - ReDoc",
                                  redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                                  redoc_favicon_url=root + favicon, with_google_fonts=False)
    return True
