"""Fault injection for the local stand-in servers: seeded, bounded, counted."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Faults"]


@dataclass
class Faults:
    """Fault injection: each request fails with probability ``rate``.

    Parameters
    ----------
    rate
        Probability that a request is answered by a fault.
    kinds
        Fault kinds drawn uniformly: ``"429"`` (with ``Retry-After``), ``"500"``,
        ``"reset"`` (connection closed with RST before an answer), ``"truncate"``
        (a 200 whose ``Content-Length`` is larger than the body sent).
    seed
        Seed of the RNG (runs are reproducible up to thread interleaving).
    max_total
        Bound on the number of faults over the server's life.
    max_per_path
        Bound on the faults of one URL path, so a client with more retries than
        this always gets through.
    retry_after
        Value of the ``Retry-After`` header of 429 answers (seconds).
    """

    rate: float = 0.2
    kinds: tuple[str, ...] = ("429", "500", "reset", "truncate")
    seed: int = 0
    max_total: int = 10_000
    max_per_path: int = 2
    retry_after: str = "0"
    counts: Counter[str] = field(default_factory=Counter)
    per_path: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self, path: str) -> str | None:
        """The fault for a request of ``path``, or ``None``."""
        with self._lock:
            if self.total >= self.max_total or self.per_path[path] >= self.max_per_path:
                return None
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.counts[kind] += 1
            self.per_path[path] += 1
            return kind

    @property
    def total(self) -> int:
        """The number of faults injected so far."""
        return sum(self.counts.values())
