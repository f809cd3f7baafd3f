"""The admin HTTP API the CLI talks to, mounted under ``/klambda/v1/``.

| Method + path                                          | What                                   |
|--------------------------------------------------------|----------------------------------------|
| POST   /klambda/v1/apply[?namespace=ns]                | apply YAML/JSON documents (body text)  |
| POST   /klambda/v1/delete[?namespace=ns]               | delete the documents in the body       |
| DELETE /klambda/v1/{kind}/{namespace}/{name}           | delete one resource                    |
| GET    /klambda/v1/functions|versions|aliases|layers   | lists (?namespace=, ?function=)        |
| GET    /klambda/v1/eventsourcemappings                 | mappings (?namespace=, ?function=)     |
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from klambda_model import ValidationError, load_documents, parse_documents
from klambda_model.loader import document_label

from .local_registry import ApplyError, LocalRegistry, NotFoundError, RegistryError
from .management_api import management_routes
from .settings import GatewaySettings

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
    region: str | None = None,
    account_id: str | None = None,
    settings: GatewaySettings | None = None,
) -> list[web.RouteDef]:
    """The routes of the admin API (see the module docstring) plus the read-mostly subset
    of Lambda's management API (:func:`~klambda_gateway.management_api.management_routes`).
    ``settings`` (default: built from the ``KLAMBDA_*`` environment, as ``klambda up`` does)
    gives the region and account id of ARNs and GetAccountSettings' limits; explicit
    ``region`` / ``account_id`` win."""
    settings = settings if settings is not None else GatewaySettings.from_env()
    region = region or settings.region
    account_id = account_id or settings.account_id
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

    async def event_source_mappings(request: web.Request) -> web.StreamResponse:
        fn = request.query.get("function") or None
        return web.json_response(
            {"items": registry.list_event_source_mappings(_ns(request), fn)})

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
        web.get(f"{PREFIX}/eventsourcemappings", event_source_mappings),
        web.get(f"{PREFIX}/resources", resources),
        web.post(f"{PREFIX}/functions/{{namespace}}/{{name}}/versions", publish),
        web.get(f"{PREFIX}/logs/{{namespace}}/{{function}}", logs_handler),
        web.delete(f"{PREFIX}/{{kind}}/{{namespace}}/{{name}}", delete_one),
    ]
    guarded = [web.route(r.method, r.path, _guard(r.handler), **r.kwargs) for r in routes]
    return guarded + management_routes(registry, region=region, account_id=account_id,
                                       settings=settings)


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


__all__ = ["PREFIX", "admin_routes", "error_response", "management_routes"]
