"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``). READ-ONLY.

Power (mW), total energy since driver load (mJ, Volta and newer), SM/memory clocks (MHz),
utilisation (%), temperature and clock-event (throttle) reasons. This module never calls an NVML
setter: the GPU may be shared, and changing its clocks would change other users' work. Without the
package or the driver, the reader is simply unavailable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

# clock-event reasons that mean the GPU is held below the clock it asks for
_THROTTLE_REASONS = ("SwPowerCap", "HwSlowdown", "SwThermalSlowdown", "HwThermalSlowdown", "HwPowerBrakeSlowdown")


@dataclass(frozen=True)
class NvmlSample:
    index: int
    name: str
    power_w: float | None
    energy_j: float | None  # since driver load
    sm_clock_hz: int | None
    mem_clock_hz: int | None
    max_sm_clock_hz: int | None
    utilisation: float  # 0..1, nan when unknown
    temperature_c: float | None
    throttled: bool


class NvmlReader:
    """Reads every NVML GPU; ``available`` is False (with ``reason``) without NVML."""

    def __init__(self, module: ModuleType | None = None) -> None:
        self.available = False
        self.reason = ""
        self._nv: Any = module
        self._handles: list[Any] = []
        self.names: list[str] = []
        try:
            if self._nv is None:
                import pynvml
                self._nv = pynvml
            self._nv.nvmlInit()
            self._handles = [self._nv.nvmlDeviceGetHandleByIndex(i) for i in range(self._nv.nvmlDeviceGetCount())]
        except ImportError:
            self.reason = "nvidia-ml-py (pynvml) is not installed"
        except Exception as exc:  # pynvml raises NVMLError subclasses, e.g. LibraryNotFound
            self.reason = f"NVML unavailable: {exc}"
        else:
            self.names = [_text(self._nv.nvmlDeviceGetName(h)) for h in self._handles]
            self.available = bool(self._handles)
            self.reason = "" if self._handles else "NVML found no GPU"
        if not self.available:
            log.info("%s", self.reason)

    def _opt(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # NVMLError_NotSupported and friends: that value is unknown
            log.debug("NVML %s failed: %s", getattr(fn, "__name__", fn), exc)
            return None

    def _throttle_mask(self) -> int:
        mask = 0
        for reason in _THROTTLE_REASONS:
            mask |= getattr(self._nv, f"nvmlClocksEventReason{reason}",
                            getattr(self._nv, f"nvmlClocksThrottleReason{reason}", 0))
        return mask

    def read(self) -> list[NvmlSample]:
        """One sample per GPU (empty when unavailable)."""
        if not self.available:
            return []
        nv = self._nv
        reasons_fn = (getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
                      or nv.nvmlDeviceGetCurrentClocksThrottleReasons)
        mask = self._throttle_mask()
        samples = []
        for i, h in enumerate(self._handles):
            power_mw = self._opt(nv.nvmlDeviceGetPowerUsage, h)
            energy_mj = self._opt(nv.nvmlDeviceGetTotalEnergyConsumption, h)
            sm = self._opt(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM)
            mem = self._opt(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_MEM)
            sm_max = self._opt(nv.nvmlDeviceGetMaxClockInfo, h, nv.NVML_CLOCK_SM)
            util = self._opt(nv.nvmlDeviceGetUtilizationRates, h)
            temp = self._opt(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
            reasons = self._opt(reasons_fn, h)
            samples.append(NvmlSample(
                index=i, name=self.names[i],
                power_w=power_mw / 1000.0 if power_mw is not None else None,
                energy_j=energy_mj / 1000.0 if energy_mj is not None else None,
                sm_clock_hz=sm * 1_000_000 if sm is not None else None,
                mem_clock_hz=mem * 1_000_000 if mem is not None else None,
                max_sm_clock_hz=sm_max * 1_000_000 if sm_max is not None else None,
                utilisation=util.gpu / 100.0 if util is not None else float("nan"),
                temperature_c=float(temp) if temp is not None else None,
                throttled=bool(reasons is not None and reasons & mask),
            ))
        return samples

    def close(self) -> None:
        if self.available:
            self._opt(self._nv.nvmlShutdown)
            self.available = False


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
