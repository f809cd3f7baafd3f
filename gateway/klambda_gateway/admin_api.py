"""The admin HTTP API the CLI talks to, mounted under ``/klambda/v1/``.

| Method + path                                          | What                                   |
|--------------------------------------------------------|----------------------------------------|
| POST   /klambda/v1/apply[?namespace=ns]                | apply YAML/JSON documents (body text)  |
| POST   /klambda/v1/delete[?namespace=ns]               | delete the documents in the body       |
| DELETE /klambda/v1/{kind}/{namespace}/{name}           | delete one resource                    |
| GET    /klambda/v1/functions|versions|aliases|layers   | lists (?namespace=, ?function=)        |
| GET    /klambda/v1/resources[?kind=&namespace=]        | the applied documents                  |
| POST   /klambda/v1/functions/{namespace}/{name}/versions | publish a version ({"description"})  |
| GET    /klambda/v1/logs/{namespace}/{function}         | the function's log (?tail=N&follow=1)  |

Errors are JSON ``{"error": {"type": ..., "message": ..., "errors": [...]}}`` with 400
(invalid documents), 404 (unknown resource) or 500.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from klambda_model import ValidationError, load_documents, parse_documents
from klambda_model.loader import document_label

from .arn import account_for_namespace, function_arn, parse_function_name
from .errors import InvalidParameterValue, InvokeError, ResourceNotFound
from .local_registry import (
    ApplyError,
    LocalRegistry,
    NotFoundError,
    RegistryError,
    VersionRecord,
)
from .registry import LATEST, AliasConfig

PREFIX = "/klambda/v1"
MAX_BODY_BYTES = 16 * 1024 * 1024
FOLLOW_POLL_S = 0.2
MAX_TAIL_LINES = 100_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, type_: str, message: str, errors: list[str] | None = None
                   ) -> web.Response:
    body: dict[str, Any] = {"type": type_, "message": message}
    if errors is not None:
        body["errors"] = errors
    return web.json_response({"error": body}, status=status)


def _guard(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ValidationError as exc:
            return error_response(400, "ValidationError", str(exc), exc.errors)
        except ApplyError as exc:
            return error_response(400, exc.type, str(exc), exc.errors)
        except NotFoundError as exc:
            return error_response(404, exc.type, str(exc))
        except RegistryError as exc:
            return error_response(exc.status, exc.type, str(exc))
    return wrapped


async def _read_text(request: web.Request) -> str:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ValidationError([f"the request body is larger than {MAX_BODY_BYTES} bytes"])
    data = await request.content.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise ValidationError([f"the request body is larger than {MAX_BODY_BYTES} bytes"])
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ValidationError(["the request body is not UTF-8 text (YAML or JSON)"]) from None


def admin_routes(
    registry: LocalRegistry,
    *,
    logs_dir: Path | str,
    region: str = "us-east-1",
    account_id: str = "000000000000",
) -> list[web.RouteDef]:
    """The routes of the admin API (see the module docstring) plus the read-mostly subset
    of Lambda's management API (:func:`management_routes`)."""
    logs = Path(logs_dir)

    async def apply(request: web.Request) -> web.StreamResponse:
        text = await _read_text(request)
        source = request.query.get("source", "<request>")
        resources = load_documents(
            text, source=source, default_namespace=request.query.get("namespace")
        )
        if not resources:
            raise ValidationError([f"{source}: no documents found"])
        results = await asyncio.to_thread(registry.apply, resources)
        return web.json_response({"results": results})

    async def delete_docs(request: web.Request) -> web.StreamResponse:
        text = await _read_text(request)
        source = request.query.get("source", "<request>")
        namespace = request.query.get("namespace") or "default"
        keys: list[tuple[str, str, str]] = []
        errors: list[str] = []
        for index, doc in enumerate(parse_documents(text, source=source)):
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            kind = doc.get("kind") if isinstance(doc, dict) else None
            name = meta.get("name") if isinstance(meta, dict) else None
            if not isinstance(kind, str) or not isinstance(name, str):
                errors.append(f"{document_label(doc, index, source)}: kind and metadata.name "
                              "are required to delete")
                continue
            keys.append((kind, meta.get("namespace") or namespace, name))  # type: ignore[union-attr]
        if errors:
            raise ValidationError(errors)
        results = await asyncio.to_thread(registry.delete, keys)
        return web.json_response({"results": results})

    async def delete_one(request: web.Request) -> web.StreamResponse:
        m = request.match_info
        results = await asyncio.to_thread(
            registry.delete, [(m["kind"], m["namespace"], m["name"])]
        )
        return web.json_response({"results": results})

    def _ns(request: web.Request) -> str | None:
        return request.query.get("namespace") or None

    async def functions(request: web.Request) -> web.StreamResponse:
        return web.json_response({"items": registry.list_functions(_ns(request))})

    async def versions(request: web.Request) -> web.StreamResponse:
        fn = request.query.get("function") or None
        items = registry.list_versions(_ns(request), fn)
        if fn is not None and not items:
            raise NotFoundError(f'function "{fn}" does not exist')
        return web.json_response({"items": items})

    async def aliases(request: web.Request) -> web.StreamResponse:
        fn = request.query.get("function") or None
        return web.json_response({"items": registry.list_aliases(_ns(request), fn)})

    async def layers(request: web.Request) -> web.StreamResponse:
        return web.json_response({"items": registry.list_layers(_ns(request))})

    async def resources(request: web.Request) -> web.StreamResponse:
        from klambda_model import to_document

        from .local_registry import normalize_kind

        kind = request.query.get("kind")
        docs = registry.resources(normalize_kind(kind) if kind else None, _ns(request))
        return web.json_response({"items": [to_document(d) for d in docs]})

    async def publish(request: web.Request) -> web.StreamResponse:
        m = request.match_info
        description = ""
        if request.can_read_body:
            text = await _read_text(request)
            if text.strip():
                try:
                    body = json.loads(text)
                except ValueError:
                    raise ValidationError(['the body must be JSON: {"description": "..."}']) \
                        from None
                description = str(body.get("description", "")) if isinstance(body, dict) else ""
        before = registry.function(m["namespace"], m["name"])
        count = len(before.published_versions) if before else 0
        rec = await asyncio.to_thread(
            registry.publish_version_record, m["namespace"], m["name"], description
        )
        after = registry.function(m["namespace"], m["name"])
        created = after is not None and len(after.published_versions) > count
        return web.json_response(
            {
                "version": rec.version, "revision": rec.revision, "codeSha256": rec.code_sha256,
                "description": rec.description, "lastModified": rec.last_modified,
                "created": created,
            },
            status=201 if created else 200,
        )

    async def logs_handler(request: web.Request) -> web.StreamResponse:
        ns, fn = request.match_info["namespace"], request.match_info["function"]
        if registry.function(ns, fn) is None:
            raise NotFoundError(f'function "{fn}" does not exist in namespace "{ns}"')
        try:
            tail = int(request.query.get("tail", "-1"))
        except ValueError:
            raise ValidationError(["tail must be a number of lines"]) from None
        follow = request.query.get("follow", "") in ("1", "true", "yes")
        path = logs / ns / f"{fn}.log"
        if not path.exists() and not follow:
            raise NotFoundError(
                f'no logs yet for function "{fn}": it has not run since the platform started '
                "(invoke it first)"
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await resp.prepare(request)
        offset = 0
        try:
            if path.exists():
                data, offset = _tail(path, tail)
                if data:
                    await resp.write(data)
            while follow:
                if request.transport is None or request.transport.is_closing():
                    break
                try:
                    size = os.path.getsize(path)
                except OSError:
                    size = 0
                if size < offset:  # truncated / rotated
                    offset = 0
                if size > offset:
                    chunk = _read_range(path, offset, size)
                    offset += len(chunk)
                    await resp.write(chunk)
                else:
                    await asyncio.sleep(FOLLOW_POLL_S)
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away (Ctrl-C on `klambda logs -f`)
        return resp

    routes = [
        web.post(f"{PREFIX}/apply", apply),
        web.post(f"{PREFIX}/delete", delete_docs),
        web.get(f"{PREFIX}/functions", functions),
        web.get(f"{PREFIX}/versions", versions),
        web.get(f"{PREFIX}/aliases", aliases),
        web.get(f"{PREFIX}/layers", layers),
        web.get(f"{PREFIX}/resources", resources),
        web.post(f"{PREFIX}/functions/{{namespace}}/{{name}}/versions", publish),
        web.get(f"{PREFIX}/logs/{{namespace}}/{{function}}", logs_handler),
        web.delete(f"{PREFIX}/{{kind}}/{{namespace}}/{{name}}", delete_one),
    ]
    guarded = [web.route(r.method, r.path, _guard(r.handler), **r.kwargs) for r in routes]
    return guarded + management_routes(registry, region=region, account_id=account_id)


def _read_range(path: Path, start: int, end: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(end - start)


def _tail(path: Path, lines: int, *, block: int = 65536) -> tuple[bytes, int]:
    """The last ``lines`` lines of ``path`` (all if negative) and the file size read.
    Reads backwards in blocks, so a tail of a large log costs what it returns."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        if lines < 0:
            fh.seek(0)
            return fh.read(size), size
        lines = min(lines, MAX_TAIL_LINES)
        if lines == 0:
            return b"", size
        data = b""
        pos = size
        # one more newline than lines: the file's last line normally ends with one
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    parts = data.splitlines(keepends=True)
    if pos > 0:
        parts = parts[1:]  # the first part may be the end of a longer line
    return b"".join(parts[-lines:]), size


# --- Lambda management API subset (reference §2), botocore shapes --------------------------


class PreconditionFailed(InvokeError):
    status = 412
    code = "PreconditionFailedException"


def _lambda_error(exc: InvokeError) -> web.Response:
    resp = exc.response(str(uuid.uuid4()))
    return web.Response(status=resp.status, headers=resp.headers, body=resp.body)


def management_routes(
    registry: LocalRegistry, *, region: str, account_id: str
) -> list[web.RouteDef]:
    """GetFunction, GetFunctionConfiguration, ListFunctions, PublishVersion,
    ListVersionsByFunction, ListAliases, GetAlias — enough for boto3's waiters
    (function_active_v2, function_updated_v2, function_exists, published_version_active)."""

    def arn(ns: str, name: str, qualifier: str | None = None) -> str:
        return function_arn(ns, name, qualifier, region=region, account_id=account_id)

    def configuration(rec: VersionRecord) -> dict[str, Any]:
        qualifier = None if rec.version == LATEST else rec.version
        account = account_for_namespace(rec.namespace, account_id=account_id)
        return {
            "FunctionName": rec.function_name,
            "FunctionArn": arn(rec.namespace, rec.function_name, qualifier),
            "Runtime": rec.runtime,
            "Role": rec.role or f"arn:aws:iam::{account_id}:role/klambda",
            "Handler": rec.handler, "CodeSize": rec.code_size, "Description": rec.description,
            "Timeout": rec.timeout, "MemorySize": rec.memory_size,
            "LastModified": rec.last_modified, "CodeSha256": rec.code_sha256,
            "Version": rec.version, "Environment": {"Variables": dict(rec.environment)},
            "RevisionId": rec.revision,
            "Layers": [
                {"Arn": f"arn:aws:lambda:{region}:{account}:layer:{name}:{version}"}
                for name, version, _ in rec.layers
            ],
            "State": "Active", "LastUpdateStatus": "Successful", "PackageType": "Zip",
            "Architectures": ["x86_64"],
        }

    def resolve(request: web.Request) -> tuple[str, str, str | None]:
        ref = parse_function_name(request.match_info["name"], request.query.get("Qualifier"),
                                  account_id=account_id)
        return ref.namespace, ref.name, ref.qualifier

    def not_found(ns: str, name: str, qualifier: str | None = None) -> ResourceNotFound:
        return ResourceNotFound(f"Function not found: {arn(ns, name, qualifier)}")

    def record(ns: str, name: str, qualifier: str | None) -> VersionRecord:
        version = qualifier or LATEST
        if qualifier and not (qualifier == LATEST or qualifier.isdigit()):
            alias = registry.alias(ns, name, qualifier)
            if alias is None:
                raise not_found(ns, name, qualifier)
            version = alias.function_version
        rec = registry.version_record(ns, name, version)
        if rec is None:
            raise not_found(ns, name, qualifier)
        return rec

    def lambda_guard(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except InvokeError as exc:
                return _lambda_error(exc)
            except NotFoundError as exc:
                return _lambda_error(ResourceNotFound(str(exc)))
        return wrapped

    async def get_function(request: web.Request) -> web.StreamResponse:
        ns, name, qualifier = resolve(request)
        rec = record(ns, name, qualifier)
        body: dict[str, Any] = {
            "Configuration": configuration(rec),
            "Code": {"RepositoryType": "S3", "Location": Path(rec.code_dir).as_uri()},
        }
        cfg = registry.function(ns, name)
        if cfg is not None and cfg.reserved_concurrency is not None:
            body["Concurrency"] = {"ReservedConcurrentExecutions": cfg.reserved_concurrency}
        return web.json_response(body)

    async def get_configuration(request: web.Request) -> web.StreamResponse:
        ns, name, qualifier = resolve(request)
        return web.json_response(configuration(record(ns, name, qualifier)))

    async def list_functions(request: web.Request) -> web.StreamResponse:
        everything = request.query.get("FunctionVersion") == "ALL"
        items: list[dict[str, Any]] = []
        for cfg in registry.functions():
            if cfg.namespace != "default":
                continue
            recs = registry.version_records(cfg.namespace, cfg.name)
            items.extend(configuration(r) for r in (recs if everything else recs[:1]))
        return web.json_response({"Functions": items})

    async def list_versions(request: web.Request) -> web.StreamResponse:
        ns, name, _ = resolve(request)
        recs = registry.version_records(ns, name)
        if not recs:
            raise not_found(ns, name)
        return web.json_response({"Versions": [configuration(r) for r in recs]})

    async def publish_version(request: web.Request) -> web.StreamResponse:
        ns, name, _ = resolve(request)
        body: dict[str, Any] = {}
        if request.can_read_body:
            try:
                body = json.loads(await request.read() or b"{}")
            except ValueError:
                raise InvalidParameterValue("the request body is not JSON") from None
        head = registry.version_record(ns, name, LATEST)
        if head is None:
            raise not_found(ns, name)
        if body.get("CodeSha256") and body["CodeSha256"] != head.code_sha256:
            raise PreconditionFailed(
                f"CodeSha256 ({body['CodeSha256']}) does not match the code of $LATEST "
                f"({head.code_sha256}): the code changed; fetch it again"
            )
        if body.get("RevisionId") and body["RevisionId"] != head.revision:
            raise PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id; fetch the "
                "function again"
            )
        rec = await asyncio.to_thread(
            registry.publish_version_record, ns, name, str(body.get("Description") or "")
        )
        return web.json_response(configuration(rec), status=201)

    def alias_configuration(ns: str, cfg: AliasConfig, description: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "AliasArn": arn(ns, cfg.function_name, cfg.name), "Name": cfg.name,
            "FunctionVersion": cfg.function_version, "Description": description,
            "RevisionId": str(uuid.uuid5(uuid.NAMESPACE_URL, repr(cfg))),
        }
        if cfg.additional_version_weights:
            out["RoutingConfig"] = {
                "AdditionalVersionWeights": dict(cfg.additional_version_weights)}
        return out

    def descriptions(ns: str, name: str) -> dict[str, str]:
        return {a["name"]: a["description"] for a in registry.list_aliases(ns, name)}

    async def list_aliases(request: web.Request) -> web.StreamResponse:
        ns, name, _ = resolve(request)
        if registry.function(ns, name) is None:
            raise not_found(ns, name)
        desc = descriptions(ns, name)
        items = [alias_configuration(ns, a, desc.get(a.name, "")) for a in registry.aliases()
                 if a.namespace == ns and a.function_name == name]
        return web.json_response({"Aliases": items})

    async def get_alias(request: web.Request) -> web.StreamResponse:
        ns, name, _ = resolve(request)
        alias_name = request.match_info["alias"]
        cfg = registry.alias(ns, name, alias_name)
        if cfg is None:
            raise ResourceNotFound(f"Alias not found: {arn(ns, name, alias_name)}")
        return web.json_response(
            alias_configuration(ns, cfg, descriptions(ns, name).get(alias_name, "")))

    base = "/2015-03-31/functions"
    routes = [
        web.get(f"{base}/", list_functions),
        web.get(base, list_functions),
        web.get(f"{base}/{{name}}", get_function),
        web.get(f"{base}/{{name}}/configuration", get_configuration),
        web.get(f"{base}/{{name}}/versions", list_versions),
        web.post(f"{base}/{{name}}/versions", publish_version),
        web.get(f"{base}/{{name}}/aliases", list_aliases),
        web.get(f"{base}/{{name}}/aliases/{{alias}}", get_alias),
    ]
    return [web.route(r.method, r.path, lambda_guard(r.handler), **r.kwargs) for r in routes]


__all__ = ["PREFIX", "admin_routes", "error_response", "management_routes"]
