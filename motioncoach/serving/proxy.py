"""An OpenAI-compatible server's own API under this app's /v1 (streaming included), behind this app's token.

For clients that bring their own prompt, as the app's backend does today. The upstream is vLLM on the Modal
endpoint, or any OpenAI-compatible server given to `motioncoach serve --openai-upstream`. The client's
Authorization header (this app's token) never goes upstream; the upstream's own key, when it has one, does.
"""

# No `from __future__ import annotations` in this module: FastAPI reads the handlers' annotations to inject
# the request, and a string annotation of a class imported inside a function cannot be resolved.

import logging

log = logging.getLogger(__name__)

FORWARDED = ("chat/completions", "completions", "models")  # the OpenAI-compatible routes
# Request headers that describe the body or the answer wanted; the rest (auth, hop-by-hop) stay here.
PASSED_HEADERS = ("content-type", "accept")


def forward_openai_api(app, upstream: str, *, api_key: str | None, timeout_s: float) -> None:
    """Add /v1/<route> for each FORWARDED route, passed to `upstream` (its root URL, without /v1)."""
    import httpx
    from fastapi import Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.background import BackgroundTask

    client = httpx.AsyncClient(base_url=upstream.rstrip("/"), timeout=httpx.Timeout(timeout_s, connect=10.0))

    async def forward(request: Request, route: str):
        headers = {name: request.headers[name] for name in PASSED_HEADERS if name in request.headers}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        sent = client.build_request(
            request.method, f"/v1/{route}", params=request.query_params, content=await request.body(), headers=headers
        )
        try:
            answer = await client.send(sent, stream=True)
        except httpx.HTTPError as exc:
            log.warning("%s: the model server did not answer /v1/%s: %s", request.state.request_id, route, exc)
            error = {"message": f"the model server does not answer ({type(exc).__name__})", "type": "upstream_error"}
            return JSONResponse(status_code=502, content={"error": error})
        kept = {name: answer.headers[name] for name in ("retry-after",) if name in answer.headers}
        return StreamingResponse(
            answer.aiter_bytes(), status_code=answer.status_code, media_type=answer.headers.get("content-type"),
            headers=kept, background=BackgroundTask(answer.aclose),
        )  # fmt: skip

    for route in FORWARDED:
        app.add_api_route(f"/v1/{route}", _bound(forward, route), methods=["GET", "POST"], include_in_schema=False)


def _bound(forward, route: str):
    from fastapi import Request

    async def handler(request: Request):
        return await forward(request, route)

    return handler


async def answers(upstream: str, api_key: str | None, timeout_s: float = 3.0) -> tuple[bool, str]:
    """Whether the server lists its models (every OpenAI-compatible server has GET /v1/models), and what it said."""
    import httpx

    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            reply = await client.get(f"{upstream.rstrip('/')}/v1/models", headers=headers)
    except httpx.HTTPError as exc:
        return False, f"no answer ({type(exc).__name__})"
    return reply.status_code == 200, f"GET /v1/models answered {reply.status_code}"
