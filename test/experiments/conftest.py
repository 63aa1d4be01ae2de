"""Fixtures of the experiments' tests: the offline tests' tiny supernet, shared rather than copied."""

from __future__ import annotations

from ..offline.conftest import tiny_spec, tiny_trained  # noqa: F401  (fixtures: pytest finds them by name)
