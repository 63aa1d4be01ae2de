"""MCAP recording: every message type we publish reads back with mcap-ros2-support's decoder."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")
from mcap.reader import make_reader  # noqa: E402
from mcap_ros2.decoder import DecoderFactory  # noqa: E402

from dynofa_ros.nodes.image_conv import array_to_image  # noqa: E402
from dynofa_ros.nodes.recording import McapRecorder, msg_definition  # noqa: E402

from .interfaces_util import INTERFACES, filled, msg_class  # noqa: E402


def test_recorded_messages_decode_to_the_same_values(tmp_path):
    import numpy as np

    path = tmp_path / "run.mcap"
    rec = McapRecorder(path)
    sent = {f"/{name}": filled(msg_class(name)) for name in INTERFACES}
    for i, (topic, msg) in enumerate(sent.items()):
        rec.write(topic, msg, 1_000 + i)
    image = array_to_image(np.arange(24, dtype=np.uint8).reshape(2, 4, 3), "rgb8")
    rec.write("/image", image, 5_000)
    rec.close()
    seen = {}
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            assert schema.encoding == "ros2msg" and channel.message_encoding == "cdr"
            seen[channel.topic] = (schema.name, decoded, message.log_time)
    assert set(seen) == set(sent) | {"/image"}
    name, report, _ = seen["/PerformanceReport"]
    assert name == "dynofa_ros/msg/PerformanceReport"
    assert report.app_id == sent["/PerformanceReport"].app_id
    assert report.frames_dropped == sent["/PerformanceReport"].frames_dropped
    state = seen["/PlatformState"][1]
    assert [d.name for d in state.domains] == [d.name for d in sent["/PlatformState"].domains]
    assert bytes(seen["/image"][1].data) == bytes(image.data) and seen["/image"][2] == 5_000


def test_definitions_include_nested_types():
    text = msg_definition("dynofa_ros/msg/PlatformState")
    assert "MSG: dynofa_ros/DomainState" in text and "MSG: std_msgs/Header" in text
