"""Live accuracy: match classification results to true labels by input stamp (no ROS)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

Stamp = tuple[int, int]  # (sec, nanosec) of the input frame's header


@dataclass(frozen=True)
class Match:
    """One result whose true label is known."""

    app_id: str
    stamp: Stamp
    predicted: int
    truth: int
    level: int
    t: float | None = None  # when the result arrived (caller's clock), if given


    @property
    def correct(self) -> bool:
        return self.predicted == self.truth


class StampMatcher:
    """Pairs results and labels that carry the same stamp, whichever arrives first.

    Unmatched entries are kept for the last ``capacity`` stamps per side (frames dropped by an app never get
    a result, and results of unlabelled sources never get a label: both age out), so memory stays bounded.
    """

    def __init__(self, capacity: int = 2000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._labels: OrderedDict[Stamp, int] = OrderedDict()
        self._results: OrderedDict[tuple[Stamp, str], tuple[int, int, float | None]] = OrderedDict()
        self.correct: dict[str, int] = {}
        self.total: dict[str, int] = {}

    @staticmethod
    def _trim(d: OrderedDict, capacity: int) -> None:
        while len(d) > capacity:
            d.popitem(last=False)

    def add_label(self, stamp: Stamp, truth: int) -> list[Match]:
        """Record a true label (negative = unknown, ignored); return results it completes."""
        if truth < 0:
            return []
        self._labels[stamp] = truth
        self._trim(self._labels, self.capacity)
        done = [key for key in self._results if key[0] == stamp]
        return [self._match(key[1], stamp, *self._results.pop(key)) for key in done]

    def add_result(self, app_id: str, stamp: Stamp, predicted: int, level: int, t: float | None = None
                   ) -> Match | None:
        """Record an app's top-1 class for a frame (arrived at ``t``); the match if its label is known."""
        truth = self._labels.get(stamp)
        if truth is None:
            self._results[(stamp, app_id)] = (predicted, level, t)
            self._trim(self._results, self.capacity)
            return None
        return self._match(app_id, stamp, predicted, level, t)

    @property
    def pending(self) -> tuple[int, int]:
        """(unmatched results, unmatched labels) held now; each at most ``capacity``."""
        return len(self._results), len(self._labels)

    def _match(self, app_id: str, stamp: Stamp, predicted: int, level: int, t: float | None) -> Match:
        m = Match(app_id, stamp, predicted, self._labels[stamp], level, t)
        self.total[app_id] = self.total.get(app_id, 0) + 1
        self.correct[app_id] = self.correct.get(app_id, 0) + int(m.correct)
        return m

    def accuracy(self, app_id: str) -> float:
        """Top-1 accuracy of ``app_id`` over every matched frame (NaN before the first)."""
        n = self.total.get(app_id, 0)
        return self.correct.get(app_id, 0) / n if n else float("nan")
