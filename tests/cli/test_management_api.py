"""The Lambda management API subset, judged by real boto3/botocore against a real HTTP
server: GetFunction (+ the function_active_v2 / function_exists waiters),
GetFunctionConfiguration, ListFunctions, PublishVersion (idempotent, CodeSha256 / RevisionId
preconditions), ListVersionsByFunction, ListAliases, GetAlias, and modelled errors."""

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
