"""Who may talk to the server: loopback by default, a token for anything else, same-origin writes, bounded
request bodies, and data paths confined to a data root."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_BODY_BYTES = 4 * 1024 * 1024
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Guard(BaseHTTPMiddleware):
    """Token (when one is set), Origin for writes, and a size limit on request bodies."""

    def __init__(self, app: Any, token: str | None, max_body: int = MAX_BODY_BYTES):
        super().__init__(app)
        self.token, self.max_body = token, max_body

    async def dispatch(self, request: Request, call_next: Any) -> Any:
        if self.token and request.url.path.startswith("/api") and not token_ok(request, self.token):
            return JSONResponse({"detail": "a token is required: send 'Authorization: Bearer <token>' "
                                           "or ?token=<token>"}, status_code=401)
        if request.method in WRITE_METHODS:
            if not origin_ok(request):
                return JSONResponse({"detail": f"requests that change anything must come from this server's own "
                                               f"pages; origin {request.headers.get('origin')!r} is not allowed"},
                                    status_code=403)
            length = request.headers.get("content-length")
            if length is not None and int(length) > self.max_body:
                return JSONResponse({"detail": f"request body of {length} bytes is over the limit of "
                                               f"{self.max_body} bytes"}, status_code=413)
        return await call_next(request)


def token_ok(request: Any, token: str) -> bool:
    header = request.headers.get("authorization", "")
    given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else request.query_params.get("token")
    return given is not None and secrets.compare_digest(given, token)


def origin_ok(request: Any) -> bool:
    """A browser's cross-site write carries another Origin; tools that send none (curl, tests) are allowed."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def confined(path: str, data_root: Path) -> bool:
    """Whether a data path stays inside the data root (packaged `cardloop:` data sets always do)."""
    if path.startswith("cardloop:"):
        return True
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else data_root / candidate).resolve()
    return resolved == data_root.resolve() or data_root.resolve() in resolved.parents
