"""The Lambda management API subset, judged by real boto3/botocore against a real HTTP
server: GetFunction (+ the function_active_v2 / function_exists waiters),
GetFunctionConfiguration, ListFunctions, PublishVersion (idempotent, CodeSha256 / RevisionId
preconditions), ListVersionsByFunction, ListAliases, GetAlias, and modelled errors; paging (MaxItems,
Marker), the ListAliases FunctionVersion filter, GetFunctionConcurrency, event-invoke-config,
GetAccountSettings, layers, and the JSON 400 of every unserved Lambda route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from klambda_model import load_documents

from .adminserver import AdminServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AdminServer]:
    srv = AdminServer(tmp_path / "state")
    srv.registry.apply(load_documents((REPO / "examples" / "layer.yaml").read_text()))
    srv.registry.apply(load_documents((REPO / "examples" / "alias.yaml").read_text()))
    srv.registry.apply(load_documents(
        (REPO / "examples" / "canary-step-2" / "alias-canary.yaml").read_text()))
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def client(server: AdminServer) -> Any:
    return boto3.client(
        "lambda", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}),
    )


def test_get_function_and_waiters(client: Any) -> None:
    client.get_waiter("function_exists").wait(FunctionName="greeter-with-layer",
                                              WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    client.get_waiter("function_active_v2").wait(FunctionName="greeter-with-layer",
                                                 WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    out = client.get_function(FunctionName="greeter-with-layer")
    cfg = out["Configuration"]
    assert cfg["FunctionArn"] == (
        "arn:aws:lambda:us-east-1:000000000000:function:greeter-with-layer")
    assert (cfg["Runtime"], cfg["Handler"], cfg["Version"], cfg["State"]) == (
        "python3.12", "app.handler", "$LATEST", "Active")
    assert cfg["Layers"] == [
        {"Arn": "arn:aws:lambda:us-east-1:000000000000:layer:shared-deps:1"}]
    assert len(cfg["CodeSha256"]) == 44


def test_qualified_configuration_and_arns(client: Any) -> None:
    by_alias = client.get_function_configuration(FunctionName="canary", Qualifier="live")
    assert by_alias["Version"] == "1"
    by_arn = client.get_function_configuration(
        FunctionName="arn:aws:lambda:us-east-1:000000000000:function:canary:2")
    assert by_arn["FunctionArn"].endswith(":function:canary:2")


def test_list_functions_and_versions(client: Any) -> None:
    names = sorted(f["FunctionName"] for f in client.list_functions()["Functions"])
    assert names == ["canary", "greeter-with-layer"]
    versions = client.list_versions_by_function(FunctionName="canary")["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
    everything = client.list_functions(FunctionVersion="ALL")["Functions"]
    assert len(everything) == 4


def test_publish_version(client: Any) -> None:
    head = client.get_function_configuration(FunctionName="greeter-with-layer")
    first = client.publish_version(FunctionName="greeter-with-layer", Description="v1",
                                   CodeSha256=head["CodeSha256"])
    assert (first["Version"], first["Description"]) == ("1", "v1")
    again = client.publish_version(FunctionName="greeter-with-layer")
    assert again["Version"] == "1"
    client.get_waiter("published_version_active").wait(
        FunctionName="greeter-with-layer", Qualifier="1",
        WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    with pytest.raises(client.exceptions.PreconditionFailedException):
        client.publish_version(FunctionName="greeter-with-layer", RevisionId="stale")


def test_aliases(client: Any) -> None:
    alias = client.get_alias(FunctionName="canary", Name="live")
    assert alias["AliasArn"] == "arn:aws:lambda:us-east-1:000000000000:function:canary:live"
    assert alias["FunctionVersion"] == "1"
    assert alias["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.2}}
    assert [a["Name"] for a in client.list_aliases(FunctionName="canary")["Aliases"]] == ["live"]


def test_errors_are_modelled(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        client.get_function(FunctionName="nope")
    assert "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope" in str(
        info.value)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName="canary", Qualifier="7")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_alias(FunctionName="canary", Name="dark")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.publish_version(FunctionName="nope")


# --- paging, filters, the read-only extras, unserved operations ------------------------------

EXTRA = """
apiVersion: klambda.io/v1alpha1
kind: Function
metadata: {name: capped}
spec:
  runtime: python3.12
  handler: app.handler
  reservedConcurrency: 7
  code: {inline: {app.py: "def handler(e, c):\\n    return 1\\n"}}
"""


def test_list_functions_pages_with_max_items_and_marker(client: Any) -> None:
    first = client.list_functions(MaxItems=1)
    assert [f["FunctionName"] for f in first["Functions"]] == ["canary"]
    second = client.list_functions(MaxItems=1, Marker=first["NextMarker"])
    assert [f["FunctionName"] for f in second["Functions"]] == ["greeter-with-layer"]
    assert "NextMarker" not in second
    pages = client.get_paginator("list_functions").paginate(
        FunctionVersion="ALL", PaginationConfig={"PageSize": 3})
    listed = [(f["FunctionName"], f["Version"]) for p in pages for f in p["Functions"]]
    assert listed == [("canary", "$LATEST"), ("canary", "1"), ("canary", "2"),
                      ("greeter-with-layer", "$LATEST")]


def test_list_versions_pages(client: Any) -> None:
    first = client.list_versions_by_function(FunctionName="canary", MaxItems=2)
    assert [v["Version"] for v in first["Versions"]] == ["$LATEST", "1"]
    rest = client.list_versions_by_function(FunctionName="canary", Marker=first["NextMarker"])
    assert [v["Version"] for v in rest["Versions"]] == ["2"] and "NextMarker" not in rest


def test_invalid_marker_is_invalid_parameter_value(client: Any) -> None:
    with pytest.raises(client.exceptions.InvalidParameterValueException) as info:
        client.list_functions(Marker="not-a-marker")
    assert "NextMarker of the previous page" in str(info.value)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.list_versions_by_function(FunctionName="canary", Marker="WzEsMl0")  # [1,2]


def test_page_size_is_capped_at_50(tmp_path: Path) -> None:
    docs = "\n---\n".join(
        EXTRA.replace("name: capped", f"name: fn-{i:02d}") for i in range(53))
    srv = AdminServer(tmp_path / "many")
    try:
        srv.registry.apply(load_documents(docs))
        lam = boto3.client("lambda", endpoint_url=srv.endpoint, region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="x")
        first = lam.list_functions(MaxItems=1000)
        assert len(first["Functions"]) == 50 and first["NextMarker"]
        rest = lam.list_functions(Marker=first["NextMarker"])
        assert [f["FunctionName"] for f in rest["Functions"]] == ["fn-50", "fn-51", "fn-52"]
    finally:
        srv.close()


def test_list_aliases_filtered_by_function_version(client: Any) -> None:
    assert client.list_aliases(FunctionName="canary", FunctionVersion="2")["Aliases"] == []
    one = client.list_aliases(FunctionName="canary", FunctionVersion="1")["Aliases"]
    assert [a["Name"] for a in one] == ["live"]


def test_function_concurrency(server: AdminServer, client: Any) -> None:
    server.registry.apply(load_documents(EXTRA))
    got = client.get_function_concurrency(FunctionName="capped")
    assert got["ReservedConcurrentExecutions"] == 7
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(
        FunctionName="canary")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function_concurrency(FunctionName="nope")


def test_event_invoke_config(server: AdminServer, client: Any) -> None:
    server.registry.apply(load_documents((REPO / "examples" / "async.yaml").read_text()))
    cfg = client.get_function_event_invoke_config(FunctionName="orders")
    assert cfg["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:orders"
    assert (cfg["MaximumRetryAttempts"], cfg["MaximumEventAgeInSeconds"]) == (1, 3600)
    assert cfg["DestinationConfig"] == {"OnFailure": {
        "Destination": "arn:aws:lambda:us-east-1:000000000000:function:audit"}}
    assert cfg["LastModified"].year >= 2024  # botocore parsed the timestamp
    listed = client.list_function_event_invoke_configs(FunctionName="orders")
    assert len(listed["FunctionEventInvokeConfigs"]) == 1
    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        client.get_function_event_invoke_config(FunctionName="audit")
    assert "doesn't have an EventInvokeConfig" in str(info.value)
    assert client.list_function_event_invoke_configs(
        FunctionName="audit")["FunctionEventInvokeConfigs"] == []


def test_settings_give_account_limits_region_and_account(tmp_path: Path) -> None:
    from klambda_gateway.settings import GatewaySettings

    settings = GatewaySettings(account_concurrency=20, unreserved_floor=15,
                               region="eu-west-1", account_id="123456789012")
    srv = AdminServer(tmp_path / "acct", settings=settings)
    try:
        srv.registry.apply(load_documents(EXTRA))  # reserves 7: 20 - 7 < floor 15
        lam = boto3.client("lambda", endpoint_url=srv.endpoint, region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="x")
        out = lam.get_account_settings()
        assert out["AccountLimit"]["ConcurrentExecutions"] == 20
        assert out["AccountLimit"]["UnreservedConcurrentExecutions"] == 15
        assert out["AccountUsage"]["FunctionCount"] == 1
        assert out["AccountUsage"]["TotalCodeSize"] > 0
        arn = lam.get_function(FunctionName="capped")["Configuration"]["FunctionArn"]
        assert arn == "arn:aws:lambda:eu-west-1:123456789012:function:capped"
    finally:
        srv.close()


def test_layers(client: Any) -> None:
    layers = client.list_layers(CompatibleRuntime="python3.12")["Layers"]
    assert [(la["LayerName"], la["LatestMatchingVersion"]["Version"]) for la in layers] == [
        ("shared-deps", 1)]
    assert client.list_layers(CompatibleRuntime="python3.11")["Layers"] != []
    versions = client.list_layer_versions(LayerName="shared-deps")["LayerVersions"]
    assert [v["Version"] for v in versions] == [1]
    got = client.get_layer_version(LayerName="shared-deps", VersionNumber=1)
    assert got["LayerVersionArn"] == "arn:aws:lambda:us-east-1:000000000000:layer:shared-deps:1"
    assert len(got["Content"]["CodeSha256"]) == 44
    by_arn = client.get_layer_version_by_arn(Arn=got["LayerVersionArn"])
    assert by_arn["Content"] == got["Content"]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_layer_version(LayerName="shared-deps", VersionNumber=9)


def test_unserved_operations_are_readable_client_errors(client: Any) -> None:
    with pytest.raises(client.exceptions.InvalidParameterValueException) as info:
        client.create_function(FunctionName="x", Role="arn:aws:iam::1:role/r",
                               Code={"ZipFile": b"PK"}, Runtime="python3.12", Handler="a.b")
    assert str(info.value) == (
        "An error occurred (InvalidParameterValueException) when calling the CreateFunction "
        "operation: CreateFunction is not supported by klambda: declare functions as manifests "
        "and `klambda apply -f` them (docs/resources.md)")
    with pytest.raises(client.exceptions.InvalidParameterValueException) as info:
        client.put_function_concurrency(FunctionName="canary", ReservedConcurrentExecutions=1)
    assert "spec.reservedConcurrency" in str(info.value)
    with pytest.raises(client.exceptions.InvalidParameterValueException) as info:
        client.update_function_configuration(FunctionName="canary", Timeout=9)
    assert "UpdateFunctionConfiguration is not supported by klambda" in str(info.value)
    assert info.value.response["ResponseMetadata"]["RetryAttempts"] == 0


def test_every_lambda_route_answers_json(server: AdminServer) -> None:
    """Every operation of botocore's Lambda model gets a JSON answer botocore can parse
    (served, or 400 InvalidParameterValueException saying it is not supported), never a
    plain-text 404; the operations users reach for most are named, with what to do instead."""
    import json
    import urllib.error
    import urllib.request

    import botocore.session

    model = botocore.session.get_session().get_service_model("lambda")
    served = {"GetFunction", "GetFunctionConfiguration", "ListFunctions", "PublishVersion",
              "ListVersionsByFunction", "ListAliases", "GetAlias", "GetFunctionConcurrency",
              "GetFunctionEventInvokeConfig", "ListFunctionEventInvokeConfigs",
              "GetAccountSettings", "ListLayers", "ListLayerVersions", "GetLayerVersion",
              "GetLayerVersionByArn"}
    named = 0
    for op_name in model.operation_names:
        op = model.operation_model(op_name)
        uri = op.http["requestUri"].split("?")[0]
        path = "/".join("canary" if p.startswith("{") else p for p in uri.split("/"))
        if op_name == "GetLayerVersion":
            path = path.replace("/versions/canary", "/versions/1")
        req = urllib.request.Request(server.endpoint + path, method=op.http["method"],
                                     data=b"{}" if op.http["method"] in ("POST", "PUT") else None)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, headers, body = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            status, headers, body = exc.code, exc.headers, exc.read()
        assert headers["Content-Type"].startswith("application/json"), (op_name, status, body)
        if op_name in served or op_name in ("Invoke", "InvokeAsync"):  # the invoke API's
            continue
        assert status == 400, (op_name, status, body)
        assert headers["X-Amzn-ErrorType"] == "InvalidParameterValueException"
        message = json.loads(body)["message"]
        assert "is not supported by klambda" in message, (op_name, message)
        named += message.startswith(f"{op_name} is not supported by klambda: ")
    assert named == 17  # the hinted ones: CreateFunction, UpdateFunctionCode, ...


def test_paginate_is_stable_when_earlier_items_go_away() -> None:
    from klambda_gateway.errors import InvalidParameterValue
    from klambda_gateway.management_api import decode_marker, max_items, paginate

    items = [((name,), name) for name in ("a", "b", "c", "d")]
    page, marker = paginate(items, marker=None, limit=2)
    assert page == ["a", "b"] and marker is not None
    assert decode_marker(marker, width=1) == ("c",)
    assert paginate(items[1:], marker=marker, limit=2) == (["c", "d"], None)
    assert paginate([], marker=marker, limit=2) == ([], None)
    for bad in ("%%%", "bm90IGpzb24", "WyJhIiwiYiJd"):  # not base64, not JSON, wrong width
        with pytest.raises(InvalidParameterValue):
            paginate(items, marker=bad, limit=2)
    assert (max_items(None), max_items("3"), max_items("10000")) == (50, 3, 50)
    for bad in ("0", "x", "10001"):
        with pytest.raises(InvalidParameterValue):
            max_items(bad)
