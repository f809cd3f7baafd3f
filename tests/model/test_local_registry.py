"""LocalRegistry: apply results (created/configured/unchanged), all-or-nothing apply,
publish-version (immutable, idempotent), declarative spec.publish, layer versions and layer
resolution, alias checks, the read model (FunctionConfig / AliasConfig), persistence across
reopen, delete cascades, wait_changed, and the garbage collection of unreferenced artifacts
(at open, after delete)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from klambda_gateway.local_registry import ApplyError, LocalRegistry, NotFoundError
from klambda_gateway.registry import LATEST, Destination
from klambda_model import load_documents


def fn(name: str = "hello", *, body: str = "return 1", extra: str = "") -> str:
    return f"""
apiVersion: klambda.io/v1alpha1
kind: Function
metadata: {{name: {name}}}
spec:
  runtime: python3.12
  handler: app.handler
  code:
    inline:
      app.py: |
        def handler(event, context):
            {body}
{extra}
"""


def layer(name: str = "deps", *, value: str = "1", runtimes: str = "[python3.12]") -> str:
    return f"""
apiVersion: klambda.io/v1alpha1
kind: Layer
metadata: {{name: {name}}}
spec:
  content: {{inline: {{python/shared.py: "X = {value}\\n"}}}}
  compatibleRuntimes: {runtimes}
"""


def alias(version: str = "1", *, extra: str = "", name: str = "live") -> str:
    return f"""
apiVersion: klambda.io/v1alpha1
kind: Alias
metadata: {{name: hello-{name}}}
spec:
  functionName: hello
  name: {name}
  functionVersion: "{version}"
{extra}
"""


def docs(*parts: str) -> list[Any]:
    return load_documents("---".join(parts))


@pytest.fixture
def reg(tmp_path: Path) -> Any:
    registry = LocalRegistry(tmp_path / "state")
    yield registry
    registry.close()


def test_apply_reports_created_unchanged_configured(reg: LocalRegistry) -> None:
    assert reg.apply(docs(fn())) == ["function/hello created"]
    assert reg.apply(docs(fn())) == ["function/hello unchanged"]
    assert reg.apply(docs(fn(body="return 2"))) == ["function/hello configured"]
    cfg = reg.function("default", "hello")
    assert cfg is not None and cfg.latest.version == LATEST
    assert (Path(cfg.latest.code_dir) / "app.py").read_text().strip().endswith("return 2")


def test_latest_revision_changes_only_with_code_or_config(reg: LocalRegistry) -> None:
    reg.apply(docs(fn()))
    first = reg.version("default", "hello", LATEST)
    reg.apply(docs(fn(extra="  reservedConcurrency: 3")))  # function-level: same revision
    same = reg.version("default", "hello", LATEST)
    reg.apply(docs(fn(extra="  timeout: 10")))
    changed = reg.version("default", "hello", LATEST)
    assert first is not None and same is not None and changed is not None
    assert first.revision == same.revision != changed.revision
    assert changed.timeout == 10


def test_publish_version_is_immutable_and_idempotent(reg: LocalRegistry) -> None:
    reg.apply(docs(fn()))
    v1 = reg.publish_version("default", "hello", "first")
    assert v1.version == "1"
    assert reg.publish_version("default", "hello").version == "1"  # nothing changed
    reg.apply(docs(fn(body="return 2")))
    v2 = reg.publish_version("default", "hello")
    assert v2.version == "2" and v2.revision != v1.revision
    assert reg.version("default", "hello", "1") == v1
    assert (Path(v1.code_dir) / "app.py").read_text().strip().endswith("return 1")
    cfg = reg.function("default", "hello")
    assert cfg is not None and cfg.published_versions == ("1", "2")
    with pytest.raises(NotFoundError, match='function "nope" does not exist'):
        reg.publish_version("default", "nope")


def test_declarative_publish(reg: LocalRegistry) -> None:
    assert reg.apply(docs(fn(extra="  publish: true"))) == [
        "function/hello created (published version 1)"
    ]
    assert reg.apply(docs(fn(extra="  publish: true"))) == ["function/hello unchanged"]
    assert reg.apply(docs(fn(body="return 2", extra="  publish: true"))) == [
        "function/hello configured (published version 2)"
    ]
    assert reg.apply(docs(fn(body="return 2", extra="  publish: true\n  reservedConcurrency: 1"))
                     ) == ["function/hello configured"]


def test_layers_versions_and_resolution(reg: LocalRegistry) -> None:
    out = reg.apply(docs(layer(), fn(extra="  layers: [deps]"), fn("pinned", extra="  layers: ['deps:1']")))
    assert out == ["layer/deps created (version 1)", "function/hello created",
                   "function/pinned created"]
    hello1 = reg.version("default", "hello", LATEST)
    pinned1 = reg.version("default", "pinned", LATEST)
    assert hello1 is not None and pinned1 is not None
    assert (Path(hello1.opt_dir) / "python" / "shared.py").read_text() == "X = 1\n"
    assert reg.apply(docs(layer(value="2"))) == ["layer/deps configured (version 2)"]
    hello2 = reg.version("default", "hello", LATEST)
    assert hello2 is not None and hello2.revision != hello1.revision
    assert (Path(hello2.opt_dir) / "python" / "shared.py").read_text() == "X = 2\n"
    assert reg.version("default", "pinned", LATEST) == pinned1
    assert [(la["name"], la["version"]) for la in reg.list_layers()] == [("deps", 1), ("deps", 2)]


def test_layer_errors(reg: LocalRegistry) -> None:
    with pytest.raises(ApplyError) as info:
        reg.apply(docs(fn(extra="  layers: [nope]")))
    assert info.value.errors == [
        ('function/hello: spec.layers[0]: Layer "nope" does not exist in this namespace; apply a '
        "Layer named nope first (or fix the name)")
    ]
    reg.apply(docs(layer()))
    with pytest.raises(ApplyError) as info:
        reg.apply(docs(fn(extra="  layers: ['deps:7']")))
    assert info.value.errors == [
        ('function/hello: spec.layers[0]: Layer "deps" has no version 7 (versions: 1); use one '
        "of them or just deps for the latest")
    ]
    reg.apply(docs(layer("py311", runtimes="[python3.11]")))
    with pytest.raises(ApplyError) as info:
        reg.apply(docs(fn(extra="  layers: [py311]")))
    assert info.value.errors == [
        ('function/hello: spec.layers[0]: Layer "py311" version 1 is compatible with python3.11, '
        "not python3.12; add python3.12 to its compatibleRuntimes or use another layer")
    ]


def test_apply_is_all_or_nothing(reg: LocalRegistry) -> None:
    generation = reg.generation
    with pytest.raises(ApplyError) as info:
        reg.apply(docs(layer(), fn(), alias("3")))
    assert info.value.errors == [
        ('alias/hello-live: spec.functionVersion: function "hello" has no version 3 (published: '
        "none yet); publish one with `klambda publish-version hello` or set spec.publish: true "
        "on the Function")
    ]
    assert reg.generation == generation
    assert reg.functions() == [] and reg.list_layers() == []


def test_aliases(reg: LocalRegistry) -> None:
    out = reg.apply(docs(fn(extra="  publish: true"), alias("1", extra="  provisionedConcurrency: 2")))
    assert out == ["function/hello created (published version 1)", "alias/hello-live created"]
    # a new version and weights in the same apply: the function is applied first
    out = reg.apply(docs(
        fn(body="return 2", extra="  publish: true"),
        alias("1", extra="  routingConfig: {additionalVersionWeights: {'2': 0.25}}"),
    ))
    assert out == ["function/hello configured (published version 2)",
                   "alias/hello-live configured"]
    cfg = reg.alias("default", "hello", "live")
    assert cfg is not None
    assert (cfg.function_version, dict(cfg.additional_version_weights),
            cfg.provisioned_concurrency) == ("1", {"2": 0.25}, 0)
    with pytest.raises(ApplyError) as info:
        reg.apply(docs(alias("1", extra="  routingConfig: {additionalVersionWeights: {'5': 0.1}}")))
    assert "additionalVersionWeights[\"5\"]: function \"hello\" has no version 5 (published: 1, 2)" \
        in info.value.errors[0]
    with pytest.raises(ApplyError) as info:
        reg.apply(docs(alias("1", name="live").replace("hello-live", "other")))
    assert info.value.errors == [
        ("alias/other: spec.name: function hello already has an alias named live (alias/hello-live);"
        " choose another name")
    ]
    with pytest.raises(ApplyError, match='function "ghost" does not exist'):
        reg.apply(docs(alias().replace("functionName: hello", "functionName: ghost")))


def test_function_config_carries_concurrency_and_event_config(reg: LocalRegistry) -> None:
    reg.apply(docs(fn(extra="""  reservedConcurrency: 0
  eventInvokeConfig:
    maximumRetryAttempts: 1
    maximumEventAgeInSeconds: 120
    destinationConfig: {onFailure: {function: audit}, onSuccess: {arn: "arn:aws:sqs:r:1:q"}}""")))
    cfg = reg.function("default", "hello")
    assert cfg is not None and cfg.reserved_concurrency == 0
    eic = cfg.event_invoke_config
    assert (eic.maximum_retry_attempts, eic.maximum_event_age_seconds) == (1, 120)
    assert eic.on_failure == Destination(function="audit")
    assert eic.on_success == Destination(arn="arn:aws:sqs:r:1:q")


def test_state_survives_reopen(tmp_path: Path) -> None:
    first = LocalRegistry(tmp_path / "s")
    first.apply(docs(layer(), fn(extra="  layers: [deps]\n  publish: true"), alias("1")))
    before = (first.functions(), first.aliases(), first.list_layers(), first.list_versions())
    first.close()
    second = LocalRegistry(tmp_path / "s")
    try:
        assert (second.functions(), second.aliases(), second.list_layers(),
                second.list_versions()) == before
        assert second.apply(docs(fn(extra="  layers: [deps]\n  publish: true"))) == [
            "function/hello unchanged"]
        second.apply(docs(fn(body="return 3", extra="  layers: [deps]\n  publish: true")))
        cfg = second.function("default", "hello")
        assert cfg is not None and cfg.published_versions == ("1", "2")
    finally:
        second.close()


def test_delete(reg: LocalRegistry) -> None:
    reg.apply(docs(layer(), fn(extra="  layers: [deps]\n  publish: true"), alias("1")))
    with pytest.raises(ApplyError) as info:
        reg.delete([("layer", "default", "deps")])
    assert info.value.errors == [
        ("layer/deps: used by function/hello (spec.layers); remove it there first or delete both "
        "together")
    ]
    assert reg.delete([("function", "default", "hello"), ("Layer", "default", "deps")]) == [
        "function/hello deleted", "alias/hello-live deleted (its function was deleted)",
        "layer/deps deleted",
    ]
    assert reg.functions() == [] and reg.aliases() == [] and reg.list_layers() == []
    assert reg.version("default", "hello", "1") is None
    assert reg.delete([("function", "default", "hello")]) == [
        "function/hello not found (nothing to delete)"]


def test_namespaces_are_separate(reg: LocalRegistry) -> None:
    reg.apply(load_documents(fn(), default_namespace="team-a"))
    assert reg.function("team-a", "hello") is not None
    assert reg.function("default", "hello") is None


async def test_wait_changed_wakes_on_apply_from_another_thread(reg: LocalRegistry) -> None:
    generation = reg.generation
    waiter = asyncio.ensure_future(reg.wait_changed(generation))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    thread = threading.Thread(target=reg.apply, args=(docs(fn()),))
    thread.start()
    new = await asyncio.wait_for(waiter, 5)
    thread.join(5)
    assert new == reg.generation > generation
    assert await reg.wait_changed(generation) == new  # already different: immediate


def test_unchanged_apply_does_not_bump_generation(reg: LocalRegistry) -> None:
    reg.apply(docs(layer(), fn(extra="  layers: [deps]")))
    generation = reg.generation
    assert reg.apply(docs(layer(), fn(extra="  layers: [deps]"))) == [
        "layer/deps unchanged", "function/hello unchanged"]
    assert reg.delete([("function", "default", "ghost")]) == [
        "function/ghost not found (nothing to delete)"]
    assert reg.generation == generation
    reg.apply(docs(fn(extra="  layers: [deps]\n  reservedConcurrency: 2")))
    assert reg.generation == generation + 1


def test_a_stored_document_the_model_now_rejects_is_skipped(tmp_path: Path) -> None:
    import sqlite3

    first = LocalRegistry(tmp_path / "s")
    first.apply(docs(fn(), fn("other")))
    first.close()
    db = sqlite3.connect(tmp_path / "s" / "registry.db")
    db.execute("UPDATE resources SET doc = ? WHERE name = 'other'",
               (('{"apiVersion": "klambda.io/v1alpha1", "kind": "Function", '
                '"metadata": {"name": "other"}, "spec": {"runtime": "python2.7"}}'),))
    db.commit()
    db.close()
    second = LocalRegistry(tmp_path / "s")
    try:
        assert [f.name for f in second.functions()] == ["hello"]
    finally:
        second.close()


def _artifacts(state: Path) -> set[str]:
    root = state / "artifacts"
    opt = root / "opt"
    return {p.name for p in root.iterdir() if p.is_dir() and p.name != "opt"} | (
        {f"opt/{p.name}" for p in opt.iterdir()} if opt.is_dir() else set())


def _dirs(reg: LocalRegistry, ns: str, name: str, version: str) -> set[str]:
    v = reg.version(ns, name, version)
    assert v is not None
    out = {Path(v.code_dir).name}
    if v.opt_dir:
        out.add(f"opt/{Path(v.opt_dir).name}")
    return out


def test_unreferenced_artifacts_are_collected_at_open(tmp_path: Path) -> None:
    state = tmp_path / "s"
    first = LocalRegistry(state)
    first.apply(docs(fn(body="return 1", extra="  publish: true")))
    v1 = _dirs(first, "default", "hello", "1")
    first.apply(docs(fn(body="return 2")))  # $LATEST moves on; version 1 keeps its code
    latest = _dirs(first, "default", "hello", LATEST)
    first.apply(docs(fn(body="return 3")))  # "return 2" is now referenced by nothing
    latest3 = _dirs(first, "default", "hello", LATEST)
    assert _artifacts(state) == v1 | latest | latest3  # nothing is collected by an apply
    first.close()
    (state / "artifacts" / ".tmp-crashed").mkdir()
    (state / "artifacts" / "notes.txt").write_text("not an artifact")
    second = LocalRegistry(state)
    try:
        assert _artifacts(state) == v1 | latest3
        assert not (state / "artifacts" / ".tmp-crashed").exists()
        assert (state / "artifacts" / "notes.txt").exists()
        kept = next(iter(latest3))
        assert (state / "artifacts" / f"{kept}.size").exists()
        gone = next(iter(latest))
        assert not (state / "artifacts" / f"{gone}.size").exists()
        second.apply(docs(fn(body="return 2")))  # collected code comes back on demand
        again = second.version("default", "hello", LATEST)
        assert again is not None and (Path(again.code_dir) / "app.py").exists()
    finally:
        second.close()


def test_delete_collects_what_only_the_deleted_resources_used(reg: LocalRegistry) -> None:
    state = reg.state_dir
    reg.apply(docs(layer(), fn(extra="  layers: [deps]\n  publish: true"),
                   fn("other", body="return 2", extra="  layers: [deps]")))
    hello, other = _dirs(reg, "default", "hello", "1"), _dirs(reg, "default", "other", LATEST)
    layer_dir = Path(reg.layer_records("default", "deps")[0].path).name
    shared_opt = {d for d in hello if d.startswith("opt/")}
    assert shared_opt and shared_opt <= other
    reg.delete([("function", "default", "hello")])
    assert _artifacts(state) == other | {layer_dir}  # the layer and its /opt are still used
    reg.delete([("function", "default", "other"), ("layer", "default", "deps")])
    assert _artifacts(state) == set()
