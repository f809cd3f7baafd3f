"""One pod on the test node: its containers as local process groups, probes, restarts, status.

A PodWorker thread owns one pod UID from first sight until the pod is gone. Test
infrastructure only; see tests/README.md for what is and is not emulated.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .kubeapi import ApiError, KubeClient
from .podspec import (
    HostEnv,
    PodConfigError,
    ProbeState,
    VolumeSet,
    container_argv,
    container_env,
    run_probe,
)
from .procs import (
    ProcRecord,
    descendants,
    die_with_parent,
    kill_stragglers,
    proc_start_time,
    stop_group,
)
from .rootfs import mount_wrapper

JSON = dict[str, Any]
log = logging.getLogger("node-agent")
TICK = 0.2


def rfc3339(t: float | None = None) -> str:
    return dt.datetime.fromtimestamp(t or time.time(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class AgentContext:
    """What every pod worker of one node agent shares."""

    api: KubeClient
    node: str
    host_ip: str
    host: HostEnv
    state_dir: str
    allocate_ip: Callable[[], str]
    register: Callable[[ProcRecord], None]
    unregister: Callable[[ProcRecord], None]
    backoff_base: float = 1.0
    backoff_max: float = 10.0


@dataclass
class Ctr:
    """One container of the pod and its current process (if any)."""

    spec: JSON
    init: bool
    restart_count: int = 0
    ran_before: bool = False
    popen: subprocess.Popen[bytes] | None = None
    rec: ProcRecord | None = None
    env: dict[str, str] = field(default_factory=dict)
    state: JSON = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: JSON = field(default_factory=dict)
    started_at: float = 0.0
    restart_at: float | None = None
    done: bool = False  # terminated and will not be restarted
    startup: ProbeState | None = None
    liveness: ProbeState | None = None
    readiness: ProbeState | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def ready(self) -> bool:
        if self.popen is None or "running" not in self.state:
            return False
        if self.startup is not None and self.startup.result is not True:
            return False
        return self.readiness is None or self.readiness.result is True

    def status(self, pod_uid: str) -> JSON:
        started = "running" in self.state and (self.startup is None or self.startup.result is True)
        st: JSON = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.ready(),
            "restartCount": self.restart_count,
            "started": bool(started),
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.rec is not None:
            st["containerID"] = f"process://{pod_uid[:8]}-{self.rec.pid}"
        return st


class PodWorker(threading.Thread):
    def __init__(self, ctx: AgentContext, pod: JSON) -> None:
        super().__init__(name=f"pod-{pod['metadata']['name']}", daemon=True)
        self.ctx = ctx
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.ns = pod["metadata"]["namespace"]
        self.pod_name = pod["metadata"]["name"]
        self.path = f"/api/v1/namespaces/{self.ns}/pods/{self.pod_name}"
        self.dir = os.path.join(ctx.state_dir, "pods", f"{self.ns}_{self.pod_name}_{self.uid[:8]}")
        self._lock = threading.Lock()
        self.gone = threading.Event()  # the pod object no longer exists
        self.shutdown = threading.Event()  # the agent is stopping
        self.finished = threading.Event()
        spec = pod["spec"]
        self.restart_policy = spec.get("restartPolicy", "Always")
        self.inits = [Ctr(spec=c, init=True) for c in spec.get("initContainers", [])]
        self.ctrs = [Ctr(spec=c, init=False) for c in spec["containers"]]
        self.ip = ctx.allocate_ip()
        self.start_time = rfc3339()
        self.phase = "Pending"
        self.initialized = not self.inits
        self.message: str | None = None
        self._published: str | None = None
        self.volumes = VolumeSet(api=ctx.api, pod=pod, root=os.path.join(self.dir, "volumes"))

    # ---- events from the watcher -----------------------------------------------------------
    def update(self, pod: JSON) -> None:
        with self._lock:
            self.pod = pod
            self.volumes.pod = pod

    def deleting(self) -> bool:
        with self._lock:
            return bool(self.pod["metadata"].get("deletionTimestamp"))

    # ---- main loop -------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s/%s: worker crashed", self.ns, self.pod_name)
            self._kill_all(grace=0)
        finally:
            self.finished.set()

    def _stopping(self) -> bool:
        return self.gone.is_set() or self.shutdown.is_set() or self.deleting()

    def _run(self) -> None:
        os.makedirs(os.path.join(self.ctx.state_dir, "logs"), exist_ok=True)
        self._publish()
        self._prepare_volumes()
        if not self._stopping():
            self._run_inits()
        if not self._stopping() and self.phase != "Failed":
            self._run_main()
        while not self._stopping():  # completed or failed pods stay until deleted
            self.shutdown.wait(0.5)
        self._terminate()

    def _prepare_volumes(self) -> None:
        while not self._stopping():
            try:
                self.volumes.refresh(now=time.monotonic())
                return
            except PodConfigError as e:
                self._set_waiting_all("CreateContainerConfigError", str(e))
            except ApiError as e:
                self._set_waiting_all("CreateContainerConfigError", str(e)[:300])
            self._publish()
            self.shutdown.wait(2.0)

    def _set_waiting_all(self, reason: str, message: str) -> None:
        for c in self.inits + self.ctrs:
            if c.popen is None:
                c.state = {"waiting": {"reason": reason, "message": message}}

    def _run_inits(self) -> None:
        for c in self.inits:
            while not self._stopping():
                if c.popen is None and (c.restart_at is None or time.monotonic() >= c.restart_at):
                    self._start(c)
                code = c.popen.poll() if c.popen is not None else None
                if code is not None:
                    self._record_exit(c, code)
                    if code == 0:
                        c.done = True
                        break
                    if self.restart_policy == "Never":
                        self.phase, c.done = "Failed", True
                        self._publish()
                        return
                    self._schedule_restart(c)
                self._publish()
                time.sleep(TICK)
            if self._stopping():
                return
        self.initialized = True

    def _run_main(self) -> None:
        for c in self.ctrs:
            self._start(c)
        self.phase = "Running"
        next_refresh = time.monotonic() + 10
        while not self._stopping():
            now = time.monotonic()
            for c in self.ctrs:
                self._tick_container(c, now)
            if all(c.done for c in self.ctrs):
                failed = any(c.state.get("terminated", {}).get("exitCode") for c in self.ctrs)
                self.phase = "Failed" if failed else "Succeeded"
                self._publish()
                return
            if now >= next_refresh:  # ConfigMap/Secret updates and token rotation
                next_refresh = now + 10
                try:
                    self.volumes.refresh(now=now)
                except (PodConfigError, ApiError) as e:
                    log.warning("pod %s/%s: volume refresh: %s", self.ns, self.pod_name, e)
            self._publish()
            time.sleep(TICK)

    def _tick_container(self, c: Ctr, now: float) -> None:
        if c.done:
            return
        if c.popen is None:
            if c.restart_at is not None and now >= c.restart_at:
                self._start(c)
            return
        code = c.popen.poll()
        if code is None:
            self._probe(c, now)
            return
        self._record_exit(c, code)
        if self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0):
            self._schedule_restart(c)
        else:
            c.done = True

    def _probe(self, c: Ctr, now: float) -> None:
        for kind in ("startup", "liveness", "readiness"):
            ps: ProbeState | None = getattr(c, kind)
            if ps is None or not ps.due(now):
                continue
            if kind != "startup" and c.startup is not None and c.startup.result is not True:
                continue
            if kind == "startup" and ps.result is True:
                continue
            ok, msg = run_probe(
                ps.probe,
                container=c.spec,
                env=c.env,
                pid=c.popen.pid if c.popen else None,
                host=self.ctx.host,
                workdir=self._workdir(c),
            )
            result = ps.record(ok, time.monotonic())
            if not ok:
                log.info(
                    "pod %s/%s container %s: %s probe: %s",
                    self.ns,
                    self.pod_name,
                    c.name,
                    kind,
                    msg,
                )
            if kind in ("startup", "liveness") and result is False:
                log.info(
                    "pod %s/%s container %s: %s probe failed, restarting",
                    self.ns,
                    self.pod_name,
                    c.name,
                    kind,
                )
                self._stop_container(c, grace=self._grace())
                return

    # ---- processes -------------------------------------------------------------------------
    def _workdir(self, c: Ctr) -> str:
        return c.spec.get("workingDir") or os.path.join(self.dir, "work", c.name)

    def _start(self, c: Ctr) -> None:
        c.restart_at = None
        try:
            c.env = container_env(self.ctx.api, self.pod, c.spec, self.ctx.host)
            argv = container_argv(c.spec, c.env, self.ctx.host)
            workdir = self._workdir(c)
            os.makedirs(workdir, exist_ok=True)
            argv = mount_wrapper(
                container=c.spec,
                volumes=self.volumes,
                argv=argv,
                workdir=workdir,
                rootfs=os.path.join(self.dir, "rootfs", c.name),
                host=self.ctx.host,
            )
        except (PodConfigError, ApiError) as e:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
            c.restart_at = time.monotonic() + 2.0
            return
        logpath = os.path.join(
            self.ctx.state_dir, "logs", f"{self.ns}_{self.pod_name}_{c.name}.log"
        )
        with open(logpath, "ab") as out:
            try:
                c.popen = subprocess.Popen(
                    argv,
                    env=c.env,
                    cwd=workdir,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl(2)
                )
            except OSError as e:
                c.state = {"waiting": {"reason": "RunContainerError", "message": str(e)}}
                c.restart_at = time.monotonic() + 2.0
                return
        if c.ran_before:  # like kubelet: counted when the new instance starts
            c.restart_count += 1
        c.ran_before = True
        c.rec = ProcRecord(
            name=f"{self.ns}/{self.pod_name}/{c.name}",
            pid=c.popen.pid,
            start_time=proc_start_time(c.popen.pid) or "",
            log=logpath,
        )
        self.ctx.register(c.rec)
        now = time.monotonic()
        c.started_at = now
        c.state = {"running": {"startedAt": rfc3339()}}
        c.startup = ProbeState(c.spec["startupProbe"], now) if c.spec.get("startupProbe") else None
        c.liveness = (
            ProbeState(c.spec["livenessProbe"], now) if c.spec.get("livenessProbe") else None
        )
        c.readiness = (
            ProbeState(c.spec["readinessProbe"], now) if c.spec.get("readinessProbe") else None
        )
        log.info(
            "pod %s/%s: started container %s pid %d: %s",
            self.ns,
            self.pod_name,
            c.name,
            c.popen.pid,
            " ".join(argv[-3:])[:160],
        )

    def _record_exit(self, c: Ctr, code: int) -> None:
        if code < 0:  # killed by a signal: report 128+signal like a container runtime
            code = 128 - code
        started = c.state.get("running", {}).get("startedAt", rfc3339())
        c.state = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": rfc3339(),
            }
        }
        if c.rec is not None:
            stop_group(c.rec, grace=0.0, popen=c.popen)  # stray children die with it
            self.ctx.unregister(c.rec)
        c.popen, c.rec = None, None

    def _schedule_restart(self, c: Ctr) -> None:
        delay = min(self.ctx.backoff_base * 2**c.restart_count, self.ctx.backoff_max)
        c.last_state = c.state
        c.restart_at = time.monotonic() + delay
        c.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {delay:.0f}s restarting failed container",
            }
        }

    def _stop_container(self, c: Ctr, *, grace: float) -> None:
        if c.popen is None or c.rec is None:
            return
        strays = descendants(c.rec.pid)
        stop_group(c.rec, grace=grace, popen=c.popen)
        kill_stragglers(strays)
        self._tick_container(c, time.monotonic())

    def _grace(self) -> float:
        with self._lock:
            meta, spec = self.pod["metadata"], self.pod["spec"]
        g = meta.get("deletionGracePeriodSeconds", spec.get("terminationGracePeriodSeconds", 30))
        return float(g)

    def _kill_all(self, *, grace: float) -> None:
        live = [c for c in self.inits + self.ctrs if c.popen is not None and c.rec is not None]
        # Like a cgroup kill: descendants that escaped the process group (setsid) die too.
        strays = [d for c in live if c.rec is not None for d in descendants(c.rec.pid)]
        for c in live:
            assert c.rec is not None
            c.rec.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(c.popen and c.popen.poll() is None for c in live):
            time.sleep(0.05)
        for c in live:
            code = c.popen.poll() if c.popen else None
            if c.rec is not None:
                stop_group(c.rec, grace=0.0, popen=c.popen)
            code = c.popen.returncode if c.popen else code
            self._record_exit(c, code if code is not None else 137)
            c.done = True
        kill_stragglers(strays)

    def _terminate(self) -> None:
        if self.shutdown.is_set() and not self.deleting():
            self._kill_all(grace=min(self._grace(), 5.0))
            return
        self._kill_all(grace=self._grace())
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.gone.is_set():
            return
        for c in self.ctrs:
            c.state = (
                c.state
                if "terminated" in c.state
                else {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": rfc3339()}}
            )
        try:
            self._publish()
            self.ctx.api.delete(
                self.path,
                {
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": self.uid},
                },
            )
        except ApiError as e:
            if e.status not in (404, 409):
                raise

    # ---- status ----------------------------------------------------------------------------
    def _status(self) -> JSON:
        ready = self.phase == "Running" and all(c.ready() for c in self.ctrs)
        now = rfc3339()

        def cond(kind: str, ok: bool) -> JSON:
            return {
                "type": kind,
                "status": "True" if ok else "False",
                "lastProbeTime": None,
                "lastTransitionTime": now,
            }

        status: JSON = {
            "phase": self.phase,
            "hostIP": self.ctx.host_ip,
            "hostIPs": [{"ip": self.ctx.host_ip}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self.start_time,
            "conditions": [
                cond("PodReadyToStartContainers", True),
                cond("Initialized", self.initialized),
                cond("ContainersReady", ready),
                cond("Ready", ready),
                cond("PodScheduled", True),
            ],
            "containerStatuses": [c.status(self.uid) for c in self.ctrs],
        }
        if self.inits:
            status["initContainerStatuses"] = [c.status(self.uid) for c in self.inits]
        return status

    def _publish(self) -> None:
        status = self._status()
        # Only transition-relevant content decides whether to write (timestamps churn).
        key = json.dumps(
            [
                status["phase"],
                [c["status"] for c in status["conditions"]],
                status["containerStatuses"],
                status.get("initContainerStatuses"),
            ],
            sort_keys=True,
        )
        if key == self._published:
            return
        prev = {}
        with self._lock:
            prev = {c["type"]: c for c in self.pod.get("status", {}).get("conditions", [])}
        for c in status["conditions"]:  # keep lastTransitionTime stable when unchanged
            old = prev.get(c["type"])
            if old is not None and old.get("status") == c["status"]:
                c["lastTransitionTime"] = old.get("lastTransitionTime", c["lastTransitionTime"])
        try:
            self.ctx.api.merge_patch(
                self.path + "/status", {"metadata": {"uid": self.uid}, "status": status}
            )
            self._published = key
        except ApiError as e:
            if e.status == 404:
                self.gone.set()
            else:
                log.warning("pod %s/%s: status patch failed: %s", self.ns, self.pod_name, e)
