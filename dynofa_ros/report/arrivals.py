"""Frames that never arrived, estimated from the header stamps of the frames that did (plain Python, no ROS).

A frame a subscriber never receives leaves no trace but a gap in the publisher's stamps. The publisher's frame
interval is taken as the median of the recent intervals between arriving stamps; an interval longer than
``gap_factor`` times that median held ``round(interval / median) - 1`` frames that never arrived. A silence longer
than ``pause_s`` is taken for a publisher that paused, restarted or was replaced, not for lost frames: the
subscriber sees it as a stream that stopped (the perception node's diagnostics say so after 2 s).

Limits: stamps must come from one publisher at a steady rate. A publisher that slows down is taken for one that
loses frames until half the window has seen the new rate; when more than half of the frames go missing, the
median is itself a gap and the estimate is too low; stamps that do not advance (a publisher that leaves them
zero) give no estimate.
"""

from __future__ import annotations

import statistics
import struct
from collections import deque
from dataclasses import dataclass, field

# encapsulation header (first 2 bytes) -> little endian: CDR_BE, CDR_LE, PLAIN_CDR2_BE, PLAIN_CDR2_LE, whose
# header stamp sits at bytes 4..12
LITTLE_ENDIAN = {b"\x00\x00": False, b"\x00\x01": True, b"\x00\x06": False, b"\x00\x07": True}


def serialized_stamp(data: bytes) -> float | None:
    """The header stamp [s] of a CDR-serialized message whose first field is a std_msgs/Header (sensor_msgs/Image,
    CompressedImage), read without deserializing the rest; None when ``data`` is not such a message."""
    little = LITTLE_ENDIAN.get(bytes(data[:2]))
    if little is None or len(data) < 12:
        return None
    sec, nanosec = struct.unpack_from("<iI" if little else ">iI", data, 4)
    return sec + nanosec * 1e-9


@dataclass
class ArrivalGaps:
    """Counts the frames that arrived and estimates those lost on the way from the gaps between their stamps.

    The interval is the median of the last ``window`` intervals; no gap is judged before ``min_intervals`` of
    them are known (the intervals seen until then are judged as soon as they are). A silence over ``pause_s`` [s]
    starts a new run of stamps.
    """

    window: int = 60
    gap_factor: float = 1.5
    min_intervals: int = 5
    pause_s: float = 2.0
    arrived: int = 0
    lost: int = 0
    _last: float | None = field(default=None, repr=False)
    _intervals: deque[float] = field(default_factory=deque, repr=False)
    _unjudged: list[float] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.gap_factor <= 1.0:
            raise ValueError(f"gap_factor must be > 1, got {self.gap_factor}")
        if not 1 <= self.min_intervals <= self.window:
            raise ValueError(f"need 1 <= min_intervals <= window, got {self.min_intervals} and {self.window}")
        if self.pause_s <= 0:
            raise ValueError(f"pause_s must be > 0, got {self.pause_s}")
        self._intervals = deque(self._intervals, maxlen=self.window)

    @property
    def interval_s(self) -> float | None:
        """The publisher's frame interval as estimated now (None until ``min_intervals`` are known)."""
        return statistics.median(self._intervals) if len(self._intervals) >= self.min_intervals else None

    def add(self, stamp_s: float) -> int:
        """Count one arrived frame stamped ``stamp_s``; return how many lost frames it reveals."""
        self.arrived += 1
        last, self._last = self._last, stamp_s
        if last is None or not 0 < stamp_s - last <= self.pause_s:  # a new run, or stamps that do not advance
            return 0
        self._intervals.append(stamp_s - last)
        interval = self.interval_s
        if interval is None:
            self._unjudged.append(stamp_s - last)
            return 0
        gaps, self._unjudged = [*self._unjudged, stamp_s - last], []
        missing = sum(round(gap / interval) - 1 for gap in gaps if gap > self.gap_factor * interval)
        self.lost += missing
        return missing

    def restart(self) -> None:
        """Forget the last stamp: the next frame starts a new run (after a pause the subscriber chose), so the
        time in between counts as no gap; the interval estimate is kept."""
        self._last = None
