"""Counting what a receiver got in any window of time: how the pacing tests read "at most
the rate in any second"."""

from __future__ import annotations


def most_in_any_window(times: list[float], window: float = 1.0) -> int:
    """The most of `times` (seconds) in any window [t, t + window) that opens at one of them."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most
