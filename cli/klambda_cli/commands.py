"""The CLI's commands: each ``cmd_<name>(args) -> exit code``."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from .client import Client
from .errors import EXIT_FUNCTION_ERROR, EXIT_OK, ServiceError, UsageError
from .output import spinner, table

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def manifest_files(paths: list[str], *, recursive: bool = False) -> list[str]:
    """-f arguments -> files ('-' = stdin); directories give their manifests, sorted."""
    files: list[str] = []
    for raw in paths:
        if raw == "-":
            files.append(raw)
            continue
        path = Path(raw)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(
                str(p) for p in path.glob(pattern)
                if p.is_file() and p.suffix in MANIFEST_SUFFIXES
            )
            if not found:
                raise UsageError(f"{raw}: no *.yaml, *.yml or *.json files in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(str(path))
        else:
            raise UsageError(f"{raw}: no such file or directory")
    return files


def read_manifests(paths: list[str], *, namespace: str, recursive: bool = False,
                   strict_namespace: bool = False) -> list[dict[str, Any]]:
    """Reads and validates manifests locally (errors name file, document and field);
    returns the raw documents with the namespace filled in."""
    from klambda_model import ValidationError, load_documents, parse_documents

    docs: list[dict[str, Any]] = []
    errors: list[str] = []
    for name in manifest_files(paths, recursive=recursive):
        source = "<stdin>" if name == "-" else name
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{source}: cannot read: {exc}") from None
        try:
            load_documents(text, source=source, default_namespace=namespace)
            raw = parse_documents(text, source=source)
        except ValidationError as exc:
            errors.extend(exc.errors)
            continue
        for index, doc in enumerate(raw):
            meta = doc.setdefault("metadata", {})
            if not meta.get("namespace"):
                meta["namespace"] = namespace
            elif strict_namespace and meta["namespace"] != namespace:
                errors.append(
                    f'{source}[{index}] {doc.get("kind")}/{meta.get("name")}: metadata.namespace '
                    f'"{meta["namespace"]}" does not match --namespace "{namespace}"; remove one '
                    "of them"
                )
            docs.append(doc)
    if errors:
        count = len(errors)
        raise UsageError(
            f"{count} problem{'s' if count != 1 else ''} in the manifests (nothing was applied):",
            errors,
        )
    if not docs:
        raise UsageError("no documents found in the given manifests")
    return docs


INVOKE_TIMEOUT_S = 960.0  # the longest function timeout (900 s) plus queueing and start-up


def _client(args: argparse.Namespace, *, timeout: float = 120.0) -> Client:
    return Client(endpoint=args.endpoint, timeout=timeout)


def cmd_apply(args: argparse.Namespace) -> int:
    docs = read_manifests(args.filename, namespace=args.namespace, recursive=args.recursive,
                          strict_namespace=args.namespace_explicit)
    if args.dry_run:
        for doc in docs:
            print(f"{str(doc['kind']).lower()}/{doc['metadata']['name']} valid (dry run)")
        return EXIT_OK
    query = urllib.parse.urlencode({"namespace": args.namespace})
    with spinner("applying"):
        resp = _client(args).request(
            "POST", f"/klambda/v1/apply?{query}", body=json.dumps(docs).encode(),
            headers={"Content-Type": "application/json"},
        )
    for line in resp.json()["results"]:
        print(line)
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.filename:
        if args.kind:
            raise UsageError("give either -f PATH or KIND NAME, not both")
        from klambda_model import ValidationError, parse_documents

        docs: list[Any] = []
        for name in manifest_files(args.filename, recursive=args.recursive):
            text = sys.stdin.read() if name == "-" else Path(name).read_text()
            try:
                docs.extend(parse_documents(text, source=name))
            except ValidationError as exc:
                raise UsageError("cannot read the manifests:", exc.errors) from None
        query = urllib.parse.urlencode({"namespace": args.namespace})
        resp = client.request("POST", f"/klambda/v1/delete?{query}",
                              body=json.dumps(docs).encode(),
                              headers={"Content-Type": "application/json"})
    elif args.kind and args.name:
        path = "/".join(urllib.parse.quote(p, safe="") for p in
                        (args.kind, args.namespace, args.name))
        resp = client.request("DELETE", f"/klambda/v1/{path}")
    else:
        raise UsageError("give -f PATH (manifests) or KIND NAME, e.g. `klambda delete function "
                         "hello`")
    for line in resp.json()["results"]:
        print(line)
    return EXIT_OK


def _ago(text: str | None) -> str:
    return (text or "")[:19].replace("T", " ")


def cmd_get(args: argparse.Namespace) -> int:
    if args.what == "esm":
        args.what = "event-source-mappings"
    params: dict[str, str] = {}
    if not args.all_namespaces:
        params["namespace"] = args.namespace
    if args.name and args.what in ("versions", "aliases"):
        params["function"] = args.name
    query = urllib.parse.urlencode(params)
    path = args.what.replace("-", "")
    items: list[dict[str, Any]] = _client(args).request(
        "GET", f"/klambda/v1/{path}?{query}"
    ).json()["items"]
    if args.name and args.what in ("functions", "layers", "event-source-mappings"):
        items = [i for i in items if i["name"] == args.name]
    if args.output == "json":
        print(json.dumps(items, indent=2))
        return EXIT_OK
    if args.output == "yaml":
        import yaml

        print(yaml.safe_dump(items, sort_keys=False), end="")
        return EXIT_OK
    headers, rows = _rows(args.what, items)
    if args.all_namespaces:
        headers = ["NAMESPACE", *headers]
        rows = [[i["namespace"], *r] for i, r in zip(items, rows, strict=True)]
    if not rows:
        where = "any namespace" if args.all_namespaces else f'namespace "{args.namespace}"'
        print(f"no {args.what.replace('-', ' ')} in {where}", file=sys.stderr)
        return EXIT_OK
    print(table(headers, rows))
    return EXIT_OK


def _rows(what: str, items: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    if what == "functions":
        return (
            ["NAME", "RUNTIME", "HANDLER", "MEMORY", "TIMEOUT", "VERSIONS", "RESERVED",
             "LAYERS", "LAST-MODIFIED"],
            [[i["name"], i["runtime"], i["handler"], i["memorySize"], f'{i["timeout"]}s',
              len(i["versions"]), "-" if i["reservedConcurrency"] is None
              else i["reservedConcurrency"], ",".join(i["layers"]) or "-",
              _ago(i["lastModified"])] for i in items],
        )
    if what == "versions":
        return (
            ["FUNCTION", "VERSION", "REVISION", "RUNTIME", "CODE-SHA256", "LAYERS",
             "DESCRIPTION", "LAST-MODIFIED"],
            [[i["function"], i["version"], i["revision"][:12], i["runtime"],
              i["codeSha256"][:12], ",".join(i["layers"]) or "-", i["description"] or "-",
              _ago(i["lastModified"])] for i in items],
        )
    if what == "aliases":
        def weights(i: dict[str, Any]) -> str:
            w = i["additionalVersionWeights"]
            if not w:
                return "-"
            rest = 1 - sum(w.values())
            parts = [f'{i["functionVersion"]}={rest:.0%}'] + [f"{k}={v:.0%}" for k, v in
                                                              sorted(w.items())]
            return ",".join(parts)

        return (
            ["FUNCTION", "ALIAS", "VERSION", "WEIGHTS", "PROVISIONED"],
            [[i["function"], i["name"], i["functionVersion"], weights(i),
              i["provisionedConcurrency"]] for i in items],
        )
    if what == "event-source-mappings":
        return (
            ["NAME", "FUNCTION", "SOURCE", "ENABLED", "BATCH", "STATE"],
            [[i["name"], i["function"], i["source"], str(i["enabled"]).lower(),
              "default" if i["batchSize"] is None else i["batchSize"], i["state"]]
             for i in items],
        )
    return (
        ["NAME", "VERSION", "RUNTIMES", "SIZE", "CODE-SHA256", "CREATED"],
        [[i["name"], i["version"], ",".join(i["compatibleRuntimes"]) or "any",
          i["codeSize"], i["codeSha256"][:12], _ago(i["created"])] for i in items],
    )


def function_name(ref: str, namespace: str) -> str:
    """NAME[:QUALIFIER] in a namespace -> the Invoke API's FunctionName."""
    if ref.startswith("arn:") or namespace == "default":
        return ref
    return f"{namespace}:function:{ref}"


def read_payload(raw: str | None) -> bytes:
    if raw is None:
        return b"{}"
    if raw.startswith("@"):
        name = raw[1:]
        try:
            data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            raise UsageError(f"--payload {raw}: cannot read: {exc}") from None
    else:
        data = raw.encode()
    try:
        json.loads(data or b"null")
    except ValueError as exc:
        raise UsageError(f"--payload is not valid JSON ({exc}); give JSON or @FILE") from None
    return data


def cmd_invoke(args: argparse.Namespace) -> int:
    payload = read_payload(args.payload)
    kind = "Event" if args.event else "DryRun" if args.dry_run else "RequestResponse"
    headers = {"X-Amz-Invocation-Type": kind, "Content-Type": "application/json"}
    if args.log:
        headers["X-Amz-Log-Type"] = "Tail"
    name = urllib.parse.quote(function_name(args.function, args.namespace), safe="")
    with spinner(f"invoking {args.function}"):
        resp = _client(args, timeout=INVOKE_TIMEOUT_S).request(
            "POST", f"/2015-03-31/functions/{name}/invocations", body=payload, headers=headers
        )
    h = {k.lower(): v for k, v in resp.headers.items()}
    if args.log and "x-amz-log-result" in h:
        log = base64.b64decode(h["x-amz-log-result"]).decode(errors="replace")
        sys.stderr.write(log if log.endswith("\n") else log + "\n")
    if kind == "Event":
        print(f"accepted ({resp.status}): request id {h.get('x-amzn-requestid', '?')}",
              file=sys.stderr)
        return EXIT_OK
    if kind == "DryRun":
        print(f"dry run ok ({resp.status})", file=sys.stderr)
        return EXIT_OK
    body = resp.body.decode(errors="replace")
    if sys.stdout.isatty():
        try:
            body = json.dumps(json.loads(body), indent=2)
        except ValueError:
            pass
    print(body)
    if "x-amz-function-error" in h:
        print(f"function error ({h['x-amz-function-error']}), executed version "
              f"{h.get('x-amz-executed-version', '?')}", file=sys.stderr)
        return EXIT_FUNCTION_ERROR
    return EXIT_OK


def cmd_publish_version(args: argparse.Namespace) -> int:
    path = "/".join(urllib.parse.quote(p, safe="") for p in (args.namespace, args.function))
    resp = _client(args).request(
        "POST", f"/klambda/v1/functions/{path}/versions",
        body=json.dumps({"description": args.description}).encode(),
        headers={"Content-Type": "application/json"},
    )
    data = resp.json()
    if data["created"]:
        print(f"function/{args.function} published version {data['version']}")
    else:
        print(f"function/{args.function} unchanged since version {data['version']} "
              "(nothing new to publish)")
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    path = "/".join(urllib.parse.quote(p, safe="") for p in (args.namespace, args.function))
    query = urllib.parse.urlencode({"tail": args.tail, "follow": int(args.follow)})
    out = sys.stdout.buffer
    for chunk in _client(args).stream(f"/klambda/v1/logs/{path}?{query}"):
        out.write(chunk)
        out.flush()
    return EXIT_OK


def _ready_hint(host: str, port: int, function: str | None) -> str:
    endpoint = f"http://{host}:{port}"
    extra = "" if port == 9000 and host == "127.0.0.1" else f" --endpoint {endpoint}"
    lines = [f"klambda: ready on {endpoint}. Try:", f"  klambda get functions{extra}"]
    if function:
        lines += [
            f"  klambda invoke {function} --payload '{{\"name\":\"you\"}}'{extra}",
            f"  aws lambda invoke --endpoint-url {endpoint} --function-name {function} out.json",
        ]
    else:
        lines.append(f"  klambda apply -f examples/hello.yaml{extra}")
    return "\n".join(lines)


def cmd_up(args: argparse.Namespace) -> int:
    files = manifest_files(args.filename) if args.filename else []
    docs = read_manifests(files, namespace="default") if files else []  # fail fast
    first = next((str(d["metadata"]["name"]) for d in docs if d.get("kind") == "Function"
                  and d["metadata"].get("namespace") == "default"), None)
    import asyncio
    import logging

    try:
        from klambda_gateway.local import run_local
        from klambda_gateway.local_registry import ApplyError
        from klambda_gateway.settings import LocalSettings
    except ImportError as exc:
        raise UsageError(f"the local platform is not available in this installation ({exc})") \
            from None
    try:
        settings = LocalSettings.from_env(host=args.host, port=args.port,
                                          state_dir=args.state_dir)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    print(f"klambda: starting on http://{args.host}:{args.port} (state in {args.state_dir}); "
          "Ctrl-C stops", file=sys.stderr)

    async def serve() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(run_local(settings, manifests=files, ready=ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            print(_ready_hint(args.host, args.port, first), file=sys.stderr)
        else:
            waiter.cancel()
        await task

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    except ApplyError as exc:
        raise UsageError("the manifests cannot be applied (the platform did not start):",
                         exc.errors) from None
    except OSError as exc:
        raise ServiceError(
            status=0, code="StartupError",
            message=f"cannot start: {exc} (is port {args.port} in use? choose another with "
            "--port)",
        ) from None
    print("klambda: stopped", file=sys.stderr)
    return EXIT_OK
