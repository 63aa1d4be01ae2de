"""The one interface the rest of the code uses to read and tune a board."""

from __future__ import annotations

from abc import ABC, abstractmethod

from dynofa_ros.platform.types import ApplyResult, DomainInfo, DvfsSetting, PlatformState


class Platform(ABC):
    """A board: real sysfs/NVML/RAPL backends or a simulation.

    ``simulated`` is True for every simulated board and must be carried on every output.
    """

    simulated: bool = False

    @abstractmethod
    def domains(self) -> list[DomainInfo]:
        """DVFS domains found at start-up."""

    @abstractmethod
    def read(self) -> PlatformState:
        """A snapshot of frequencies, utilisation, power, temperatures, throttling."""

    @abstractmethod
    def apply(self, settings: list[DvfsSetting]) -> ApplyResult:
        """Apply per-domain settings; refuse (with a reason) what the domain does not offer."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for boards that change nothing
        """Restore what this object changed (no-op by default)."""

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
