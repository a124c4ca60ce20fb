"""Serves the console's static files at /ui (no build step, no CDN) and redirects / there.

The console routes with the URL's hash (`/ui/#/users`), so every other path under /ui/
that is not a file answers index.html: a bookmarked or mistyped /ui/users still opens it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from registry.errors import NotFound

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)

# ES modules are refused by browsers unless served as JavaScript.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# Everything comes from this origin: no inline script, no third-party code, no framing.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated every time (ETag), so a new release is never mixed with cached modules.
    "Cache-Control": "no-cache",
}


@router.get("/")
def root() -> RedirectResponse:
    """The console."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
def console_bare() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
def console_index() -> Response:
    return _file(STATIC / "index.html")


@router.get("/ui/{path:path}")
def console_file(path: str) -> Response:
    """A static file; a path that names no file and has no extension: the console itself."""
    target = (STATIC / path).resolve()
    if target.is_relative_to(STATIC.resolve()) and target.is_file():
        return _file(target)
    if Path(path).suffix:
        raise NotFound(f"no console file {path!r}")
    return _file(STATIC / "index.html")


def _file(path: Path) -> FileResponse:
    media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media_type, headers=HEADERS)
