"""The lane (klambda_proto.lane): the environment stream's messages as length-prefixed
frames over a Unix or TCP socket. Framing as pure functions; then real platforms whose
environments hold their stream on the lane (Unix and TCP), on gRPC when the lane is
disabled, and a lane port that hangs up on anything that is not a lane client."""

from __future__ import annotations

import json
import socket
import struct
import time

import pytest
from klambda_proto import environment_pb2 as pb
from klambda_proto.lane import PREFACE, FrameReader, LaneProtocolError, frame

from .harness import Harness

APP = """
STATE = {"calls": 0}
def handler(event, context):
    STATE["calls"] += 1
    return {"calls": STATE["calls"], "echo": event}
"""


# ------------------------------------------------------------------ pure framing
def test_frame_is_a_grpc_length_prefixed_message() -> None:
    msg = pb.AgentMessage(draining=pb.Draining()).SerializeToString()
    assert frame(msg) == b"\x00" + struct.pack(">I", len(msg)) + msg
    assert frame(b"") == b"\x00\x00\x00\x00\x00"


def test_reader_reassembles_frames_split_anywhere() -> None:
    messages = [b"a" * 3, b"", b"b" * 70_000, b"c"]
    wire = PREFACE + b"".join(frame(m) for m in messages)
    for step in (1, 2, 7, 4096, len(wire)):
        reader = FrameReader(preface=True)
        out: list[bytes] = []
        for i in range(0, len(wire), step):
            out += reader.feed(wire[i:i + step])
        assert out == messages, step


def test_reader_rejects_what_is_not_a_lane() -> None:
    with pytest.raises(LaneProtocolError, match="preface"):
        FrameReader(preface=True).feed(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(LaneProtocolError, match="preface"):
        FrameReader(preface=True).feed(b"PRI * HTTP/2.0")  # a gRPC client on the wrong port
    with pytest.raises(LaneProtocolError, match="compressed"):
        FrameReader().feed(b"\x01\x00\x00\x00\x01x")
    with pytest.raises(LaneProtocolError, match="over the limit"):
        FrameReader().feed(b"\x00\xff\xff\xff\xff")
    assert FrameReader(preface=True).feed(PREFACE[:5]) == []  # a prefix is fine so far


# ------------------------------------------------------------------ real platforms
def _transport_kinds(h: Harness) -> set[str]:
    def kinds() -> set[str]:
        assert h.platform is not None
        return {type(env.transport).__name__
                for env in h.platform.dispatcher._by_id.values() if env.transport is not None}
    return h.call(kinds)


def _invoke_twice(h: Harness) -> None:
    h.call(lambda: h.registry.add_function("lanefn", APP))
    client = h.client()
    for n in (1, 2):
        r = client.invoke(FunctionName="lanefn", Payload=json.dumps({"n": n}))
        assert "FunctionError" not in r
        assert json.loads(r["Payload"].read()) == {"calls": n, "echo": {"n": n}}


def test_agent_processes_use_the_unix_lane(make_platform) -> None:  # type: ignore[no-untyped-def]
    h = make_platform(embedded_environments=False)
    assert h.platform.lane_address.startswith("unix:@klambda-lane-")
    _invoke_twice(h)
    assert _transport_kinds(h) == {"LaneTransport"}


def test_tcp_lane(make_platform) -> None:  # type: ignore[no-untyped-def]
    h = make_platform(lane_host="127.0.0.1", embedded_environments=False)
    host, _, port = h.platform.lane_address.rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    _invoke_twice(h)
    assert _transport_kinds(h) == {"LaneTransport"}


def test_lane_disabled_means_grpc(make_platform) -> None:  # type: ignore[no-untyped-def]
    h = make_platform(lane_enabled=False, embedded_environments=False)
    assert h.platform.lane_address == ""
    _invoke_twice(h)
    assert _transport_kinds(h) == {"GrpcTransport"}


def test_lane_port_hangs_up_on_strangers(make_platform) -> None:  # type: ignore[no-untyped-def]
    h = make_platform(lane_host="127.0.0.1")
    port = int(h.platform.lane_address.rpartition(":")[2])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100) == b""  # closed, no answer
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        # a lane client whose first message is not Register is hung up on too
        s.sendall(PREFACE + frame(pb.AgentMessage(ready=pb.Ready()).SerializeToString()))
        assert s.recv(100) == b""
    _invoke_twice(h)  # the platform is unharmed


def test_unknown_environment_on_the_lane_is_hung_up_on(make_platform) -> None:  # type: ignore[no-untyped-def]
    h = make_platform(lane_host="127.0.0.1")
    port = int(h.platform.lane_address.rpartition(":")[2])
    register = pb.AgentMessage(register=pb.Register(
        namespace="default", function_name="nobody", version="$LATEST", environment_id="x"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(PREFACE + frame(register.SerializeToString()))
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - t0 < 5


def test_metrics_count_streams_by_transport(make_platform) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    for settings, expected in (
            ({}, 'klambda_environment_streams{transport="embedded"} 1.0'),
            ({"embedded_environments": False},
             'klambda_environment_streams{transport="lane"} 1.0'),
            ({"embedded_environments": False, "lane_enabled": False},
             'klambda_environment_streams{transport="grpc"} 1.0')):
        h = make_platform(**settings)
        _invoke_twice(h)
        text = urllib.request.urlopen(h.endpoint + "/metrics", timeout=10).read().decode()
        assert expected in text, [l for l in text.splitlines() if "streams" in l]
