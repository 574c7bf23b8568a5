"""Canary routing: the Unleash murmur3 scheme, deterministic and monotone."""

from __future__ import annotations

import mmh3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alphaops.core.errors import UsageError
from alphaops.rollout import bucket, check_percentage, routes_to_challenger

keys = st.one_of(st.text(max_size=40), st.integers(min_value=-(2**63), max_value=2**63))
rollout_ids = st.text(min_size=1, max_size=20)


def test_bucket_matches_unleash_normalized_value_for_group_gr1_user_123() -> None:
    # Unleash client specification: normalizedValue("123", "gr1") == 73.
    assert bucket("gr1", "123") == 73


def test_hash_is_murmur3_x86_32_unsigned_with_seed_zero() -> None:
    # Independent published vectors: mmh3 "Hello world" and git's bloom test "Hello world!".
    assert mmh3.hash("Hello world", 0, signed=False) == 2911983372
    assert mmh3.hash("Hello world!", 0, signed=False) == 0x627B0C2C
    assert bucket("r", "k") == mmh3.hash("r:k", 0, signed=False) % 100 + 1


@given(rollout_ids, keys)
def test_bucket_is_deterministic_and_in_1_to_100(rollout_id: str, key: str | int) -> None:
    first = bucket(rollout_id, key)
    assert first == bucket(rollout_id, key)
    assert 1 <= first <= 100


@given(rollout_ids, keys, st.integers(0, 100), st.integers(0, 100))
def test_raising_the_percentage_only_adds_keys(
    rollout_id: str, key: str | int, low: int, high: int
) -> None:
    low, high = min(low, high), max(low, high)
    if routes_to_challenger(rollout_id, key, low):
        assert routes_to_challenger(rollout_id, key, high)


@given(rollout_ids, keys)
def test_zero_percent_routes_no_key_and_100_percent_routes_every_key(
    rollout_id: str, key: str | int
) -> None:
    assert not routes_to_challenger(rollout_id, key, 0)
    assert routes_to_challenger(rollout_id, key, 100)


def test_canary_share_is_close_to_the_percentage() -> None:
    share = sum(routes_to_challenger("r7", k, 10) for k in range(20_000)) / 20_000
    assert 0.09 < share < 0.11


@pytest.mark.parametrize("bad", [-1, 101, 10.5, True])
def test_percentage_outside_0_to_100_is_refused(bad: object) -> None:
    with pytest.raises(UsageError, match=repr(bad)):
        check_percentage(bad)  # type: ignore[arg-type]
