"""Every request's way in: a request id, the API token, a bounded body, and its line in the log and the metrics.

Plain ASGI rather than Starlette's BaseHTTPMiddleware, so the body is counted as it arrives, with a
Content-Length or chunked, and refused once it passes its route's limit instead of being read whole.
Only /health is open without the token. The app's own routes answer a refusal of their body with HTTP 200
and an AnalysisResponse of status error, as the app shows anything else as a mock answer; a missing token
is a 401 everywhere.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})
REQUEST_ID_HEADER = "x-request-id"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # a caller's own id is kept when it is this tame


class FrontDoor:
    """ASGI middleware in front of the coach's app."""

    def __init__(
        self,
        app,
        *,
        token: str | None,
        body_limit: Callable[[str], int],
        app_paths: frozenset[str],
        too_large: Callable[[int], dict],
        routes: frozenset[str],
        on_answer: Callable[[str, int, float], None],
    ):
        self.app, self.token, self.body_limit, self.app_paths = app, token, body_limit, app_paths
        self.too_large, self.routes, self.on_answer = too_large, routes, on_answer

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.monotonic()
        path = scope["path"]
        sent = dict(scope.get("headers") or [])
        offered = sent.get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = offered if _CLIENT_ID.match(offered) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status = {"code": 500}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (REQUEST_ID_HEADER.encode(), request_id.encode())]}  # fmt: skip
            await send(message)

        try:
            refusal = self._refusal(path, sent)
            if refusal is None:
                body = await self._bounded_body(path, sent, receive)
                if isinstance(body, bytes):
                    return await self.app(scope, _replay(body, receive), send_with_id)
                refusal = body
            await refusal(scope, receive, send_with_id)
        finally:
            seconds = time.monotonic() - started
            route = path if path in self.routes else "other"
            self.on_answer(route, status["code"], seconds)
            log.info("%s %s %s -> %d in %.3f s", request_id, scope["method"], path, status["code"], seconds)

    def _refusal(self, path: str, headers: dict):
        """A 401 for a request without the token (none is needed for /health, or when no token is set)."""
        from starlette.responses import JSONResponse

        if self.token is None or path in OPEN_PATHS:
            return None
        given = headers.get(b"authorization", b"").decode("latin-1")
        if secrets.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return None
        return JSONResponse(status_code=401, content={"detail": "a valid 'Authorization: Bearer' token is needed"},
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    async def _bounded_body(self, path: str, headers: dict, receive):
        """The whole body when it is within the route's limit; otherwise the response refusing it."""
        limit = self.body_limit(path)
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > limit:
            return self._too_large(path, limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return self._too_large(path, limit)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def _too_large(self, path: str, limit: int):
        from starlette.responses import JSONResponse

        if path in self.app_paths:
            return JSONResponse(status_code=200, content=self.too_large(limit))
        return JSONResponse(status_code=413, content={"detail": f"the body is over {limit} bytes"})


def _replay(body: bytes, receive):
    """The body read by the door, once; then the connection's own messages (a disconnect, for a stream)."""
    given = False

    async def replayed():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
