"""Exact-value tests of the acceptance arithmetic (swarm/core/stats.py)."""

from __future__ import annotations

from swarm.core.stats import improvement, margin, mean, pooled_spread


def test_improvement_minimize_is_reference_minus_value() -> None:
    assert improvement(1.0, 1.5, "minimize") == 0.5


def test_improvement_maximize_is_value_minus_reference() -> None:
    assert improvement(1.0, 1.5, "maximize") == -0.5


def test_improvement_worse_is_negative_when_minimizing() -> None:
    assert improvement(2.0, 1.5, "minimize") == -0.5


def test_mean_of_three() -> None:
    assert mean([0.75, 1.0, 1.25]) == 1.0


def test_pooled_spread_is_none_without_repeats() -> None:
    assert pooled_spread([[1.0], [2.0], []]) is None


def test_pooled_spread_is_none_with_no_groups() -> None:
    assert pooled_spread([]) is None


def test_pooled_spread_of_two_groups() -> None:
    # [0, 6]: mean 3, squares 9 + 9 = 18, 1 degree of freedom
    # [0, 8]: mean 4, squares 16 + 16 = 32, 1 degree of freedom
    # sqrt((18 + 32) / 2) = sqrt(25) = 5
    assert pooled_spread([[0.0, 6.0], [0.0, 8.0]]) == 5.0


def test_pooled_spread_weights_groups_by_degrees_of_freedom() -> None:
    # [0.75, 1, 1.25]: squares 0.125, 2 dof; [2, 2]: squares 0, 1 dof -> sqrt(0.125 / 3)
    assert pooled_spread([[0.75, 1.0, 1.25], [2.0, 2.0]]) == (0.125 / 3) ** 0.5


def test_pooled_spread_ignores_singleton_groups() -> None:
    assert pooled_spread([[0.0, 6.0], [100.0], [0.0, 8.0], [-50.0]]) == 5.0


def test_margin_is_min_delta_without_spread() -> None:
    assert margin(0.1, 2.0, None) == 0.1


def test_margin_is_k_times_spread_when_larger() -> None:
    assert margin(0.1, 2.0, 0.25) == 0.5


def test_margin_is_min_delta_when_larger() -> None:
    assert margin(1.0, 2.0, 0.25) == 1.0


def test_margin_zero_without_spread_or_min_delta() -> None:
    assert margin(0.0, 2.0, None) == 0.0
