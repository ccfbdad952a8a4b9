"""What the server counts for Prometheus (GET /metrics): requests by route and status, time to answer,
photos waiting for the model, and the size of each model call.

Each app has a registry of its own, so that two apps in one process (tests, a rehearsal) count apart.
"""

from __future__ import annotations

from collections.abc import Callable

# Seconds: a low_confidence photo answers in tens of milliseconds, a batch on a 32B model in tens of seconds.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
    def __init__(self, queue_depth: Callable[[], int]):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "motioncoach_requests", "HTTP requests answered, by route and status code.", ["route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "motioncoach_request_seconds", "Seconds from a request to its answer, by route.", ["route"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.answers = Counter(
            "motioncoach_answers", "AnalysisResponses sent, by status.", ["status"], registry=self.registry
        )
        self.queue = Gauge("motioncoach_queue_depth", "Photos waiting for the model.", registry=self.registry)
        self.queue.set_function(queue_depth)
        self.batch_size = Histogram(
            "motioncoach_batch_size", "Photos per model call.", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.batch_seconds = Histogram(
            "motioncoach_batch_seconds", "Seconds per model call.", buckets=LATENCY_BUCKETS, registry=self.registry
        )

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The text exposition format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
