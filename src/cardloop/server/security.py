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
    """Token (when one is set) and Origin for writes; BodyLimit bounds request bodies."""

    def __init__(self, app: Any, token: str | None):
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: Any) -> Any:
        if self.token and request.url.path.startswith("/api") and not token_ok(request, self.token):
            return JSONResponse({"detail": "a token is required: send 'Authorization: Bearer <token>' "
                                           "or ?token=<token>"}, status_code=401)
        if request.method in WRITE_METHODS:
            if not origin_ok(request):
                return JSONResponse({"detail": f"requests that change anything must come from this server's own "
                                               f"pages; origin {request.headers.get('origin')!r} is not allowed"},
                                    status_code=403)
        return await call_next(request)


def token_ok(request: Any, token: str) -> bool:
    header = request.headers.get("authorization", "")
    bearer = header.startswith("Bearer ")
    given = header.removeprefix("Bearer ").strip() if bearer else request.query_params.get("token")
    return given is not None and secrets.compare_digest(given, token)


def origin_ok(request: Any) -> bool:
    """A browser's cross-site write carries another Origin; tools that send none (curl, tests) are allowed."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def confined(file: Path, data_root: Path) -> bool:
    """Whether a file a card will read (already resolved as the card resolves it) lies inside the data root
    or among the data sets shipped with cardloop."""
    from cardloop.datasets import DATASETS_DIR

    resolved = Path(file).resolve()
    return any(resolved == root or root in resolved.parents
               for root in (Path(data_root).resolve(), DATASETS_DIR.resolve()))


class BodyLimit:
    """Refuses a request body over `max_body` bytes however it is sent (with a length, or chunked): the body
    is read here first, at most `max_body` bytes of it, then handed on."""

    def __init__(self, app: Any, max_body: int = MAX_BODY_BYTES):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # the client went away: let the app see it
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body:
                response = JSONResponse({"detail": f"request body is over the limit of {self.max_body} bytes"},
                                        status_code=413)
                await response(scope, receive, send)
                return
        body = b"".join(chunks)
        delivered = False

        async def replay() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
