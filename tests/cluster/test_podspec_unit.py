"""Pure parts of the test node agent (no cluster): $(VAR) expansion, fieldRef and
resourceFieldRef values, quantities, probe thresholds, argv mapping of `python` to the
project interpreter, and the mount-namespace wrapper script (paths resolved inside the root;
image dirs hidden by a volume over one of their parents are re-bound on top, outer first)."""

from __future__ import annotations

import os

import pytest

from .podspec import (
    HostEnv,
    PodConfigError,
    ProbeState,
    VolumeSet,
    container_argv,
    expand,
    field_value,
    quantity,
    resource_value,
)
from .rootfs import image_dirs, image_rebinds, mount_wrapper

HOST = HostEnv(python="/venv/bin/python", venv_bin="/venv/bin", api_port=6443, can_mount=True)
POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "a", "b": "c"}},
    "spec": {
        "nodeName": "node-1",
        "serviceAccountName": "sa",
        "containers": [
            {"name": "main", "resources": {"limits": {"memory": "128Mi", "cpu": "1500m"}}}
        ],
    },
    "status": {"podIP": "10.244.1.2", "podIPs": [{"ip": "10.244.1.2"}], "hostIP": "10.240.1.1"},
}


def test_expand_known_unknown_and_escaped() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"


def test_field_values() -> None:
    assert field_value(POD, "metadata.name") == "p"
    assert field_value(POD, "metadata.labels['app']") == "a"
    assert field_value(POD, "metadata.labels") == 'app="a"\nb="c"'
    assert field_value(POD, "status.podIP") == "10.244.1.2"
    assert field_value(POD, "spec.serviceAccountName") == "sa"
    with pytest.raises(PodConfigError, match="not supported"):
        field_value(POD, "spec.bogus")


def test_quantities_and_resource_field_refs() -> None:
    assert quantity("128Mi") == 128 * 2**20
    assert quantity("1500m") == 1.5
    assert resource_value(POD, {"resource": "limits.memory", "divisor": "1Mi"}, "main") == "128"
    assert resource_value(POD, {"resource": "limits.cpu"}, "main") == "2"  # rounded up
    with pytest.raises(PodConfigError, match="cannot parse"):
        quantity("lots")


def test_probe_thresholds() -> None:
    ps = ProbeState({"periodSeconds": 2, "failureThreshold": 2, "initialDelaySeconds": 5}, 100.0)
    assert not ps.due(104.9) and ps.due(105.0)
    assert ps.record(False, 105.0) is None
    assert ps.next_at == 107.0
    assert ps.record(False, 107.0) is False
    assert ps.record(True, 109.0) is True


def test_python_is_mapped_to_the_project_interpreter() -> None:
    c = {"name": "main", "command": ["python3", "-m", "mod"], "args": ["--x=$(A)"]}
    assert container_argv(c, {"A": "1"}, HOST) == ["/venv/bin/python", "-m", "mod", "--x=1"]
    with pytest.raises(PodConfigError, match="has no command"):
        container_argv({"name": "main", "args": ["x"]}, {}, HOST)


def test_mount_wrapper_resolves_symlinks_inside_the_root(tmp_path: object) -> None:
    vols = VolumeSet(api=None, pod=POD, root="/state/volumes")  # type: ignore[arg-type]
    c = {
        "name": "main",
        "volumeMounts": [
            {"name": "tok", "mountPath": "/var/run/secrets/x", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    argv = mount_wrapper(
        container=c, volumes=vols, argv=["cmd"], workdir="/w", rootfs="/r", host=HOST
    )
    script = argv[argv.index("-ec") + 1]
    var_run = os.path.realpath("/var/run")
    assert "mount --rbind / /r" in script
    assert f"mount --bind /state/volumes/tok /r{var_run}/secrets/x" in script
    assert f"mount -o remount,bind,ro /r{var_run}/secrets/x" in script
    assert "mount --bind /state/volumes/tmp /r/tmp" in script
    assert script.index("/r/tmp") < script.index(f"/r{var_run}/secrets/x")  # shallow first
    assert argv[-1] == "cmd"
    assert mount_wrapper(
        container={"name": "x"}, volumes=vols, argv=["cmd"], workdir="/w", rootfs="/r", host=HOST
    ) == ["cmd"]


def test_image_rebinds_only_dirs_hidden_by_a_volume_over_a_parent() -> None:
    images = ("/tmp/ci", "/tmp/ci/.venv", "/tmp/ci/runtime/pkg", "/tmp/state", "/usr", "/work")
    # /tmp hides the clone and the state dir; the clone's subdirs come back with the clone.
    assert image_rebinds(["/tmp"], images) == ["/tmp/ci", "/tmp/state"]
    # A volume exactly at an image dir is what the pod asked for; its subdirs are re-bound.
    assert image_rebinds(["/tmp/ci"], images) == ["/tmp/ci/.venv", "/tmp/ci/runtime/pkg"]
    # A volume between a re-bound dir and a subdir hides the subdir again: re-bound too.
    assert image_rebinds(["/tmp", "/tmp/ci/runtime"], images) == [
        "/tmp/ci",
        "/tmp/ci/runtime/pkg",
        "/tmp/state",
    ]
    assert image_rebinds(["/srv", "/var/run/x"], images) == []


def test_mount_wrapper_rebinds_image_dirs_over_a_tmp_volume() -> None:
    vols = VolumeSet(api=None, pod=POD, root="/st/volumes")  # type: ignore[arg-type]
    host = HostEnv(
        python="/tmp/ci/.venv/bin/python",
        venv_bin="/tmp/ci/.venv/bin",
        api_port=6443,
        can_mount=True,
        image_dirs=("/tmp/ci", "/tmp/ci/.venv", "/tmp/st", "/usr"),
    )
    c = {
        "name": "main",
        "volumeMounts": [
            {"name": "code", "mountPath": "/tmp/ci/x", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    argv = mount_wrapper(
        container=c, volumes=vols, argv=["cmd"], workdir="/w", rootfs="/tmp/st/r/main", host=host
    )
    lines = argv[argv.index("-ec") + 1].splitlines()
    r = "/tmp/st/r/main"
    order = [
        f"mount --bind /st/volumes/tmp {r}/tmp",
        f"mkdir -p {r}/tmp/ci",  # the mountpoint is created inside the emptyDir
        f"mount --rbind /tmp/ci {r}/tmp/ci",
        f"mount --bind /tmp/st {r}/tmp/st",  # holds the root itself: no submounts
        f"mount --bind /st/volumes/code {r}/tmp/ci/x",  # the volume inside the image wins
        f"mount -o remount,bind,ro {r}/tmp/ci/x",
    ]
    assert [lines.index(x) for x in order] == sorted(lines.index(x) for x in order)
    assert not any("/usr" in x or ".venv" in x for x in lines)


def test_image_dirs_come_from_the_running_interpreter(tmp_path: object) -> None:
    import sys

    dirs = image_dirs(python=sys.executable, state_dir=str(tmp_path))
    assert os.path.realpath(sys.prefix) in dirs
    assert os.path.realpath(sys.base_prefix) in dirs
    assert os.path.realpath(str(tmp_path)) in dirs
    import klambda_runtime  # the editable install's source dir of a project package

    assert os.path.realpath(os.path.dirname(klambda_runtime.__file__)) in dirs
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert os.path.realpath(repo) in dirs
