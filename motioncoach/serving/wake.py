"""Waiting for an endpoint to serve a chosen release: its /health names the release and says its model
server answers. A warm container still serving the previous release answers /health too, so a 200 alone
says nothing about the new one."""

from __future__ import annotations

import time

from motioncoach.errors import ConfigurationError


def wait_until_serving(
    url: str, release: str, headers: dict[str, str] | None = None, *, limit_s: float, poll_s: float = 5.0
) -> float:
    """Seconds until GET {url}/health reported `release` with its model server answering; ConfigurationError
    after limit_s, saying what /health last reported."""
    import httpx

    started = time.monotonic()
    last = "no answer"
    while True:
        try:
            reply = httpx.get(f"{url.rstrip('/')}/health", headers=headers or {}, timeout=60)
            health = reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
            if reply.status_code == 200 and health.get("release") == release:
                return time.monotonic() - started
            served = health.get("release")
            last = f"HTTP {reply.status_code}" + (f", serving {served}" if served else "")
            if served == release:
                last += f", model server: {(health.get('model_server') or {}).get('said', 'unknown')}"
        except httpx.HTTPError as exc:
            last = f"no answer ({type(exc).__name__})"
        if time.monotonic() - started + poll_s > limit_s:
            raise ConfigurationError(
                f"{url}/health did not report {release} within {limit_s:.0f} s (last: {last}): see the app's logs"
            )
        time.sleep(poll_s)
