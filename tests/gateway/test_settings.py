"""Settings from KLAMBDA_* variables (types, defaults, overrides, readable errors) and the
local composition's manifest discovery (files, directories, missing paths)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from klambda_gateway.local import LocalError, manifest_files
from klambda_gateway.settings import GatewaySettings, LocalSettings


def test_defaults() -> None:
    s = GatewaySettings.from_env({})
    # the default ./.klambda, made absolute (environments are forked with another cwd)
    assert (s.host, s.port, s.state_dir) == ("127.0.0.1", 9000, os.path.abspath(".klambda"))
    assert (s.queue_timeout_seconds, s.keep_warm_seconds) == (15.0, 60.0)
    assert (s.account_concurrency, s.unreserved_floor) == (1000, 100)
    assert s.async_payload_limit == 1_048_576
    assert LocalSettings is GatewaySettings


def test_from_env_types_and_overrides() -> None:
    s = GatewaySettings.from_env({"KLAMBDA_PORT": "9100", "KLAMBDA_KEEP_WARM_SECONDS": "2.5",
                                  "KLAMBDA_STATE_DIR": "/tmp/x", "KLAMBDA_HOST": "0.0.0.0"},
                                 port=9200)
    assert (s.port, s.keep_warm_seconds, s.state_dir, s.host) == (9200, 2.5, "/tmp/x", "0.0.0.0")
    assert s.async_db_path == Path("/tmp/x/async-events.sqlite")
    assert s.logs_dir == Path("/tmp/x/logs")


def test_from_env_error_names_the_variable() -> None:
    with pytest.raises(ValueError, match="KLAMBDA_QUEUE_TIMEOUT_SECONDS='soon'"):
        GatewaySettings.from_env({"KLAMBDA_QUEUE_TIMEOUT_SECONDS": "soon"})


def test_manifest_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text("x")
    (tmp_path / "sub" / "notes.txt").write_text("x")
    single = tmp_path / "a.yaml"
    assert manifest_files([str(tmp_path)]) == [tmp_path / "a.yaml", tmp_path / "sub" / "b.yml"]
    assert manifest_files([str(single)]) == [single]
    with pytest.raises(LocalError, match="does not exist"):
        manifest_files([str(tmp_path / "missing.yaml")])


def test_boolean_settings() -> None:
    assert GatewaySettings().lane_enabled and GatewaySettings().fast_http
    for raw, value in (("false", False), ("0", False), ("off", False), ("TRUE", True),
                       ("1", True), ("yes", True)):
        s = GatewaySettings.from_env({"KLAMBDA_LANE_ENABLED": raw, "KLAMBDA_FAST_HTTP": raw})
        assert s.lane_enabled is value and s.fast_http is value, raw
    with pytest.raises(ValueError, match="KLAMBDA_LANE_ENABLED='maybe' is not a valid bool"):
        GatewaySettings.from_env({"KLAMBDA_LANE_ENABLED": "maybe"})
