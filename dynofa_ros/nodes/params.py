"""Parameter declaration with descriptors, refused parameter sets explained, diagnostics and time helpers shared by
the nodes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, ParameterImmutableException, ParameterNotDeclaredException
from rclpy.node import Node
from rclpy.parameter import Parameter

from dynofa_ros.nodes.rejections import Rejections


def declare(node: Node, name: str, default: Any, description: str, *, read_only: bool = False,
            int_range: tuple[int, int] | None = None, float_range: tuple[float, float] | None = None,
            choices: Sequence[str] | None = None) -> Any:
    """Declare one parameter with a descriptor (range, read-only, allowed values in the text); return its value."""
    if choices:
        description = f"{description} (one of: {', '.join(choices)})"
    desc = ParameterDescriptor(description=description, read_only=read_only)
    if int_range is not None:
        desc.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
    if float_range is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float(float_range[0]),
                                                        to_value=float(float_range[1]), step=0.0)]
    try:
        return node.declare_parameter(name, default, desc).value
    except InvalidParameterTypeException as exc:
        empty = " (an empty list is not allowed)" if isinstance(default, list) else ""
        raise ValueError(f"parameter {name!r} must have the type of {default!r}{empty}: {exc}") from None


class ExplainsRefusals:
    """Node mixin (list it before the Node base): ``self.rejections`` (a :class:`Rejections`) logs why a parameter
    set was refused, once per parameter, and counts the repeats. It covers every refusal: read-only, undeclared,
    out of the declared range, wrong type, or refused by the node's own callback, whether set in the process or
    through the parameter services (``ros2 param set``), which call ``set_parameters_atomically``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rejections = Rejections(self.get_logger().warning)

    def set_parameters(self, parameter_list: list[Parameter]) -> list[SetParametersResult]:
        results = self._explained(parameter_list, super().set_parameters)
        for p, r in zip(parameter_list, results):
            if not r.successful:
                self._refused([p], r.reason)
        return results

    def set_parameters_atomically(self, parameter_list: list[Parameter]) -> SetParametersResult:
        result = self._explained(parameter_list, super().set_parameters_atomically)
        if not result.successful:
            self._refused(parameter_list, result.reason)
        return result

    def _explained(self, parameter_list: list[Parameter], setter: Callable[[list[Parameter]], Any]) -> Any:
        try:
            return setter(parameter_list)
        except (ParameterImmutableException, ParameterNotDeclaredException) as exc:  # older rclpy: read-only
            self._refused(parameter_list, str(exc))
            raise

    def _refused(self, parameter_list: list[Parameter], reason: str) -> None:
        names = ", ".join(p.name for p in parameter_list)
        values = ", ".join(f"{p.name}={p.value!r}" for p in parameter_list)
        self.rejections.reject("parameter set", names, f"{values}: {reason}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str | None:
    """An error text when ``value`` is not one of ``choices``, else None."""
    return None if value in choices else f"{name} must be one of {list(choices)}, got {value!r}"


def result(errors: list[str]) -> SetParametersResult:
    """SetParametersResult from a list of error texts (empty = accepted)."""
    return SetParametersResult(successful=not errors, reason="; ".join(errors))


def diagnostic(node: Node, name: str, level: bytes, message: str, values: dict[str, Any],
               hardware_id: str = "") -> DiagnosticArray:
    """A one-status DiagnosticArray stamped now."""
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    arr = DiagnosticArray(status=[status])
    arr.header.stamp = node.get_clock().now().to_msg()
    return arr


def stamp_s(stamp: Any) -> float:
    """builtin_interfaces/Time as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


OK, WARN, ERROR, STALE = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE
