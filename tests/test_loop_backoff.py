"""`reconciler.loop.backoff`: capped exponential delays with equal jitter, per key."""

from __future__ import annotations

import random

import pytest

from reconciler.loop.backoff import Backoff


@pytest.mark.parametrize(
    ("base", "cap", "factor", "nominal"),
    [
        (5.0, 300.0, 2.0, [5, 10, 20, 40, 80, 160, 300, 300, 300]),
        (1.0, 10.0, 3.0, [1, 3, 9, 10, 10]),
        (2.0, 2.0, 2.0, [2, 2, 2]),
        (4.0, 100.0, 1.0, [4, 4, 4]),
    ],
)
def test_the_nominal_delay_doubles_up_to_the_cap(
    base: float, cap: float, factor: float, nominal: list[float]
) -> None:
    backoff = Backoff(base, cap, factor, rng=random.Random(7))
    for n, expected in enumerate(nominal, start=1):
        assert backoff.nominal(n) == expected
        delay = backoff.failed("policy")
        assert expected / 2 <= delay <= expected, (n, delay)
        assert backoff.failures("policy") == n


def test_seeded_delays_are_deterministic_and_equal_jitter() -> None:
    # A seeded rng: the same draws as uniform(d/2, d) on a twin rng, so the values are known.
    twin = random.Random(42)
    expected = [twin.uniform(d / 2, d) for d in (5, 10, 20, 40, 80, 160, 300, 300)]
    backoff = Backoff(rng=random.Random(42))
    assert [backoff.failed("k") for _ in expected] == expected
    assert Backoff(rng=random.Random(42)).failed("k") == pytest.approx(expected[0])
    assert len(set(expected)) == len(expected)  # jittered, not the nominal values


def test_delays_stay_within_base_half_and_cap_for_many_failures() -> None:
    backoff = Backoff(base=5.0, cap=300.0, rng=random.Random(1))
    delays = [backoff.failed("k") for _ in range(5000)]  # factor**4999 overflows a float
    assert min(delays) >= 2.5
    assert max(delays) <= 300.0
    assert max(delays[10:]) > 250  # the cap is reached, and jitter reaches near it
    assert min(delays[10:]) >= 150  # never below half the cap once capped


def test_success_resets_the_count_and_the_delay() -> None:
    backoff = Backoff(base=5.0, cap=300.0, rng=random.Random(3))
    for _ in range(6):
        backoff.failed("k")
    assert backoff.failures("k") == 6
    backoff.succeeded("k")
    assert backoff.failures("k") == 0
    assert 2.5 <= backoff.failed("k") <= 5.0
    assert backoff.failures("k") == 1


def test_keys_are_counted_apart_and_forget_drops_one() -> None:
    backoff = Backoff(rng=random.Random(0))
    backoff.failed(("tank/a", "backup"))
    backoff.failed(("tank/a", "backup"))
    backoff.failed("tank/b")
    assert backoff.failures(("tank/a", "backup")) == 2
    assert backoff.failures("tank/b") == 1
    assert backoff.failures("never") == 0
    backoff.forget(("tank/a", "backup"))
    assert backoff.failures(("tank/a", "backup")) == 0
    assert backoff.failures("tank/b") == 1
    backoff.forget("never")  # forgetting an unknown key is fine


@pytest.mark.parametrize(
    ("base", "cap", "factor"), [(0.0, 10.0, 2.0), (5.0, 4.0, 2.0), (5.0, 10.0, 0.5)]
)
def test_bad_parameters_are_refused(base: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap, factor)


def test_nominal_refuses_zero_failures() -> None:
    with pytest.raises(ValueError):
        Backoff().nominal(0)
