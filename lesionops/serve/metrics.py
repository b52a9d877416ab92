"""Prometheus metrics of one app instance, in its own registry (several apps may share a process).

Requests are labelled by route template (`/review/items/{feedback_id}`), never by raw path, so an
attacker probing random URLs cannot blow up the label cardinality.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lesionops_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "lesionops_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "lesionops_predictions", "Predictions by kind and (top) class", ["kind", "label"], registry=self.registry
        )
        self.out_of_scope = Counter(
            "lesionops_out_of_scope", "Photos refused as out of scope, by reason", ["reason"], registry=self.registry
        )
        self.feedback = Counter(
            "lesionops_feedback",
            "Feedback reports by event (reported, accepted, rejected)",
            ["event"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "lesionops_model_info",
            "Model version in service (1 = serving)",
            ["kind", "name", "version"],
            registry=self.registry,
        )
        self._served: dict[str, tuple[str, str]] = {}

    def set_models(self, served: dict[str, Any]) -> None:
        """Point the info gauge at the versions in service (the old series is dropped)."""
        for kind, model in served.items():
            old = self._served.pop(kind, None)
            if old is not None:
                self.model_info.remove(kind, *old)
            if model is not None:
                self._served[kind] = (model.name, model.version)
                self.model_info.labels(kind, model.name, model.version).set(1)


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: bodies stream through untouched)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("unmatched" if status == 404 else "other")
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - start)
