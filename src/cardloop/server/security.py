"""Who may talk to the server: loopback by default, a token for anything else, only local host names on
loopback (against DNS rebinding), same-origin writes, bounded request bodies, and data paths confined to a data
root."""

from __future__ import annotations

import ipaddress
import re
import secrets
from pathlib import Path
from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocketClose

from cardloop.errors import CardloopError

MAX_BODY_BYTES = 4 * 1024 * 1024
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
LOCAL_HOSTNAMES = frozenset({"localhost"})
HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$")


def is_loopback(host: str) -> bool:
    """Whether binding `host` listens on loopback only ('' and '0.0.0.0' listen on every interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind_host: str, extra: list[str]) -> frozenset[str] | None:
    """The host names a server bound to `bind_host` answers to besides loopback addresses, as Jupyter does:
    on loopback, 'localhost' and the names the user allows; elsewhere any name (None), since the token guards it."""
    names = {_host_name(name) for name in extra}
    return LOCAL_HOSTNAMES | names if is_loopback(bind_host) else None


def _host_name(given: str) -> str:
    """A name as a Host header carries it, lowercase, without port; an IPv6 address without brackets."""
    name = given.strip().lower()
    try:
        return str(ipaddress.ip_address(name.removeprefix("[").removesuffix("]")))
    except ValueError:
        if HOST_NAME.match(name):
            return name
    raise CardloopError(f"--allow-host {given!r} is not a host name: give the name alone, without a scheme or "
                        "port, e.g. --allow-host my-box.lan")


def host_ok(host_header: str, names: frozenset[str]) -> bool:
    """Whether a Host header ('name', 'name:port', '[::1]:port') names a loopback address or an allowed name."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in names
    return address.is_loopback or str(address) in names


class HostCheck:
    """Refuses a request or WebSocket whose Host header is not an allowed name: a page on a name that a DNS
    rebinding points at 127.0.0.1 is same-origin with itself, not with this server, and names its own host."""

    def __init__(self, app: Any, names: frozenset[str] | None):
        self.app, self.names = app, names

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        host = Headers(scope=scope).get("host") if scope["type"] in ("http", "websocket") else None
        if self.names is None or host is None or host_ok(host, self.names):
            await self.app(scope, receive, send)
            return
        message = (f"host {host!r} is not allowed: this server answers to loopback addresses and "
                   f"{', '.join(sorted(self.names))}; start it with --allow-host NAME to allow another name")
        if scope["type"] == "http":
            await JSONResponse({"detail": message}, status_code=403)(scope, receive, send)
        else:  # a close frame's reason is at most 123 bytes
            await WebSocketClose(code=4403, reason="host not allowed")(scope, receive, send)


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
    """A bearer header (the scheme in any case, RFC 6750) or, without one, a `token` query parameter."""
    scheme, _, credentials = request.headers.get("authorization", "").strip().partition(" ")
    bearer = scheme.lower() == "bearer"
    given = credentials.strip() if bearer else request.query_params.get("token")
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


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
