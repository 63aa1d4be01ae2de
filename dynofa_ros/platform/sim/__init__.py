"""Simulated boards (Jetson Xavier NX): power, thermal and DNN latency models behind the Platform API."""

from dynofa_ros.platform.sim.board import FrameResult, SimulatedBoard
from dynofa_ros.platform.sim.clock import RealTimeClock, SimClock
from dynofa_ros.platform.sim.config import BoardConfig, BoardConfigError
from dynofa_ros.platform.sim.latency import DnnWork, frame_time, xavier_work

__all__ = ["BoardConfig", "BoardConfigError", "DnnWork", "FrameResult", "RealTimeClock", "SimClock",
           "SimulatedBoard", "frame_time", "xavier_work"]
