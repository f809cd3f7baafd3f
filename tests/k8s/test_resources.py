"""Pure builders of the operator: code ConfigMaps, Deployments of function versions.

Covers: inline/zip code to files (paths, modes, errors a user can act on), content-addressed
immutable ConfigMaps, layer merging order, Deployment shape per code source (ConfigMap volume,
URL init step, image as is), security context, resources proportional to memory, agent env
from EnvironmentSpec (gRPC address plus the lane address, or an empty lane when the operator
has none), the operator's lane setting from its environment, role -> ServiceAccount,
determinism, no replicas.
"""

from __future__ import annotations

import base64
import io
import zipfile
from typing import Any

import pytest
from klambda_operator.errors import InvalidCode
from klambda_operator.resources.code import (
    build_code_configmap,
    files_from_source,
    merge_layer_items,
)
from klambda_operator.resources.deployment import (
    DeploymentSettings,
    build_deployment,
    cpu_millis,
)
from klambda_operator.resources.version import (
    LATEST,
    Artifact,
    CodeFile,
    ResolvedLayer,
    ResolvedVersion,
)
from klambda_operator.settings import OperatorSettings
from klambda_runtime.spec import EnvironmentSpec

OWNER = {
    "apiVersion": "klambda.io/v1alpha1",
    "kind": "Function",
    "metadata": {"name": "hello", "namespace": "default", "uid": "u-1"},
}
SETTINGS = DeploymentSettings(gateway_address="klambda-gateway.klambda-system:50051")
LANE_SETTINGS = DeploymentSettings(
    gateway_address="klambda-gateway.klambda-system:50051",
    lane_address="klambda-gateway.klambda-system:50052",
)


def _zip(files: dict[str, tuple[str, int]]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, (text, mode) in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, text)
    return base64.b64encode(buf.getvalue()).decode()


def _version(**overrides: Any) -> ResolvedVersion:
    base: dict[str, Any] = {
        "namespace": "default",
        "function_name": "hello",
        "version": LATEST,
        "runtime": "python3.12",
        "handler": "app.handler",
        "memory_size": 256,
        "timeout": 3,
        "code": Artifact(config_map="hello-code-abc", files=(CodeFile("f0000.app.py", "app.py"),)),
        "environment": {"B": "2", "A": "1"},
    }
    base.update(overrides)
    return ResolvedVersion(**base)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param({"inline": {"app.py": "x=1"}}, {"app.py": (b"x=1", 0o444)}, id="inline"),
        pytest.param(
            {"inline": {"./pkg//util.py": "y", "bootstrap": "#!/bin/sh"}},
            {"pkg/util.py": (b"y", 0o444), "bootstrap": (b"#!/bin/sh", 0o555)},
            id="inline-normalised-bootstrap-executable",
        ),
        pytest.param(
            {"zipFile": _zip({"app.py": ("z", 0o644), "bin/run": ("r", 0o755)})},
            {"app.py": (b"z", 0o444), "bin/run": (b"r", 0o555)},
            id="zip-modes",
        ),
    ],
)
def test_files_from_source(source: dict[str, Any], expected: dict[str, Any]) -> None:
    assert files_from_source(source, field="spec.code") == expected


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        pytest.param({"zipFile": "not base64!"}, "not valid base64", id="bad-base64"),
        pytest.param(
            {"zipFile": base64.b64encode(b"plain").decode()}, "not a zip archive", id="not-zip"
        ),
        pytest.param({"inline": {"../etc/passwd": "x"}}, "not a relative path", id="escape"),
    ],
)
def test_files_from_source_errors_say_what_to_do(source: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidCode) as err:
        files_from_source(source, field="spec.code")
    assert needle in err.value.message
    assert err.value.message.startswith("spec.code")


def test_code_configmap_is_immutable_content_addressed_and_deterministic() -> None:
    files = {"b.py": (b"b", 0o444), "a/x.py": (b"a", 0o444), "blob": (b"\xff\x00", 0o444)}
    cm1, art1 = build_code_configmap(
        namespace="default", name_prefix="hello-code", files=files, owner=OWNER, labels={}
    )
    cm2, art2 = build_code_configmap(
        namespace="default",
        name_prefix="hello-code",
        files=dict(reversed(list(files.items()))),
        owner=OWNER,
        labels={},
    )
    assert cm1 == cm2 and art1 == art2
    assert cm1["immutable"] is True
    assert cm1["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert [f.path for f in art1.files] == ["a/x.py", "b.py", "blob"]
    assert all("/" not in f.key for f in art1.files)
    assert base64.b64decode(cm1["binaryData"][art1.files[2].key]) == b"\xff\x00"
    cm3, _ = build_code_configmap(
        namespace="default",
        name_prefix="hello-code",
        files={**files, "b.py": (b"changed", 0o444)},
        owner=OWNER,
        labels={},
    )
    assert cm3["metadata"]["name"] != cm1["metadata"]["name"]


def test_code_too_big_for_configmap() -> None:
    with pytest.raises(InvalidCode, match="url \\+ sha256"):
        build_code_configmap(
            namespace="d",
            name_prefix="p",
            files={"big": (b"x" * 1_100_000, 0o444)},
            owner=OWNER,
            labels={},
        )


def test_later_layers_win_on_the_same_path() -> None:
    first = Artifact(config_map="l1", files=(CodeFile("k1", "python/a.py"), CodeFile("k2", "x")))
    second = Artifact(config_map="l2", files=(CodeFile("k9", "python/a.py"),))
    merged = merge_layer_items([first, second])
    assert [(cm, f.path) for cm, f in merged] == [("l2", "python/a.py"), ("l1", "x")]


def _container(dep: dict[str, Any]) -> dict[str, Any]:
    return dep["spec"]["template"]["spec"]["containers"][0]


def _env(dep: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(dep)["env"]}


def test_deployment_core_shape() -> None:
    dep = build_deployment(_version(), SETTINGS, owner=OWNER)
    assert dep["metadata"]["name"] == "hello-latest"
    assert "replicas" not in dep["spec"]
    pod = dep["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = _container(dep)["securityContext"]
    assert sc == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    assert _container(dep)["command"] == ["python", "-m", "klambda_runtime.agent"]
    assert _container(dep)["resources"]["limits"]["memory"] == "256Mi"
    assert dep["spec"]["selector"]["matchLabels"] == {
        "klambda.io/function": "hello",
        "klambda.io/version": "latest",
    }


def test_agent_env_round_trips_through_environment_spec() -> None:
    version = _version()
    dep = build_deployment(version, SETTINGS, owner=OWNER)
    env = _env(dep)
    assert env["KLAMBDA_ENV_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    spec = EnvironmentSpec.from_env({**plain, "KLAMBDA_ENV_ID": "pod-1"})
    assert spec.gateway == SETTINGS.gateway_address
    assert spec.function_name == "hello" and spec.version == LATEST
    assert spec.code_dir == "/var/task" and spec.opt_dir == ""
    assert spec.environment == {"A": "1", "B": "2"}
    assert spec.revision == version.revision
    assert dep["spec"]["template"]["metadata"]["annotations"]["klambda.io/revision"] == (
        version.revision
    )


def test_pods_get_the_lane_address_and_keep_grpc_as_fallback() -> None:
    env = _env(build_deployment(_version(), LANE_SETTINGS, owner=OWNER))
    assert env["KLAMBDA_ENV_LANE"] == "klambda-gateway.klambda-system:50052"
    assert env["KLAMBDA_ENV_GATEWAY"] == "klambda-gateway.klambda-system:50051"
    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    spec = EnvironmentSpec.from_env(plain)
    assert (spec.lane, spec.gateway) == (LANE_SETTINGS.lane_address, SETTINGS.gateway_address)


def test_no_lane_address_means_grpc_only_pods() -> None:
    env = _env(build_deployment(_version(), SETTINGS, owner=OWNER))
    assert env.get("KLAMBDA_ENV_LANE", "") == ""
    assert EnvironmentSpec.from_env({k: v for k, v in env.items() if isinstance(v, str)}).lane == ""
    # the lane is part of the pod template: switching it rolls the Deployment
    with_lane = build_deployment(_version(), LANE_SETTINGS, owner=OWNER)
    assert with_lane["spec"]["template"] != build_deployment(
        _version(), SETTINGS, owner=OWNER
    )["spec"]["template"]


@pytest.mark.parametrize(
    ("env", "lane"),
    [
        pytest.param({}, "klambda-gateway.klambda-system.svc:50052", id="default"),
        pytest.param({"KLAMBDA_GATEWAY_LANE_ADDRESS": "10.0.0.7:6000"}, "10.0.0.7:6000", id="set"),
        pytest.param({"KLAMBDA_GATEWAY_LANE_ADDRESS": ""}, "", id="empty-disables"),
        pytest.param({"KLAMBDA_GATEWAY_LANE_ADDRESS": "  "}, "", id="blank-disables"),
    ],
)
def test_operator_settings_lane_address(env: dict[str, str], lane: str) -> None:
    settings = OperatorSettings.from_env(env)
    assert settings.deployment.lane_address == lane
    assert settings.deployment.gateway_address == "klambda-gateway.klambda-system.svc:50051"


@pytest.mark.parametrize(
    ("memory", "cpu"), [(128, 72), (1769, 1000), (10240, 5789), (64, 50)], ids=str
)
def test_cpu_is_proportional_to_memory(memory: int, cpu: int) -> None:
    assert cpu_millis(memory) == cpu


@pytest.mark.parametrize(
    ("code", "init_names", "image"),
    [
        pytest.param(
            Artifact(config_map="cm", files=(CodeFile("k", "app.py"),)),
            [],
            "ghcr.io/klambda/runtime-python:0.1.0",
            id="configmap",
        ),
        pytest.param(
            Artifact(url="https://example.com/c.zip", sha256="a" * 64),
            ["fetch-code"],
            "ghcr.io/klambda/runtime-python:0.1.0",
            id="url",
        ),
        pytest.param(Artifact(image="registry/x:1"), [], "registry/x:1", id="image"),
    ],
)
def test_code_sources(code: Artifact, init_names: list[str], image: str) -> None:
    dep = build_deployment(_version(code=code), SETTINGS, owner=OWNER)
    pod = dep["spec"]["template"]["spec"]
    assert [c["name"] for c in pod.get("initContainers", [])] == init_names
    assert _container(dep)["image"] == image
    volumes = {v["name"]: v for v in pod["volumes"]}
    if code.kind == "image":
        assert "code" not in volumes
    elif code.kind == "url":
        assert "emptyDir" in volumes["code"]
        args = pod["initContainers"][0]["command"]
        assert args[-6:] == ["--url", code.url, "--sha256", code.sha256, "--dest", "/var/task"]
    else:
        assert volumes["code"]["configMap"]["items"] == [
            {"key": "k", "path": "app.py", "mode": 0o444}
        ]


def test_layers_projected_under_opt_in_order() -> None:
    layers = (
        ResolvedLayer("a", "1", Artifact(config_map="a1", files=(CodeFile("k", "python/m.py"),))),
        ResolvedLayer("b", "2", Artifact(config_map="b2", files=(CodeFile("j", "python/m.py"),))),
    )
    dep = build_deployment(_version(layers=layers), SETTINGS, owner=OWNER)
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    sources = volumes["opt"]["projected"]["sources"]
    assert [s["configMap"]["name"] for s in sources] == ["b2"]
    assert _env(dep)["KLAMBDA_ENV_OPT_DIR"] == "/opt"


def test_url_layer_assembled_by_init_step_in_order() -> None:
    layers = (
        ResolvedLayer("a", "1", Artifact(config_map="a1", files=(CodeFile("k", "x.py"),))),
        ResolvedLayer("b", "1", Artifact(url="https://h/l.zip", sha256="b" * 64)),
    )
    dep = build_deployment(_version(layers=layers), SETTINGS, owner=OWNER)
    pod = dep["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert init["name"] == "fetch-layers"
    assert init["command"][3:] == [
        "--copy",
        "/klambda/layers/0",
        "--url",
        "https://h/l.zip",
        "--sha256",
        "b" * 64,
        "--dest",
        "/opt",
    ]
    mounts = {m["name"] for m in init["volumeMounts"]}
    assert mounts == {"opt", "tmp", "layer-sources"}


def test_role_gives_service_account_and_token() -> None:
    dep = build_deployment(_version(role="reader"), SETTINGS, owner=OWNER)
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "reader"
    assert pod["automountServiceAccountToken"] is True


def test_published_version_deployment_and_revision_stability() -> None:
    v1 = _version(version="1")
    dep = build_deployment(v1, SETTINGS, owner=OWNER)
    assert dep["metadata"]["name"] == "hello-v1"
    assert dep["spec"]["selector"]["matchLabels"]["klambda.io/version"] == "1"
    # The revision depends on content only, not on the version number.
    assert v1.revision == _version().revision
    assert _version(memory_size=512).revision != v1.revision
    assert build_deployment(v1, SETTINGS, owner=OWNER) == dep


def test_snapshot_round_trip() -> None:
    layers = (ResolvedLayer("a", "1", Artifact(url="https://h/l.zip", sha256="c" * 64)),)
    v = _version(version="3", layers=layers, role="r")
    again = ResolvedVersion.from_snapshot(
        v.snapshot(), namespace="default", function_name="hello", version="3"
    )
    assert again == v
