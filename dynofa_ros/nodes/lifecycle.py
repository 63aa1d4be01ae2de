"""Managed (lifecycle) nodes that can bring themselves up, as yolo_ros and Nav2 users expect.

A subclass writes its transitions as plain methods, ``configure`` (load), ``activate`` (start work),
``deactivate`` (stop it) and ``cleanup`` (free what configure loaded), raising ValueError or OSError for a bad
configuration; :class:`ManagedNode` maps them onto the ROS 2 lifecycle and logs the reason of a failed
transition. With the ``autostart`` parameter (default true) the node configures and activates itself at the
end of its constructor, so ``ros2 run``, the launch files and the bring-up need no lifecycle manager; a failed
autostart raises ValueError, which the node's process reports as one ``cannot start`` line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from dynofa_ros.nodes import params as P

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class ManagedNode(P.ExplainsRefusals, LifecycleNode):
    """Lifecycle node with plain-method transitions and ``autostart``; see the module docstring. Refused parameter
    sets are explained (:class:`params.ExplainsRefusals`)."""

    def __init__(self, node_name: str, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.autostart = P.declare(self, "autostart", True, "configure and activate at start-up (false: wait for "
                                   "a lifecycle manager)", read_only=True)
        self.lifecycle_state = "unconfigured"  # unconfigured | inactive | active | finalized
        self.transition_error = ""
        self._quiet = False

    # -- what a subclass provides -------------------------------------------------------------------
    def configure(self) -> None:
        """Load what the node needs (files, models); raise ValueError/OSError when it cannot."""

    def activate(self) -> None:
        """Start the node's work (subscriptions, timers, threads)."""

    def deactivate(self) -> None:
        """Stop the node's work; what configure loaded stays."""

    def cleanup(self) -> None:
        """Free what configure loaded."""

    # -- start-up and teardown ----------------------------------------------------------------------
    def start(self) -> None:
        """Call at the end of the subclass constructor: configure and activate when ``autostart`` is set."""
        if not self.autostart:
            self.get_logger().info("unconfigured: waiting for a lifecycle manager (autostart is false)")
            return
        self._quiet = True  # a failed autostart is reported once, by the process, not also in the log
        try:
            for trigger in (self.trigger_configure, self.trigger_activate):
                if trigger() != SUCCESS:
                    raise ValueError(self.transition_error)
        finally:
            self._quiet = False

    def destroy_node(self) -> None:
        self._release()
        super().destroy_node()

    def _release(self) -> None:
        if self.lifecycle_state == "active":
            self.deactivate()
        if self.lifecycle_state in ("active", "inactive"):
            self.cleanup()
        self.lifecycle_state = "finalized"

    def _step(self, step: Callable[[], None], state_after: str) -> TransitionCallbackReturn:
        try:
            step()
        except (ValueError, OSError) as exc:
            self.transition_error = str(exc)
            if not self._quiet:
                self.get_logger().error(f"{step.__name__} failed: {exc}")
            return FAILURE
        self.lifecycle_state = state_after
        return SUCCESS

    # -- lifecycle callbacks ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._step(self.configure, "inactive")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        super().on_activate(state)  # lifecycle publishers on before the work starts
        result = self._step(self.activate, "active")
        if result != SUCCESS:
            super().on_deactivate(state)
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._step(self.deactivate, "inactive")
        super().on_deactivate(state)
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._step(self.cleanup, "unconfigured")

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS
