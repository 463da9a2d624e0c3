"""The app with the web pages, as the tests (in process) and the browser tests' server use it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.app import create_app
from api.web import router
from detnat.settings import Settings, get_settings


def web_app(settings: Settings) -> FastAPI:
    """The app as ``create_app`` makes it, with the pages (included here until it does)."""
    app = create_app(settings)
    if not includes_pages(app):
        app.include_router(router)
    if not isinstance(getattr(app.state, "settings", None), Settings):
        app.state.settings = settings
    return app


def includes_pages(app: FastAPI) -> bool:
    return any(getattr(r, "original_router", None) is router for r in app.router.routes)


def web_paths() -> list[tuple[str, str]]:
    """Every (method, path template) of the web router."""
    return sorted(
        (method, route.path)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
        if method != "HEAD"
    )


def app_from_environment() -> FastAPI:
    """For uvicorn in the browser tests when ``detnat serve`` does not serve the pages yet."""
    return web_app(get_settings())
