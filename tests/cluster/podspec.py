"""Turning a pod spec into local-process ingredients: environment, volumes, argv, probes.

Used by the test node agent (tests/cluster/node_agent.py). Test infrastructure only.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from .kubeapi import ApiError, KubeClient

JSON = dict[str, Any]
SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")
_PYTHON_NAMES = re.compile(r"^python(3(\.\d+)?)?$")


class PodConfigError(Exception):
    """The pod cannot be started as specified (missing ConfigMap, unsupported volume, ...)."""


@dataclass(frozen=True)
class HostEnv:
    """Facts about the machine a node agent runs pods on."""

    python: str  # interpreter that `python`/`python3` map to
    venv_bin: str  # put first on PATH
    api_port: int  # KUBERNETES_SERVICE_HOST=127.0.0.1, KUBERNETES_SERVICE_PORT=api_port
    can_mount: bool  # root + unshare: volumes appear at their mountPath
    # directories the emulated image consists of (rootfs.image_dirs): kept visible in the
    # container root even when a volume is mounted over one of their parents
    image_dirs: tuple[str, ...] = ()


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: unknown references stay as written, $$ escapes."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, value)


def field_value(pod: JSON, path: str) -> str:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs", [])),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs", [])),
    }
    if path == "metadata.labels":
        return "\n".join(f'{k}="{v}"' for k, v in sorted(meta.get("labels", {}).items()))
    if path == "metadata.annotations":
        return "\n".join(f'{k}="{v}"' for k, v in sorted(meta.get("annotations", {}).items()))
    if path not in simple:
        raise PodConfigError(f"fieldRef {path!r} is not supported by the test node agent")
    return str(simple[path] or "")


_SUFFIX = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "m": 10**-3,
    "": 1,
}


def quantity(q: str) -> float:
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    if not m or m.group(2) not in _SUFFIX:
        raise PodConfigError(f"cannot parse quantity {q!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def resource_value(pod: JSON, ref: JSON, default_container: str | None) -> str:
    cname = ref.get("containerName") or default_container
    c = next((c for c in pod["spec"]["containers"] if c["name"] == cname), None)
    if c is None:
        raise PodConfigError(f"resourceFieldRef names unknown container {cname!r}")
    kind, _, res = ref["resource"].partition(".")
    raw = c.get("resources", {}).get(kind, {}).get(res)
    if raw is None:  # kubelet falls back to node allocatable; ours is effectively unbounded
        raw = {"cpu": "64", "memory": "256Gi", "ephemeral-storage": "100Gi"}.get(res, "0")
    value = quantity(raw) / quantity(ref.get("divisor", "1"))
    return str(max(1, int(-(-value // 1))) if res == "cpu" else int(-(-value // 1)))


def _get_object(api: KubeClient, ns: str, kind: str, name: str, optional: bool) -> JSON | None:
    try:
        return api.get(f"/api/v1/namespaces/{ns}/{kind}/{name}")
    except ApiError as e:
        if e.status == 404 and optional:
            return None
        if e.status == 404:
            raise PodConfigError(f"{kind[:-1]} {ns}/{name} not found") from None
        raise


def _object_data(obj: JSON | None, kind: str) -> dict[str, bytes]:
    if obj is None:
        return {}
    if kind == "secrets":
        return {k: base64.b64decode(v) for k, v in obj.get("data", {}).items()}
    data = {k: v.encode() for k, v in obj.get("data", {}).items()}
    data.update({k: base64.b64decode(v) for k, v in obj.get("binaryData", {}).items()})
    return data


def container_env(api: KubeClient, pod: JSON, container: JSON, host: HostEnv) -> dict[str, str]:
    """The process environment of a container (base environment + envFrom + env)."""
    ns = pod["metadata"]["namespace"]
    port = host.api_port
    env: dict[str, str] = {
        "PATH": host.venv_bin + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "HOSTNAME": pod["metadata"]["name"],
        "VIRTUAL_ENV": os.path.dirname(host.venv_bin),
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
        "KUBERNETES_PORT": f"tcp://127.0.0.1:{port}",
        "KUBERNETES_PORT_443_TCP": f"tcp://127.0.0.1:{port}",
        "KUBERNETES_PORT_443_TCP_ADDR": "127.0.0.1",
        "KUBERNETES_PORT_443_TCP_PORT": str(port),
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
    }
    for k in ("LANG", "LC_ALL", "TZ", "TMPDIR"):
        if k in os.environ:
            env[k] = os.environ[k]
    for src in container.get("envFrom", []):
        prefix = src.get("prefix", "")
        for kind, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            if key in src:
                ref = src[key]
                obj = _get_object(api, ns, kind, ref["name"], ref.get("optional", False))
                for k, v in _object_data(obj, kind).items():
                    env[prefix + k] = v.decode(errors="replace")
    for e in container.get("env", []):
        name = e["name"]
        if "value" in e:
            env[name] = expand(e["value"], env)
            continue
        vf = e.get("valueFrom")
        if vf is None:
            env[name] = ""
        elif "fieldRef" in vf:
            env[name] = field_value(pod, vf["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in vf:
            env[name] = resource_value(pod, vf["resourceFieldRef"], container["name"])
        else:
            kind, key = (
                ("configmaps", "configMapKeyRef")
                if "configMapKeyRef" in vf
                else ("secrets", "secretKeyRef")
            )
            ref = vf[key]
            optional = ref.get("optional", False)
            data = _object_data(_get_object(api, ns, kind, ref["name"], optional), kind)
            if ref["key"] in data:
                env[name] = data[ref["key"]].decode(errors="replace")
            elif not optional:
                raise PodConfigError(
                    f"key {ref['key']!r} not found in {kind[:-1]} "
                    f"{ns}/{ref['name']} (env {name} of {container['name']})"
                )
    return env


def container_argv(container: JSON, env: dict[str, str], host: HostEnv) -> list[str]:
    command = list(container.get("command") or [])
    if not command:
        raise PodConfigError(
            f"container {container['name']!r} has no command: the test node agent does not "
            "pull images, so it cannot know the image's entrypoint; set spec.containers[].command"
        )
    argv = [expand(a, env) for a in command + list(container.get("args") or [])]
    if _PYTHON_NAMES.match(argv[0]):
        argv[0] = host.python
    return argv


# ---- volumes -------------------------------------------------------------------------------


def _write_file(path: str, data: bytes, mode: int) -> bool:
    """Atomically (re)write a file; True if its content changed."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                os.chmod(path, mode)
                return False
    except OSError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def _project_keys(
    target: str, data: dict[str, bytes], items: list[JSON] | None, mode: int, what: str
) -> None:
    if items:
        for it in items:
            if it["key"] not in data:
                raise PodConfigError(f"key {it['key']!r} not found in {what}")
            _write_file(os.path.join(target, it["path"]), data[it["key"]], it.get("mode", mode))
    else:
        for k, v in data.items():
            _write_file(os.path.join(target, k), v, mode)


@dataclass
class TokenState:
    expires_at: float = 0.0
    issued_at: float = 0.0


@dataclass
class VolumeSet:
    """Materialised volumes of one pod under `root`; `refresh()` re-syncs their content."""

    api: KubeClient
    pod: JSON
    root: str
    host_paths: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, TokenState] = field(default_factory=dict)

    def path(self, name: str) -> str:
        return self.host_paths.get(name) or os.path.join(self.root, name)

    def refresh(self, *, now: float) -> None:
        for vol in self.pod["spec"].get("volumes", []):
            self._materialise(vol, now=now)

    def _materialise(self, vol: JSON, *, now: float) -> None:
        name = vol["name"]
        target = os.path.join(self.root, name)
        ns = self.pod["metadata"]["namespace"]
        if "hostPath" in vol:
            hp = vol["hostPath"]
            if hp.get("type") == "DirectoryOrCreate":
                os.makedirs(hp["path"], exist_ok=True)
            self.host_paths[name] = hp["path"]
            return
        os.makedirs(target, exist_ok=True)
        if "emptyDir" in vol:
            return
        if "configMap" in vol or "secret" in vol:
            kind = "configmaps" if "configMap" in vol else "secrets"
            src = vol["configMap"] if "configMap" in vol else vol["secret"]
            obj_name = src.get("name") or src.get("secretName")
            obj = _get_object(self.api, ns, kind, obj_name, src.get("optional", False))
            _project_keys(
                target,
                _object_data(obj, kind),
                src.get("items"),
                src.get("defaultMode", 0o644),
                f"{kind[:-1]} {ns}/{obj_name}",
            )
            return
        if "downwardAPI" in vol:
            self._downward(
                target,
                vol["downwardAPI"].get("items", []),
                vol["downwardAPI"].get("defaultMode", 0o644),
            )
            return
        if "projected" in vol:
            mode = vol["projected"].get("defaultMode", 0o644)
            for i, s in enumerate(vol["projected"].get("sources", [])):
                if "serviceAccountToken" in s:
                    self._token(f"{name}/{i}", target, s["serviceAccountToken"], mode, now=now)
                elif "configMap" in s or "secret" in s:
                    kind = "configmaps" if "configMap" in s else "secrets"
                    src = s.get("configMap") or s.get("secret")
                    obj = _get_object(self.api, ns, kind, src["name"], src.get("optional", False))
                    _project_keys(
                        target,
                        _object_data(obj, kind),
                        src.get("items"),
                        mode,
                        f"{kind[:-1]} {ns}/{src['name']}",
                    )
                elif "downwardAPI" in s:
                    self._downward(target, s["downwardAPI"].get("items", []), mode)
                else:
                    raise PodConfigError(
                        f"projected source {sorted(s)} of volume {name!r} "
                        "is not supported by the test node agent"
                    )
            return
        raise PodConfigError(
            f"volume {name!r} of type {sorted(set(vol) - {'name'})} is not "
            "supported by the test node agent (supported: configMap, secret, "
            "emptyDir, downwardAPI, projected, hostPath)"
        )

    def _downward(self, target: str, items: list[JSON], mode: int) -> None:
        for it in items:
            if "fieldRef" in it:
                value = field_value(self.pod, it["fieldRef"]["fieldPath"])
            else:
                value = resource_value(self.pod, it["resourceFieldRef"], None)
            _write_file(os.path.join(target, it["path"]), value.encode(), it.get("mode", mode))

    def _token(self, key: str, target: str, src: JSON, mode: int, *, now: float) -> None:
        st = self.tokens.setdefault(key, TokenState())
        lifetime = st.expires_at - st.issued_at
        if st.expires_at and now < st.issued_at + 0.8 * lifetime:
            return  # kubelet also refreshes at 80% of the lifetime
        meta = self.pod["metadata"]
        spec: JSON = {
            "expirationSeconds": src.get("expirationSeconds", 3600),
            "boundObjectRef": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        }
        if src.get("audience"):
            spec["audiences"] = [src["audience"]]
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        res = self.api.create(
            f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{sa}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        _write_file(os.path.join(target, src["path"]), res["status"]["token"].encode(), mode)
        st.issued_at, st.expires_at = now, now + spec["expirationSeconds"]


# ---- probes --------------------------------------------------------------------------------


def _port(container: JSON, port: Any) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports", []):
        if p.get("name") == port:
            return int(p["containerPort"])
    raise PodConfigError(f"probe names unknown port {port!r} of container {container['name']!r}")


def run_probe(
    probe: JSON,
    *,
    container: JSON,
    env: dict[str, str],
    pid: int | None,
    host: HostEnv,
    workdir: str,
) -> tuple[bool, str]:
    """Run one probe attempt; (success, message). Network probes target 127.0.0.1."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "exec" in probe:
            argv = list(probe["exec"]["command"])
            if argv and _PYTHON_NAMES.match(argv[0]):
                argv[0] = host.python
            if pid is not None and container.get("volumeMounts") and host.can_mount:
                argv = ["nsenter", "-t", str(pid), "--mount", "--root", "--wd", "--", *argv]
            res = subprocess.run(
                argv, env=env, cwd=workdir, capture_output=True, timeout=timeout, check=False
            )
            return res.returncode == 0, f"exec exit {res.returncode}"
        if "httpGet" in probe:
            hg = probe["httpGet"]
            port = _port(container, hg["port"])
            hostname = hg.get("host") or "127.0.0.1"
            if hg.get("scheme", "HTTP").upper() == "HTTPS":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    hostname, port, timeout=timeout, context=ssl._create_unverified_context()
                )
            else:
                conn = http.client.HTTPConnection(hostname, port, timeout=timeout)
            try:
                headers = {h["name"]: h["value"] for h in hg.get("httpHeaders", [])}
                conn.request("GET", hg.get("path", "/"), headers=headers)
                status = conn.getresponse().status
            finally:
                conn.close()
            return 200 <= status < 400, f"HTTP {status}"
        if "tcpSocket" in probe:
            port = _port(container, probe["tcpSocket"]["port"])
            with socket.create_connection(
                (probe["tcpSocket"].get("host") or "127.0.0.1", port), timeout=timeout
            ):
                return True, "tcp connect ok"
        return False, f"probe type {sorted(probe)} is not supported by the test node agent"
    except (OSError, subprocess.TimeoutExpired, http.client.HTTPException) as e:
        return False, f"probe failed: {e}"


@dataclass
class ProbeState:
    """Thresholds and timing of one probe of one container instance."""

    probe: JSON
    started_at: float
    next_at: float = 0.0
    successes: int = 0
    failures: int = 0
    result: bool | None = None  # None: not decided yet

    def __post_init__(self) -> None:
        self.next_at = self.started_at + float(self.probe.get("initialDelaySeconds", 0))

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, ok: bool, now: float) -> bool | None:
        """Apply one attempt; returns the (possibly changed) decided result."""
        self.next_at = now + float(self.probe.get("periodSeconds", 10))
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= int(self.probe.get("successThreshold", 1)):
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= int(self.probe.get("failureThreshold", 3)):
                self.result = False
        return self.result


def monotonic() -> float:
    return time.monotonic()
