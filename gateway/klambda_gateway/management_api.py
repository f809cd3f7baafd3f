"""The subset of Lambda's management API that klambda serves, in botocore's shapes.

Served from the registry (reads, plus PublishVersion): GetFunction, GetFunctionConfiguration,
ListFunctions, ListVersionsByFunction, PublishVersion, ListAliases, GetAlias,
GetFunctionConcurrency, GetFunctionEventInvokeConfig, ListFunctionEventInvokeConfigs,
GetAccountSettings, ListLayers, ListLayerVersions, GetLayerVersion, GetLayerVersionByArn.
Lists page like Lambda (``MaxItems``, at most 50 per page; opaque ``NextMarker``).

Every other Lambda route (any method under ``/<yyyy-mm-dd>/...``) answers 400
``InvalidParameterValueException`` saying it is not supported (for the operations that change
desired state: which manifest field or command does it instead), so botocore raises a
readable, non-retried ClientError instead of parsing aiohttp's plain-text 404.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from klambda_model import Function

from .admission import ConcurrencyLimits, unreserved_pool
from .arn import account_for_namespace, function_arn, namespace_for_account, parse_function_name
from .artifacts import MAX_DOWNLOAD_BYTES, MAX_UNZIPPED_BYTES
from .errors import InvalidParameterValue, InvokeError, ResourceNotFound
from .local_registry import LayerRecord, LocalRegistry, NotFoundError, VersionRecord
from .registry import LATEST, AliasConfig, Destination
from .settings import GatewaySettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")

PAGE_LIMIT = 50  # Lambda returns at most 50 items per page, even for a higher MaxItems
MAX_ITEMS_LIMIT = 10_000  # the model's bound of MaxItems
TOTAL_CODE_SIZE = 80_530_636_800  # Lambda's default (75 GB); not enforced locally
DOCS = "docs/resources.md"


class PreconditionFailed(InvokeError):
    status = 412
    code = "PreconditionFailedException"


# --- paging (pure) ---------------------------------------------------------------------------


def encode_marker(key: Sequence[str]) -> str:
    """Pure: an opaque marker for the item with sort key ``key`` (where the next page starts)."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_marker(raw: str, *, width: int) -> tuple[str, ...]:
    """Pure: the sort key in a marker of :func:`encode_marker`; InvalidParameterValue if it is
    not one (a key of ``width`` strings)."""
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        data = None
    if not (isinstance(data, list) and len(data) == width
            and all(isinstance(x, str) for x in data)):
        raise InvalidParameterValue(
            f"Marker {raw!r} is not valid: pass the NextMarker of the previous page unchanged, "
            "or omit Marker to start from the first page")
    return tuple(data)


def max_items(raw: str | None) -> int:
    """Pure: the page size for a MaxItems query value (default and cap :data:`PAGE_LIMIT`)."""
    if raw is None or raw == "":
        return PAGE_LIMIT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_ITEMS_LIMIT:
        raise InvalidParameterValue(
            f"MaxItems {raw!r} is not valid: use an integer from 1 to {MAX_ITEMS_LIMIT}")
    return min(value, PAGE_LIMIT)


def paginate(items: Sequence[tuple[tuple[str, ...], T]], *, marker: str | None,
             limit: int) -> tuple[list[T], str | None]:
    """Pure: one page of ``items`` (sorted by key) starting at ``marker`` -> (page, NextMarker).

    A marker holds the key of the first item of the next page, so paging stays consistent
    when items before it are added or deleted meanwhile."""
    start = 0
    if marker:
        width = len(items[0][0]) if items else 1
        key = decode_marker(marker, width=width)
        start = next((i for i, (k, _) in enumerate(items) if k >= key), len(items))
    page = items[start:start + limit]
    rest = items[start + limit:start + limit + 1]
    return [v for _, v in page], (encode_marker(rest[0][0]) if rest else None)


def version_key(version: str) -> str:
    """Pure: "$LATEST" first, then versions numerically ("$" sorts before digits)."""
    return version if version == LATEST else version.zfill(10)


# --- operations klambda does not serve -------------------------------------------------------

# (method, requestUri template, operation, what to do instead) of the unserved operations
# users reach for most; the others get a generic answer (botocore names the operation anyway)
_MANIFEST = f"`klambda apply -f` it ({DOCS})"
_HINTED = [
    ("POST", "/2015-03-31/functions", "CreateFunction",
     f"declare functions as manifests and `klambda apply -f` them ({DOCS})"),
    ("PUT", "/2015-03-31/functions/{}/code", "UpdateFunctionCode",
     f"change spec.code in the Function manifest and {_MANIFEST}"),
    ("PUT", "/2015-03-31/functions/{}/configuration", "UpdateFunctionConfiguration",
     f"change the Function manifest's spec and {_MANIFEST}"),
    ("DELETE", "/2015-03-31/functions/{}", "DeleteFunction",
     "use `klambda delete function NAME` (or `klambda delete -f` the manifest)"),
    ("POST", "/2015-03-31/functions/{}/aliases", "CreateAlias",
     f"declare an Alias manifest and {_MANIFEST}"),
    ("PUT", "/2015-03-31/functions/{}/aliases/{}", "UpdateAlias",
     f"change the Alias manifest and {_MANIFEST}"),
    ("DELETE", "/2015-03-31/functions/{}/aliases/{}", "DeleteAlias",
     "use `klambda delete alias NAME` (the Alias manifest's metadata.name)"),
    ("PUT", "/2017-10-31/functions/{}/concurrency", "PutFunctionConcurrency",
     f"set spec.reservedConcurrency in the Function manifest and {_MANIFEST}"),
    ("DELETE", "/2017-10-31/functions/{}/concurrency", "DeleteFunctionConcurrency",
     f"remove spec.reservedConcurrency from the Function manifest and {_MANIFEST}"),
    ("PUT", "/2019-09-25/functions/{}/event-invoke-config", "PutFunctionEventInvokeConfig",
     f"set spec.eventInvokeConfig in the Function manifest and {_MANIFEST}"),
    ("POST", "/2019-09-25/functions/{}/event-invoke-config", "UpdateFunctionEventInvokeConfig",
     f"set spec.eventInvokeConfig in the Function manifest and {_MANIFEST}"),
    ("DELETE", "/2019-09-25/functions/{}/event-invoke-config", "DeleteFunctionEventInvokeConfig",
     f"remove spec.eventInvokeConfig from the Function manifest and {_MANIFEST}"),
    ("PUT", "/2019-09-30/functions/{}/provisioned-concurrency", "PutProvisionedConcurrencyConfig",
     f"set spec.provisionedConcurrency in the Alias manifest and {_MANIFEST}"),
    ("POST", "/2018-10-31/layers/{}/versions", "PublishLayerVersion",
     f"declare a Layer manifest (every change publishes a version) and {_MANIFEST}"),
    ("POST", "/2015-03-31/event-source-mappings", "CreateEventSourceMapping",
     f"declare an EventSourceMapping manifest and {_MANIFEST}"),
    ("PUT", "/2015-03-31/event-source-mappings/{}", "UpdateEventSourceMapping",
     f"change the EventSourceMapping manifest and {_MANIFEST}"),
    ("DELETE", "/2015-03-31/event-source-mappings/{}", "DeleteEventSourceMapping",
     "use `klambda delete eventsourcemapping NAME`"),
]
_HINTED_ROUTES = [
    (method, re.compile("^" + re.escape(uri).replace(r"\{\}", "[^/]+") + "/?$"), op, hint)
    for method, uri, op, hint in _HINTED
]


def unsupported_message(method: str, path: str) -> str:
    """Pure: what a request of a management operation klambda does not serve gets told."""
    for m, pattern, op, hint in _HINTED_ROUTES:
        if m == method and pattern.match(path):
            return f"{op} is not supported by klambda: {hint}"
    return (f"this operation ({method} {path}) is not supported by klambda: the served subset "
            f"of Lambda's management API is listed in {DOCS}; desired state changes through "
            "manifests and `klambda apply -f`")


# --- the routes --------------------------------------------------------------------------------


def _lambda_error(exc: InvokeError) -> web.Response:
    resp = exc.response(str(uuid.uuid4()))
    return web.Response(status=resp.status, headers=resp.headers, body=resp.body)


def lambda_guard(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except InvokeError as exc:
            return _lambda_error(exc)
        except NotFoundError as exc:
            return _lambda_error(ResourceNotFound(str(exc)))
    return wrapped


def management_routes(
    registry: LocalRegistry, *, region: str, account_id: str,
    settings: GatewaySettings | None = None,
) -> list[web.RouteDef]:
    """The served subset (module docstring) — enough for boto3's waiters (function_active_v2,
    function_updated_v2, function_exists, published_version_active) — plus the JSON answer
    of every other Lambda route. ``settings`` gives GetAccountSettings its limits (default:
    the ``KLAMBDA_*`` environment, as ``klambda up`` builds them)."""
    limits = settings if settings is not None else GatewaySettings.from_env()

    def arn(ns: str, name: str, qualifier: str | None = None) -> str:
        return function_arn(ns, name, qualifier, region=region, account_id=account_id)

    def layer_arn(ns: str, name: str, version: int | None = None) -> str:
        account = account_for_namespace(ns, account_id=account_id)
        base = f"arn:aws:lambda:{region}:{account}:layer:{name}"
        return base if version is None else f"{base}:{version}"

    def configuration(rec: VersionRecord) -> dict[str, Any]:
        qualifier = None if rec.version == LATEST else rec.version
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
            "Layers": [{"Arn": layer_arn(rec.namespace, name, version)}
                       for name, version, _ in rec.layers],
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

    def page(request: web.Request, items: Sequence[tuple[tuple[str, ...], T]]
             ) -> tuple[list[T], dict[str, str]]:
        limit = max_items(request.query.get("MaxItems"))
        out, nxt = paginate(items, marker=request.query.get("Marker"), limit=limit)
        return out, ({"NextMarker": nxt} if nxt else {})

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
        items: list[tuple[tuple[str, ...], VersionRecord]] = []
        for cfg in registry.functions():
            if cfg.namespace != "default":
                continue
            recs = registry.version_records(cfg.namespace, cfg.name)
            items.extend(((r.function_name, version_key(r.version)), r)
                         for r in (recs if everything else recs[:1]))
        items.sort(key=lambda kv: kv[0])
        recs_page, extra = page(request, items)
        return web.json_response({"Functions": [configuration(r) for r in recs_page], **extra})

    async def list_versions(request: web.Request) -> web.StreamResponse:
        ns, name, _ = resolve(request)
        recs = registry.version_records(ns, name)
        if not recs:
            raise not_found(ns, name)
        items = sorted((((version_key(r.version),), r) for r in recs), key=lambda kv: kv[0])
        recs_page, extra = page(request, items)
        return web.json_response({"Versions": [configuration(r) for r in recs_page], **extra})

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
        version = request.query.get("FunctionVersion") or None
        desc = descriptions(ns, name)
        items = [((a.name,), alias_configuration(ns, a, desc.get(a.name, "")))
                 for a in registry.aliases()
                 if a.namespace == ns and a.function_name == name
                 and (version is None or a.function_version == version)]
        items.sort(key=lambda kv: kv[0])
        aliases, extra = page(request, items)
        return web.json_response({"Aliases": aliases, **extra})

    async def get_alias(request: web.Request) -> web.StreamResponse:
        ns, name, _ = resolve(request)
        alias_name = request.match_info["alias"]
        cfg = registry.alias(ns, name, alias_name)
        if cfg is None:
            raise ResourceNotFound(f"Alias not found: {arn(ns, name, alias_name)}")
        return web.json_response(
            alias_configuration(ns, cfg, descriptions(ns, name).get(alias_name, "")))

    async def get_concurrency(request: web.Request) -> web.StreamResponse:
        ns, name, _ = resolve(request)
        cfg = registry.function(ns, name)
        if cfg is None:
            raise not_found(ns, name)
        if cfg.reserved_concurrency is None:
            return web.json_response({})
        return web.json_response({"ReservedConcurrentExecutions": cfg.reserved_concurrency})

    def destination(ns: str, dest: Destination | None) -> dict[str, str] | None:
        if dest is None:
            return None
        if dest.arn:
            return {"Destination": dest.arn}
        fname, _, qualifier = dest.function.partition(":")
        return {"Destination": arn(ns, fname, qualifier or None)}

    def event_invoke_config(ns: str, name: str, qualifier: str | None
                            ) -> dict[str, Any] | None:
        cfg = registry.function(ns, name)
        if cfg is None:
            raise not_found(ns, name, qualifier)
        record(ns, name, qualifier)  # the qualifier must exist
        doc = next((d for d in registry.resources("Function", ns)
                    if isinstance(d, Function) and d.metadata.name == name), None)
        if doc is None or doc.spec.event_invoke_config is None:
            return None
        eic = cfg.event_invoke_config
        dests = {key: d for key, d in (("OnSuccess", destination(ns, eic.on_success)),
                                       ("OnFailure", destination(ns, eic.on_failure)))
                 if d is not None}
        head = registry.version_record(ns, name, LATEST)
        return {
            "LastModified": head.last_modified if head else "",
            "FunctionArn": arn(ns, name, qualifier),
            "MaximumRetryAttempts": eic.maximum_retry_attempts,
            "MaximumEventAgeInSeconds": eic.maximum_event_age_seconds,
            "DestinationConfig": dests,
        }

    async def get_event_invoke_config(request: web.Request) -> web.StreamResponse:
        ns, name, qualifier = resolve(request)
        out = event_invoke_config(ns, name, qualifier)
        if out is None:
            raise ResourceNotFound(
                f"The function {arn(ns, name, qualifier)} doesn't have an EventInvokeConfig "
                "(set spec.eventInvokeConfig in its manifest)")
        return web.json_response(out)

    async def list_event_invoke_configs(request: web.Request) -> web.StreamResponse:
        ns, name, _ = resolve(request)
        out = event_invoke_config(ns, name, None)
        return web.json_response({"FunctionEventInvokeConfigs": [out] if out else []})

    async def account_settings(request: web.Request) -> web.StreamResponse:
        functions = [f for f in registry.functions() if f.namespace == "default"]
        reserved = sum(f.reserved_concurrency or 0 for f in functions)
        pool = unreserved_pool(
            ConcurrencyLimits(limits.account_concurrency, limits.unreserved_floor), reserved)
        code_sizes = {r.code_sha256: r.code_size for f in functions
                      for r in registry.version_records(f.namespace, f.name)}
        code_sizes.update({r.code_sha256: r.code_size for r in registry.layer_records("default")})
        return web.json_response({
            "AccountLimit": {
                "TotalCodeSize": TOTAL_CODE_SIZE, "CodeSizeUnzipped": MAX_UNZIPPED_BYTES,
                "CodeSizeZipped": MAX_DOWNLOAD_BYTES,
                "ConcurrentExecutions": limits.account_concurrency,
                "UnreservedConcurrentExecutions": pool,
            },
            "AccountUsage": {"TotalCodeSize": sum(code_sizes.values()),
                             "FunctionCount": len(functions)},
        })

    def layer_ref(raw: str) -> tuple[str, str]:
        if raw.startswith("arn:"):
            parts = raw.split(":")
            if len(parts) != 7 or parts[5] != "layer":
                raise InvalidParameterValue(
                    f"{raw!r} is not a layer ARN: expected "
                    "arn:aws:lambda:<region>:<account>:layer:<name>")
            return namespace_for_account(parts[4], account_id=account_id), parts[6]
        return "default", raw

    def layer_version(rec: LayerRecord, *, content: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "LayerVersionArn": layer_arn(rec.namespace, rec.name, rec.version),
            "Version": rec.version, "Description": rec.description,
            "CreatedDate": rec.created, "CompatibleRuntimes": list(rec.compatible_runtimes),
            "CompatibleArchitectures": ["x86_64"],
        }
        if content:
            out["LayerArn"] = layer_arn(rec.namespace, rec.name)
            out["Content"] = {"Location": Path(rec.path).as_uri(),
                              "CodeSha256": rec.code_sha256, "CodeSize": rec.code_size}
        return out

    def runtime_matches(request: web.Request, rec: LayerRecord) -> bool:
        runtime = request.query.get("CompatibleRuntime")
        return not runtime or runtime in rec.compatible_runtimes

    def get_layer_version_record(ns: str, name: str, version: str) -> LayerRecord:
        for rec in registry.layer_records(ns, name):
            if str(rec.version) == version:
                return rec
        raise ResourceNotFound(
            f"The resource you requested does not exist: {layer_arn(ns, name)}:{version}")

    async def list_layers(request: web.Request) -> web.StreamResponse:
        if request.query.get("find") == "LayerVersion":  # GetLayerVersionByArn
            raw = request.query.get("Arn", "")
            base, _, version = raw.rpartition(":")
            ns, name = layer_ref(base)
            return web.json_response(
                layer_version(get_layer_version_record(ns, name, version), content=True))
        latest: dict[str, LayerRecord] = {}
        for rec in registry.layer_records("default"):
            if runtime_matches(request, rec):
                latest[rec.name] = rec  # records come in version order
        items = [((name,), {"LayerName": name, "LayerArn": layer_arn("default", name),
                            "LatestMatchingVersion": layer_version(rec)})
                 for name, rec in sorted(latest.items())]
        layers, extra = page(request, items)
        return web.json_response({"Layers": layers, **extra})

    async def list_layer_versions(request: web.Request) -> web.StreamResponse:
        ns, name = layer_ref(request.match_info["layer"])
        recs = [r for r in registry.layer_records(ns, name) if runtime_matches(request, r)]
        # newest first, as Lambda lists them
        items = [((str(10**10 - r.version).zfill(11),), layer_version(r)) for r in recs]
        items.sort(key=lambda kv: kv[0])
        versions, extra = page(request, items)
        return web.json_response({"LayerVersions": versions, **extra})

    async def get_layer_version(request: web.Request) -> web.StreamResponse:
        ns, name = layer_ref(request.match_info["layer"])
        rec = get_layer_version_record(ns, name, request.match_info["version"])
        return web.json_response(layer_version(rec, content=True))

    async def unsupported(request: web.Request) -> web.StreamResponse:
        raise InvalidParameterValue(unsupported_message(request.method, request.path))

    fn = "/2015-03-31/functions"
    layers = "/2018-10-31/layers"
    routes = [
        web.get(f"{fn}/", list_functions),
        web.get(fn, list_functions),
        web.get(f"{fn}/{{name}}", get_function),
        web.get(f"{fn}/{{name}}/configuration", get_configuration),
        web.get(f"{fn}/{{name}}/versions", list_versions),
        web.post(f"{fn}/{{name}}/versions", publish_version),
        web.get(f"{fn}/{{name}}/aliases", list_aliases),
        web.get(f"{fn}/{{name}}/aliases/{{alias}}", get_alias),
        web.get("/2019-09-30/functions/{name}/concurrency", get_concurrency),
        web.get("/2019-09-25/functions/{name}/event-invoke-config", get_event_invoke_config),
        web.get("/2019-09-25/functions/{name}/event-invoke-config/list",
                list_event_invoke_configs),
        web.get("/2016-08-19/account-settings", account_settings),
        web.get("/2016-08-19/account-settings/", account_settings),
        web.get(layers, list_layers),
        web.get(f"{layers}/", list_layers),
        web.get(f"{layers}/{{layer}}/versions", list_layer_versions),
        web.get(f"{layers}/{{layer}}/versions/{{version}}", get_layer_version),
        # last resort of every other Lambda route (aiohttp tries longer prefixes first)
        web.route("*", r"/{date:20\d\d-\d\d-\d\d}{tail:(?:/.*)?}", unsupported),
    ]
    return [web.route(r.method, r.path, lambda_guard(r.handler), **r.kwargs) for r in routes]


__all__ = ["PreconditionFailed", "decode_marker", "encode_marker", "management_routes",
           "max_items", "paginate", "unsupported_message"]
