"""Deterministic, monotone canary routing (the Unleash scheme).

A routing key (order id, account, bar time …) maps to a bucket 1..100 by
``murmur3_x86_32(f"{rollout_id}:{key}") % 100 + 1`` (unsigned, seed 0): the same key always
lands in the same bucket of a rollout, and keys with a bucket at or below the canary
percentage go to the challenger, so raising the percentage only ever adds keys.

>>> bucket("gr1", "123")  # Unleash's normalizedValue("123", "gr1")
73
>>> routes_to_challenger("gr1", "123", 73), routes_to_challenger("gr1", "123", 72)
(True, False)
"""

from __future__ import annotations

import mmh3

from alphaops.core.errors import UsageError

__all__ = ["bucket", "check_percentage", "routes_to_challenger"]


def bucket(rollout_id: str, key: str | int) -> int:
    """Return the bucket 1..100 of routing ``key`` in rollout ``rollout_id``."""
    return int(mmh3.hash(f"{rollout_id}:{key}", 0, signed=False)) % 100 + 1


def check_percentage(percentage: int) -> int:
    """Return ``percentage`` if it is a whole number 0..100, else raise :class:`UsageError`."""
    if (
        isinstance(percentage, bool)
        or not isinstance(percentage, int)
        or not 0 <= percentage <= 100
    ):
        raise UsageError(
            f"canary percentage {percentage!r} is not a whole number from 0 to 100",
            fix="pass e.g. 10, 50 or 100",
        )
    return percentage


def routes_to_challenger(rollout_id: str, key: str | int, percentage: int) -> bool:
    """Return whether ``key`` is served by the challenger at ``percentage`` percent."""
    return bucket(rollout_id, key) <= percentage
