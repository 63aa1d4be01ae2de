"""Perception node over real DDS (isolated domain): stamps kept, live switching, bad frames, parameters, rejected
commands explained once per cause, unmanaged without a manager's heartbeat, the image QoS matched to the publishers,
lost frames estimated."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from dynofa_ros.msg import ClassificationResult, ManagerHeartbeat, PerformanceReport, SubnetCommand  # noqa: E402
from dynofa_ros.nodes.image_conv import array_to_image, image_to_array  # noqa: E402
from dynofa_ros.nodes.perception_node import PerceptionNode  # noqa: E402
from dynofa_ros.nodes.qos import image_qos, reliable  # noqa: E402

from .node_util import spin_until  # noqa: E402


@pytest.fixture
def system(ros_context, tiny_library):
    """(executor, perception node, tester node, received results, received reports, image publisher)."""
    node = PerceptionNode(context=ros_context, parameter_overrides=[
        Parameter("library", value=str(tiny_library)), Parameter("threads", value=1),
        Parameter("top_k", value=2), Parameter("level", value=0)])
    tester = rclpy.create_node("tester", context=ros_context)
    results: list[ClassificationResult] = []
    reports: list[PerformanceReport] = []
    tester.create_subscription(ClassificationResult, "classification", results.append, reliable(100))
    tester.create_subscription(PerformanceReport, "performance_report", reports.append, reliable(100))
    pub = tester.create_publisher(Image, "image", image_qos("reliable", 10))
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(tester)
    assert spin_until(executor, lambda: _subscribed(node, pub) and tester.count_publishers("classification") > 0)
    yield executor, node, tester, results, reports, pub
    executor.shutdown()
    node.destroy_node()
    tester.destroy_node()


def _subscribed(node: PerceptionNode, pub, qos: str = "reliable") -> bool:
    """The node's image subscription has the QoS (qos auto: matched to ``pub``) and ``pub`` reaches it."""
    return node.image_qos == qos and pub.get_subscription_count() > 0


def _image(i: int, encoding: str = "rgb8") -> Image:
    rng = np.random.default_rng(i)
    msg = array_to_image(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), encoding)
    msg.header.stamp = Time(sec=100 + i, nanosec=i)
    msg.header.frame_id = f"cam{i}"
    return msg


def _send_and_wait(executor, pub, results, msg, n_before: int) -> bool:
    pub.publish(msg)
    return spin_until(executor, lambda: len(results) > n_before, 10.0)


def test_frames_in_results_out_with_the_same_headers(system):
    executor, node, _, results, reports, pub = system
    sent = [_image(i) for i in range(6)]
    for i, msg in enumerate(sent):
        assert _send_and_wait(executor, pub, results, msg, i)
    assert spin_until(executor, lambda: len(reports) >= 6)
    assert [(r.header.stamp.sec, r.header.frame_id) for r in results] == [(m.header.stamp.sec, m.header.frame_id)
                                                                           for m in sent]
    assert [r.header.stamp.sec for r in reports] == [m.header.stamp.sec for m in sent]
    r = results[0]
    assert len(r.class_ids) == 2 and r.scores[0] >= r.scores[1] and r.labels[0] in node.net.spec.class_names
    assert r.app_id == "app0" and r.level == 0 and r.latency > 0
    assert reports[-1].frames_processed == 6 and reports[-1].level_name == "L0"
    assert abs(reports[-1].expected_accuracy - 0.5) < 1e-6


def test_subnet_command_switches_at_a_frame_boundary_without_losing_frames(system):
    executor, node, tester, results, _, pub = system
    cmd_pub = tester.create_publisher(SubnetCommand, "subnet_command", reliable())
    assert spin_until(executor, lambda: cmd_pub.get_subscription_count() > 0)
    for i in range(4):
        assert _send_and_wait(executor, pub, results, _image(i), i)
    cmd_pub.publish(SubnetCommand(app_id="other_app", level=1, reason="not for us"))
    cmd_pub.publish(SubnetCommand(app_id="app0", level=1, reason="test switch"))
    assert spin_until(executor, lambda: node.net.requested_index == 1)
    for i in range(4, 8):
        assert _send_and_wait(executor, pub, results, _image(i), i)
    assert [r.header.stamp.sec for r in results] == [100 + i for i in range(8)]  # no frame lost
    assert [r.level for r in results] == [0] * 4 + [1] * 4
    assert node.frames_dropped == 0 and node.get_parameter("level").value == 1


def test_rejected_commands_are_explained_once_per_cause(system):
    executor, node, tester, results, _, pub = system
    logged: list[str] = []
    node.rejections.warn = logged.append
    cmd_pub = tester.create_publisher(SubnetCommand, "subnet_command", reliable())
    beat_pub = tester.create_publisher(ManagerHeartbeat, "manager_heartbeat", reliable())
    assert spin_until(executor, lambda: cmd_pub.get_subscription_count() > 0 and beat_pub.get_subscription_count() > 0)
    beat_pub.publish(ManagerHeartbeat(app_ids=["app0", "app2"], period=0.5))
    assert spin_until(executor, lambda: node._manager_apps == {"app0", "app2"})
    for app_id, level in (("app0", 7), ("app0", 9), ("", 1), (" ", 1), ("ghost", 1), ("ghost", 0), ("app2", 1)):
        cmd_pub.publish(SubnetCommand(app_id=app_id, level=level, reason="test"))
    cmd_pub.publish(SubnetCommand(app_id="app0", level=1, reason="valid, after the others"))
    assert spin_until(executor, lambda: node.net.requested_index == 1)
    assert len(logged) == 3  # level out of range, empty app id, unknown app 'ghost'; app2's command is not ours
    assert {cause: n for (kind, cause), n in node.rejections.counts.items() if kind == "SubnetCommand"} == {
        "level outside 0..1": 2, "empty app_id": 2, "unknown app 'ghost'": 2}
    assert _send_and_wait(executor, pub, results, _image(0), 0)
    assert results[-1].level == 1


def test_bad_frames_are_logged_and_skipped(system, capfd):
    executor, node, _, results, _, pub = system
    wrong_encoding = _image(1)
    wrong_encoding.encoding = "yuv422"
    short_data = _image(2)
    short_data.height = 40  # data holds 24 rows
    empty = Image(encoding="rgb8")
    empty.header.stamp = Time(sec=3)
    for n, msg in enumerate((wrong_encoding, short_data, empty), start=1):
        pub.publish(msg)
        assert spin_until(executor, lambda n=n: node.frames_bad == n, 10.0)
    assert "skipped bad frame" in capfd.readouterr().err
    assert _send_and_wait(executor, pub, results, _image(9), 0)  # still alive
    assert [r.header.stamp.sec for r in results] == [109]


def test_level_parameter_is_live_and_validated(system):
    executor, node, _, results, _, pub = system
    logged: list[str] = []
    node.rejections.warn = logged.append
    assert not node.set_parameters([Parameter("level", value=5)])[0].successful
    assert not node.set_parameters([Parameter("level", value=300)])[0].successful  # outside the declared range
    assert not node.set_parameters([Parameter("top_k", value=0)])[0].successful
    assert node.set_parameters([Parameter("level", value=1)])[0].successful
    assert _send_and_wait(executor, pub, results, _image(0), 0)
    assert results[-1].level == 1
    try:  # read-only: refused (older rclpy raises, newer returns an unsuccessful result)
        refused = not node.set_parameters([Parameter("library", value="/elsewhere.json")])[0].successful
    except rclpy.exceptions.ParameterImmutableException:
        refused = True
    assert refused and node.get_parameter("library").value != "/elsewhere.json"
    assert len(logged) == 3  # each refused parameter says why once
    assert {cause: n for (kind, cause), n in node.rejections.counts.items() if kind == "parameter set"} == {
        "level": 2, "top_k": 1, "library": 1}


def test_without_a_manager_the_app_runs_unmanaged_until_one_speaks(ros_context, tiny_library):
    from diagnostic_msgs.msg import DiagnosticArray

    node = PerceptionNode(context=ros_context, parameter_overrides=[
        Parameter("library", value=str(tiny_library)), Parameter("threads", value=1),
        Parameter("manager_timeout_s", value=0.3), Parameter("unmanaged_level", value=0)])
    tester = rclpy.create_node("tester", context=ros_context)
    results: list[ClassificationResult] = []
    reports: list[PerformanceReport] = []
    diags: list[DiagnosticArray] = []
    tester.create_subscription(ClassificationResult, "classification", results.append, reliable(100))
    tester.create_subscription(PerformanceReport, "performance_report", reports.append, reliable(100))
    tester.create_subscription(DiagnosticArray, "/diagnostics", diags.append, reliable())
    pub = tester.create_publisher(Image, "image", image_qos("reliable", 10))
    beat_pub = tester.create_publisher(ManagerHeartbeat, "manager_heartbeat", reliable())
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(tester)

    def status():
        s = diags[-1].status[0]
        return s.level, s.message, {kv.key: kv.value for kv in s.values}

    try:
        assert node.get_parameter("level").value == 1  # the most accurate level at start-up
        assert spin_until(executor, lambda: not node.manager_watch.managed)  # no manager at all
        assert spin_until(executor, lambda: diags and status()[2]["managed"] == "False")
        level, message, _ = status()
        assert level == diags[-1].status[0].WARN and "unmanaged" in message
        assert spin_until(executor, lambda: _subscribed(node, pub) and beat_pub.get_subscription_count() > 0)
        assert _send_and_wait(executor, pub, results, _image(0), 0)
        assert spin_until(executor, lambda: reports)
        assert reports[-1].unmanaged and reports[-1].level == 0  # fell back to unmanaged_level
        beat_pub.publish(ManagerHeartbeat(app_ids=["other_app"], period=0.1))  # a manager of other apps only
        assert spin_until(executor, lambda: node._manager_apps == {"other_app"})
        assert not node.manager_watch.managed
        tester.create_timer(0.1, lambda: beat_pub.publish(ManagerHeartbeat(app_ids=["app0"], period=0.1)))  # a manager
        assert spin_until(executor, lambda: node.manager_watch.managed)
        assert _send_and_wait(executor, pub, results, _image(1), 1)
        assert spin_until(executor, lambda: len(reports) == 2)
        assert not reports[-1].unmanaged
        n = len(diags)
        assert spin_until(executor, lambda: len(diags) > n)
        assert status()[2]["managed"] == "True" and "unmanaged" not in status()[1]
    finally:
        executor.shutdown()
        node.destroy_node()
        tester.destroy_node()


def test_annotated_image_and_diagnostics_are_published(system):
    from diagnostic_msgs.msg import DiagnosticArray

    executor, node, tester, results, _, pub = system
    annotated: list[Image] = []
    diags: list[DiagnosticArray] = []
    tester.create_subscription(Image, "image/annotated", annotated.append, image_qos("sensor_data"))
    tester.create_subscription(DiagnosticArray, "/diagnostics", diags.append, reliable())
    # the node refreshes its subscriber count with the 1 Hz diagnostics, not per frame
    assert spin_until(executor, lambda: node._annotated_subscribers > 0, 5.0)
    assert _send_and_wait(executor, pub, results, _image(4), 0)
    assert spin_until(executor, lambda: annotated and diags, 5.0)
    img = annotated[-1]
    assert img.encoding == "bgr8" and img.width >= 320 and img.header.stamp.sec == 104
    values = {kv.key: kv.value for kv in diags[-1].status[0].values}
    assert {"frame_rate_hz", "latency_ms", "level", "frames_dropped", "frames_lost"} <= set(values)
    assert values["image_qos"] == "reliable"


def test_frames_missing_from_the_stamps_are_reported_lost(system):
    executor, node, _, results, reports, pub = system
    sent = [i for i in range(16) if i not in (8, 9, 12)]  # 20 Hz stamps; three frames never sent
    for n, i in enumerate(sent):
        msg = _image(i)
        msg.header.stamp = Time(sec=200, nanosec=i * 50_000_000)
        assert _send_and_wait(executor, pub, results, msg, n)
    assert spin_until(executor, lambda: len(reports) == len(sent))
    assert node.arrivals.lost == 3 and reports[-1].frames_lost == 3 and reports[-1].frames_dropped == 0


def test_image_qos_follows_the_publishers(system):
    executor, node, tester, results, _, reliable_pub = system
    assert node.qos == "auto" and node.image_qos == "reliable"  # the fixture's publisher is reliable
    tester.destroy_publisher(reliable_pub)
    best_effort = tester.create_publisher(Image, "image", image_qos("best_effort", 1))
    assert spin_until(executor, lambda: _subscribed(node, best_effort, "sensor_data"), 10.0)
    assert _send_and_wait(executor, best_effort, results, _image(0), 0)
    tester.destroy_publisher(best_effort)
    spin_until(executor, lambda: False, 1.5)
    assert node.image_qos == "sensor_data"  # no publisher left: kept what the last one called for


def test_a_frame_arriving_while_the_worker_is_busy_is_prepared_beside_it(system):
    """One frame at a time: the worker prepares it; a frame that arrives during a forward pass is prepared in the
    receiving thread, and classifies as it would alone."""
    executor, node, _, results, _, pub = system
    net, threads = node.net, []
    prepare, classify_prepared = net.prepare, net.classify_prepared
    alone = net.classify(image_to_array(_image(2)), "rgb8", 2)

    def spy_prepare(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return prepare(*args, **kwargs)

    def slow_classify(*args, **kwargs):
        time.sleep(0.3)  # a long forward pass: the next frame arrives during it
        return classify_prepared(*args, **kwargs)

    net.prepare, net.classify_prepared = spy_prepare, slow_classify
    try:
        pub.publish(_image(1))
        assert spin_until(executor, lambda: node._busy, 5.0)
        pub.publish(_image(2))
        assert spin_until(executor, lambda: len(results) == 2, 10.0)
    finally:
        net.prepare, net.classify_prepared = prepare, classify_prepared
    worker = node._worker.name
    assert threads[0] == worker and threads[1] != worker, threads
    assert (results[1].header.stamp.sec, list(results[1].class_ids)) == (102, list(alone.class_ids))
    assert np.allclose(results[1].scores, alone.scores, atol=1e-5)


@pytest.mark.parametrize("stage", ["prepare", "classify_prepared"])  # on receipt, or in the inference worker
def test_node_survives_a_failing_frame_and_reports_error(system, capfd, stage):
    from diagnostic_msgs.msg import DiagnosticArray

    executor, node, tester, results, _, pub = system
    diags: list[DiagnosticArray] = []
    tester.create_subscription(DiagnosticArray, "/diagnostics", diags.append, reliable())
    method = getattr(node.net, stage)

    def fail_once(*args, **kwargs):
        setattr(node.net, stage, method)
        raise RuntimeError("CUDA out of memory (injected)")

    setattr(node.net, stage, fail_once)
    pub.publish(_image(1))
    assert spin_until(executor, lambda: node.frames_failed == 1, 10.0)
    assert spin_until(executor, lambda: any(d.status[0].level == d.status[0].ERROR for d in diags), 5.0)
    status = next(d.status[0] for d in diags if d.status[0].level == d.status[0].ERROR)
    assert "RuntimeError: CUDA out of memory (injected)" in status.message
    assert "frame failed, skipped" in capfd.readouterr().err
    assert node._worker.is_alive()
    assert _send_and_wait(executor, pub, results, _image(2), 0)  # the next frame is classified
    assert [r.header.stamp.sec for r in results] == [102] and node.frames_processed == 1


def test_compressed_input_from_the_camera_node(ros_context, tiny_library, tmp_path):
    import cv2

    from dynofa_ros.nodes.camera_node import CameraNode

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        cv2.imwrite(str(tmp_path / cls / "0.png"), np.full((32, 32, 3), 90 if cls == "cat" else 200, np.uint8))
    camera = CameraNode(context=ros_context, parameter_overrides=[
        Parameter("source", value="folder"), Parameter("path", value=str(tmp_path)),
        Parameter("encoding", value="jpeg"), Parameter("rate_hz", value=20.0), Parameter("width", value=64),
        Parameter("height", value=48)])
    node = PerceptionNode(context=ros_context, parameter_overrides=[
        Parameter("library", value=str(tiny_library)), Parameter("input_transport", value="compressed")])
    tester = rclpy.create_node("tester", context=ros_context)
    results: list[ClassificationResult] = []
    labels: list[ClassificationResult] = []
    tester.create_subscription(ClassificationResult, "classification", results.append, reliable(100))
    tester.create_subscription(ClassificationResult, "image/label", labels.append, reliable(100))
    executor = SingleThreadedExecutor(context=ros_context)
    for n in (camera, node, tester):
        executor.add_node(n)
    try:
        def stamps(msgs):
            return {(m.header.stamp.sec, m.header.stamp.nanosec): m.class_ids[0] for m in msgs}

        # every result carries the stamp of a published frame (its label has the same header)
        assert spin_until(executor, lambda: len(results) >= 3 and set(stamps(results)) <= set(stamps(labels)), 20.0)
        assert set(stamps(labels).values()) <= {0, 1} and node.frames_bad == 0
    finally:
        executor.shutdown()
        for n in (camera, node, tester):
            n.destroy_node()


def _subscribed_topics(node) -> set[str]:
    return {s.topic_name for s in node.subscriptions}


def test_lifecycle_configure_activate_deactivate_cleanup(ros_context, tiny_library):
    from rclpy.lifecycle import TransitionCallbackReturn

    node = PerceptionNode(context=ros_context, parameter_overrides=[
        Parameter("library", value=str(tiny_library)), Parameter("threads", value=1),
        Parameter("autostart", value=False)])
    tester = rclpy.create_node("tester", context=ros_context)
    results: list[ClassificationResult] = []
    tester.create_subscription(ClassificationResult, "classification", results.append, reliable(100))
    pub = tester.create_publisher(Image, "image", image_qos("reliable", 10))
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(tester)
    try:
        assert node.lifecycle_state == "unconfigured" and node.net is None
        assert "/image" not in _subscribed_topics(node)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.lifecycle_state == "inactive" and len(node.net.levels) == 2
        assert node.get_parameter("level").value == 1  # -1 at start-up: the most accurate level
        assert "/image" not in _subscribed_topics(node)
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert "/image" in _subscribed_topics(node) and node._worker.is_alive()
        assert spin_until(executor, lambda: _subscribed(node, pub))
        assert _send_and_wait(executor, pub, results, _image(0), 0)
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert "/image" not in _subscribed_topics(node) and node._worker is None
        pub.publish(_image(1))
        assert not spin_until(executor, lambda: len(results) > 1, 1.0)  # inactive: no inference
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.lifecycle_state == "unconfigured" and node.net is None
    finally:
        executor.shutdown()
        node.destroy_node()
        tester.destroy_node()


def test_a_bad_library_fails_configure_with_its_reason(ros_context, tmp_path, capfd):
    from rclpy.lifecycle import TransitionCallbackReturn

    missing = str(tmp_path / "missing" / "library.json")
    node = PerceptionNode(context=ros_context, parameter_overrides=[
        Parameter("library", value=missing), Parameter("autostart", value=False)])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.lifecycle_state == "unconfigured" and missing in node.transition_error
        assert "configure failed" in capfd.readouterr().err
    finally:
        node.destroy_node()
    with pytest.raises(ValueError, match="missing"):  # autostart: one error for the process to report
        PerceptionNode(context=ros_context, parameter_overrides=[Parameter("library", value=missing)])


def test_camera_lifecycle_and_a_missing_dataset(ros_context, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn

    from dynofa_ros.nodes.camera_node import CameraNode

    with pytest.raises(ValueError, match="dataset not found"):
        CameraNode(context=ros_context, parameter_overrides=[Parameter("path", value=str(tmp_path / "nope.tgz"))])
    camera = CameraNode(context=ros_context, parameter_overrides=[
        Parameter("rate_hz", value=50.0), Parameter("autostart", value=False)])
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(camera)
    try:
        assert camera.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert not spin_until(executor, lambda: camera.published > 0, 0.3)
        assert camera.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert spin_until(executor, lambda: camera.published >= 5, 10.0)
        assert camera.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        paused_at = camera.published
        spin_until(executor, lambda: False, 0.3)
        assert camera.published == paused_at
        assert camera.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        executor.shutdown()
        camera.destroy_node()


def test_camera_sample_frame_is_the_next_frame_and_is_still_published(ros_context, tmp_path):
    import cv2

    from dynofa_ros.nodes.camera_node import CameraNode

    for cls, value in (("a", 40), ("b", 160)):
        (tmp_path / cls).mkdir()
        cv2.imwrite(str(tmp_path / cls / "0.png"), np.full((24, 24, 3), value, np.uint8))
    camera = CameraNode(context=ros_context, parameter_overrides=[
        Parameter("source", value="folder"), Parameter("path", value=str(tmp_path)), Parameter("width", value=40),
        Parameter("autostart", value=False)])
    with pytest.raises(ValueError, match="not configured"):
        camera.sample_frame()
    camera.trigger_configure()
    published: list[np.ndarray] = []
    camera.publish_frame = lambda rgb, label: published.append(rgb)
    try:
        sample = camera.sample_frame()
        camera._tick()
        camera._tick()
        assert sample.shape == (24, 40, 3)
        assert len(published) == 2 and np.array_equal(published[0], sample)
        assert not np.array_equal(published[1], sample)
    finally:
        camera.destroy_node()
