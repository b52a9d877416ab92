"""Request-body size limit that answers in the API's JSON error shape.

Starlette's own limiter (FastAPI `max_body_size`) replaces any response with a plain-text 413 when
the declared Content-Length is too large; every error of this API is `{"detail": ...}`, so the
limit is enforced here instead: a declared length over the limit is refused before a byte is read,
and a chunked body is counted as it streams and refused as soon as it crosses the limit.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def too_large(limit: int) -> str:
    return f"request body larger than {limit:,} bytes (serve.max_upload_bytes)"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": too_large(self.max_bytes)}, status_code=413, headers={"Connection": "close"})(
                scope, receive, send
            )
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, too_large(self.max_bytes))
            return message

        await self.app(scope, counted, send)
