"""The inference server's Prometheus metrics, in a registry of its own (several servers
may live in one test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge("vera_serve_queue_depth", "Rows waiting for a batch", registry=r)
        self.batch_size = Histogram(
            "vera_serve_batch_size",
            "Rows per model call",
            ["kind"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.generated_tokens = Counter(
            "vera_serve_generated_tokens", "Completion tokens generated", registry=r
        )
        self.tokens_per_second = Gauge(
            "vera_serve_tokens_per_second",
            "Completion tokens per second of the last batch",
            registry=r,
        )
        self.loaded_users = Gauge(
            "vera_serve_loaded_users", "Users whose adapters are loaded", registry=r
        )
        self.adapter_swaps = Counter(
            "vera_serve_adapter_swaps",
            "Adapters loaded, replaced (publish, rollback) or dropped",
            ["reason"],
            registry=r,
        )
        self.rejected = Counter(
            "vera_serve_rejected", "Requests refused because the queue was full", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
