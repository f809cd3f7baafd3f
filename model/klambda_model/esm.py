# ruff: noqa: RUF009  (spec_field is a dataclass field specifier, evaluated once by design)
"""The EventSourceMapping kind (schema only; the pollers come in a later issue).

Fields follow Lambda's CreateEventSourceMapping. A source is named either by an ARN
(``eventSourceArn``) or by a ``source`` block for brokers without ARNs (SQS-compatible
queues by URL, Kafka, RabbitMQ).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .common import API_VERSION, ARN, FUNCTION_REF, Named, ObjectMeta
from .fields import Rule, exactly_one, spec_field


@dataclass(frozen=True)
class SqsSource:
    """An SQS-compatible queue."""

    queue_url: str = spec_field(
        description="Queue URL.", pattern=r"https?://.+", pattern_hint="use an http(s) URL",
        max_length=2048,
    )
    endpoint_url: str = spec_field(
        default="", description="SQS endpoint (default: derived from queueUrl).", max_length=2048
    )


@dataclass(frozen=True)
class KafkaSource:
    """A Kafka topic."""

    bootstrap_servers: tuple[str, ...] = spec_field(
        description="host:port of the brokers.", min_items=1, max_items=10, min_length=1,
        max_length=300,
    )
    topic: str = spec_field(description="Topic.", min_length=1, max_length=249)
    consumer_group_id: str = spec_field(
        default="", description="Consumer group (default: the mapping's name).", max_length=200
    )


@dataclass(frozen=True)
class RabbitMQSource:
    """A RabbitMQ (AMQP 0-9-1) queue."""

    url: str = spec_field(
        description="amqp:// URL of the broker.", pattern=r"amqps?://.+",
        pattern_hint="use an amqp:// or amqps:// URL", max_length=2048,
    )
    queue: str = spec_field(description="Queue name.", min_length=1, max_length=1000)


@dataclass(frozen=True)
class EventSource:
    """A source given by connection details: exactly one of sqs, kafka, rabbitmq."""

    __rules__: ClassVar[tuple[Rule, ...]] = (exactly_one("sqs", "kafka", "rabbitmq"),)

    sqs: SqsSource | None = spec_field(default=None, description="An SQS-compatible queue.")
    kafka: KafkaSource | None = spec_field(default=None, description="A Kafka topic.")
    rabbitmq: RabbitMQSource | None = spec_field(default=None, description="A RabbitMQ queue.")


@dataclass(frozen=True)
class OnFailure:
    """Where records that failed all retries are sent."""

    __rules__: ClassVar[tuple[Rule, ...]] = (exactly_one("destination", "function"),)

    destination: str | None = spec_field(
        default=None, description="ARN of a queue, topic or function.", **ARN.__dict__
    )
    function: str | None = spec_field(
        default=None, description="A function of the namespace (name[:qualifier]).",
        **FUNCTION_REF.__dict__,
    )


@dataclass(frozen=True)
class EsmDestinationConfig:
    """Destinations of an event source mapping."""

    on_failure: OnFailure | None = spec_field(default=None, description="On-failure destination.")


def _pattern_rule(obj: Mapping[str, Any]) -> str | None:
    pattern = obj.get("pattern")
    if not isinstance(pattern, str):
        return None
    try:
        parsed = json.loads(pattern)
    except json.JSONDecodeError as exc:
        return f"pattern is not valid JSON ({exc.msg} at position {exc.pos})"
    if not isinstance(parsed, dict):
        return 'pattern must be a JSON object, e.g. {"body": {"kind": ["order"]}}'
    return None


@dataclass(frozen=True)
class Filter:
    """An event filter (Lambda's filter pattern syntax)."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule(message="pattern must be a JSON object", check=_pattern_rule, field="pattern"),
    )

    pattern: str = spec_field(
        description='A JSON filter pattern, e.g. {"body": {"kind": ["order"]}}.',
        min_length=2, max_length=4096,
    )


@dataclass(frozen=True)
class FilterCriteria:
    """Only records matching one of the filters are processed."""

    filters: tuple[Filter, ...] = spec_field(
        factory=tuple, description="Filters (at most 5).", max_items=5
    )


@dataclass(frozen=True)
class ScalingConfig:
    """Limits of the pollers' concurrency."""

    maximum_concurrency: int = spec_field(
        description="Maximum concurrent invocations by this mapping (2..1000).",
        minimum=2, maximum=1000,
    )


def _starting_position_rule(obj: Mapping[str, Any]) -> str | None:
    pos, ts = obj.get("startingPosition"), obj.get("startingPositionTimestamp")
    if pos == "AT_TIMESTAMP" and ts is None:
        return "required with startingPosition AT_TIMESTAMP"
    if ts is not None and pos != "AT_TIMESTAMP":
        return "only valid with startingPosition AT_TIMESTAMP"
    return None


def _record_age_rule(obj: Mapping[str, Any]) -> str | None:
    age = obj.get("maximumRecordAgeInSeconds")
    if isinstance(age, int) and not isinstance(age, bool) and age != -1 and 0 <= age < 60:
        return f"{age} is below the minimum 60 (use -1 for no limit)"
    return None


@dataclass(frozen=True)
class EventSourceMappingSpec:
    """Reads batches from a stream or queue and invokes a function with them."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        exactly_one("eventSourceArn", "source"),
        Rule(
            message="startingPositionTimestamp goes with startingPosition AT_TIMESTAMP",
            check=_starting_position_rule,
            cel="(has(self.startingPositionTimestamp)) == "
            "(has(self.startingPosition) && self.startingPosition == 'AT_TIMESTAMP')",
            field="startingPositionTimestamp",
        ),
        Rule(
            message="maximumRecordAgeInSeconds must be -1 or 60..604800",
            check=_record_age_rule,
            cel="!has(self.maximumRecordAgeInSeconds) || self.maximumRecordAgeInSeconds == -1 "
            "|| self.maximumRecordAgeInSeconds >= 60",
            field="maximumRecordAgeInSeconds",
        ),
    )

    function_name: str = spec_field(
        description="The function to invoke: name, name:version or name:alias.",
        **FUNCTION_REF.__dict__,
    )
    event_source_arn: str | None = spec_field(
        default=None, description="ARN of the source (queue, stream, topic).", **ARN.__dict__
    )
    source: EventSource | None = spec_field(
        default=None, description="The source by connection details (instead of an ARN)."
    )
    enabled: bool = spec_field(default=True, description="false pauses polling.")
    batch_size: int | None = spec_field(
        default=None,
        description="Records per batch (1..10000; default 10 for queues, 100 for streams).",
        minimum=1, maximum=10000,
    )
    maximum_batching_window_in_seconds: int | None = spec_field(
        default=None, description="How long to gather records (0..300 s).", minimum=0,
        maximum=300,
    )
    starting_position: str | None = spec_field(
        default=None, description="Streams only: where to start reading.",
        enum=("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"),
    )
    starting_position_timestamp: str | None = spec_field(
        default=None, description="RFC 3339 time, with startingPosition AT_TIMESTAMP.",
        pattern=r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})",
        pattern_hint="use an RFC 3339 time such as 2024-01-01T00:00:00Z",
    )
    bisect_batch_on_function_error: bool = spec_field(
        default=False, description="Streams: split a failing batch in two and retry."
    )
    maximum_retry_attempts: int = spec_field(
        default=-1, description="Streams: retries of a failing batch (-1 = until the record "
        "expires, up to 10000).", minimum=-1, maximum=10000,
    )
    maximum_record_age_in_seconds: int = spec_field(
        default=-1, description="Streams: discard older records (-1 = never, or 60..604800).",
        minimum=-1, maximum=604800,
    )
    parallelization_factor: int = spec_field(
        default=1, description="Streams: concurrent batches per shard (1..10).", minimum=1,
        maximum=10,
    )
    function_response_types: tuple[str, ...] = spec_field(
        factory=tuple,
        description="ReportBatchItemFailures: the function returns batchItemFailures and only "
        "those records are retried.",
        max_items=1, enum=("ReportBatchItemFailures",),
    )
    destination_config: EsmDestinationConfig | None = spec_field(
        default=None, description="Where failed records go."
    )
    filter_criteria: FilterCriteria | None = spec_field(
        default=None, description="Event filtering."
    )
    scaling_config: ScalingConfig | None = spec_field(
        default=None, description="Concurrency limits."
    )


@dataclass(frozen=True)
class EventSourceMapping(Named):
    """An event source mapping (pollers arrive in a later release)."""

    __ignored__: ClassVar[frozenset[str]] = frozenset({"status"})
    kind_name: ClassVar[str] = "EventSourceMapping"

    api_version: str = spec_field(description="klambda.io/v1alpha1", enum=(API_VERSION,))
    kind: str = spec_field(description="EventSourceMapping", enum=("EventSourceMapping",))
    metadata: ObjectMeta = spec_field(description="Standard object metadata.")
    spec: EventSourceMappingSpec = spec_field(description="The mapping.")
