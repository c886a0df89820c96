"""A flood of distinct client addresses against the in-process limiters (web chat's new
visitors, the control room's logins, API keys, the messengers' per-user limits all use
:class:`LocalLimiter`): the table never holds more than its cap, the flood's new addresses are
limited together rather than each getting a fresh bucket, an address tracked before the flood
keeps its own count, and once the window has passed the flood's buckets are forgotten.
A fake clock: no timing in any assertion.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from opencomputer.bot.ratelimit import MAX_KEYS, Bucket, LocalLimiter, client_network
from opencomputer.connectors.web.wire import NEW_VISITORS

pytestmark = pytest.mark.timeout(60)

FLOOD = 200_000


def _clock() -> tuple[list[float], Callable[[], float]]:
    now = [1000.0]
    return now, lambda: now[0]


def _flood_key(i: int) -> str:
    """The key of the i-th attacker: a /64 of its own, as ``client_network`` names it."""
    return f"web-new:2001:db8:{i >> 16:x}:{i & 0xFFFF:x}::/64"


async def test_two_hundred_thousand_addresses_stay_under_the_cap() -> None:
    assert _flood_key(70_000) == "web-new:" + client_network("2001:db8:1:1170:aa::1")
    now, clock = _clock()
    limiter = LocalLimiter(clock)
    bucket = NEW_VISITORS  # 20 an hour
    legit = "web-new:" + client_network("198.51.100.7")
    assert all([(await limiter.take(legit, bucket)).allowed for _ in range(5)])

    allowed, largest = 0, 0
    for i in range(FLOOD):
        allowed += (await limiter.take(_flood_key(i), bucket)).allowed
        if i % 1000 == 0:
            largest = max(largest, len(limiter))
    largest = max(largest, len(limiter))
    assert largest == len(limiter) == MAX_KEYS < FLOOD
    # Every key past the cap shared one bucket: 20 more, not 150,000 more.
    assert allowed == MAX_KEYS - 1 + bucket.capacity

    # The address known before the flood still has its own bucket, neither reset nor shared.
    assert all([(await limiter.take(legit, bucket)).allowed for _ in range(15)])
    refused = await limiter.take(legit, bucket)
    assert not refused.allowed and refused.retry_after > 0
    # A new address during the flood is limited (fails safe) and told when to retry.
    newcomer = await limiter.take("web-new:203.0.113.9", bucket)
    assert not newcomer.allowed and 0 < newcomer.retry_after <= bucket.period

    # After the window every flood bucket has refilled: forgotten at the next new key.
    now[0] += bucket.period + 1
    assert (await limiter.take("web-new:203.0.113.9", bucket)).allowed
    assert len(limiter) == 1


async def test_refilled_buckets_are_forgotten_and_refused_ones_kept() -> None:
    now, clock = _clock()
    limiter = LocalLimiter(clock, max_keys=100)
    bucket = Bucket(2, 10)  # one token back every 5 s
    for i in range(50):
        await limiter.take(f"once:{i}", bucket)  # one token taken: full again in 5 s
    for _ in range(3):
        await limiter.take("greedy", bucket)  # empty, and refused once
    now[0] += 6
    await limiter.take("new", bucket)  # a new key sweeps: 'once:*' are full, 'greedy' is not
    assert len(limiter) == 2
    greedy = await limiter.take("greedy", bucket)
    assert greedy.allowed  # one token came back in 6 s
    assert not (await limiter.take("greedy", bucket)).allowed  # its count was kept


async def test_a_full_table_of_live_buckets_limits_new_keys_together() -> None:
    now, clock = _clock()
    limiter = LocalLimiter(clock, max_keys=3)
    bucket = Bucket(2, 60)
    for key in ("a", "b", "c"):
        assert (await limiter.take(key, bucket)).allowed
    outside = [await limiter.take(f"x{i}", bucket) for i in range(4)]
    assert [d.allowed for d in outside] == [True, True, False, False]
    assert [d.notify for d in outside[2:]] == [True, False]  # one notice, then silence
    assert len(limiter) == 3
    # A tracked key is still answered from its own bucket.
    assert (await limiter.take("a", bucket)).allowed
    now[0] += 60
    assert (await limiter.take("x0", bucket)).allowed and len(limiter) <= 3


def test_a_limiter_needs_room_for_one_key() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        LocalLimiter(max_keys=0)
