"""The service's web page (``/ui``) and its offline API docs (``/docs``, ``/redoc``).

The page is plain HTML/CSS/JS shipped as package data (``static/``): no build step,
no external URL. It talks to the public API with the keys the user types in (a read
key for reads, a write key for events and new items) and to three small helper
reads under ``/ui/api`` (:mod:`fusionrec.serve.ui.api`).
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.params import Depends
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from fusionrec.serve.service import RecService
from fusionrec.serve.ui.api import add_ui_routes
from fusionrec.serve.ui.docs import mount_offline_docs

STATIC = Path(__file__).parent / "static"

__all__ = ["STATIC", "mount_offline_docs", "mount_ui"]


def mount_ui(app: FastAPI, service: RecService, reads: list[Depends] | None = None) -> None:
    """Add ``/ui`` (the page), ``/ui/static`` (its files), ``/ui/api`` (its helper reads) and offline docs.

    The helper reads declare the ``read`` role (``x-role``) as the API's reads do, so the
    service's access middleware guards them alike; ``reads`` adds per-route dependencies
    for an app without that middleware.
    """
    add_ui_routes(app, service, reads)
    app.mount("/ui/static", StaticFiles(directory=str(STATIC)), name="ui-static")

    @app.get("/ui", include_in_schema=False)
    async def ui_page() -> FileResponse:
        # the page itself holds no data, so it needs no key; its requests carry the keys
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/ui/", include_in_schema=False)
    async def ui_slash() -> RedirectResponse:
        return RedirectResponse("/ui")

    mount_offline_docs(app)
