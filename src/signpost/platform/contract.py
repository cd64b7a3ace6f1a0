"""The event contract for partners, generated from the pydantic models by `signpost contract`.

One JSON Schema per event type, of its JSON `data` as producers serialise it, and an AsyncAPI
3.0 document of where each event travels: the Kafka topics (key, `ce_*` headers) and webhook
deliveries (`ce-*` headers, signature). All JSON, so generating needs no other dependency.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, create_model
from signpost.intake.subscriptions import signing
from signpost.intake.subscriptions.models import DELIVERED_EVENT_TYPES
from signpost.routing.catalogue.models import Provision
from signpost.shared.events import (
    CONTENT_TYPE,
    EVENT_TYPES,
    HEADER_ATTRIBUTES,
    REFERRAL_EVENTS,
    REQUIRED_HEADERS,
    Envelope,
    EventData,
    ProvisionChangedV1,
    SettingChangedV1,
)
from signpost.shared.topics import Topics

ASYNCAPI_FILE = "asyncapi.json"
SCHEMA_SUFFIX = ".schema.json"
REGENERATE = "./signpost contract"
GENERATED = f"Generated from Signpost's pydantic event models by `{REGENERATE}`: do not edit."
KAFKA_BINDING = "0.5.0"
HTTP_BINDING = "0.3.0"
SIGNATURE_PATTERN = r"^t=[0-9]+,v1=[0-9a-f]{64},v2=[0-9a-f]{64}$"

# Fields shared/ types loosely, with the model that gives their shape on the wire. A model in
# the event itself would have to live in shared/ and would refuse retained events that predate
# one of its fields; readers pick out what they use.
DOCUMENTED_AS: dict[type[EventData], dict[str, type[BaseModel]]] = {
    ProvisionChangedV1: {"provision": Provision}
}


@dataclass(frozen=True)
class Stream:
    """A topic partners may read: the `Topics` property naming it, its key, and its events."""

    channel: str
    key: str
    events: Sequence[type[EventData]]


STREAMS = (
    Stream("referrals", "The referral id.", REFERRAL_EVENTS),
    # Compacted, and shared by the areas of a region: a key names its area (`kafka_key`).
    Stream("provisions", "The area and the provision id: `<tenant>|<provision id>`.", (ProvisionChangedV1,)),
    Stream(
        "settings_register",
        "The area and the setting id: `<tenant>|<setting id>`, e.g. `E06000023|URN100001`.",
        (SettingChangedV1,),
    ),
)
HEADER_SCHEMAS = {"ce_": "kafkaHeaders", "ce-": "webhookHeaders"}  # by the prefix of their attributes
WEBHOOK_EVENTS = tuple(model for model in REFERRAL_EVENTS if model.event_type in DELIVERED_EVENT_TYPES)

INTRODUCTION = (
    "Signpost's events as partners receive them, read from Kafka or delivered by webhook. Each is a "
    "CloudEvents 1.0 event in binary mode: its attributes travel as headers (`ce_*` on Kafka, `ce-*` "
    "over HTTP) and its JSON `data` is the body, described by the schema file of its type. Delivery "
    "is at least once: skip an event whose `ce_id` you have handled. Within a version (`.v1`) "
    "changes are additive: ignore fields you do not know. A breaking change is a new `.vN`, and new "
    "types may appear: skip a `ce_type` you do not know rather than stop. " + GENERATED
)
WEBHOOK_DELIVERY = (
    "Signpost POSTs each event of a referral offered to your organisation to the URL you registered "
    "with POST /v1/subscriptions (intake), as the subscription's `event_types` select. Answer 2xx to "
    "acknowledge; anything else is retried with doubling delays for about a day "
    "(GET /v1/subscriptions/{id}/deliveries logs every attempt). A retry is signed afresh."
)


def schema_file(event_type: str) -> str:
    return f"{event_type}{SCHEMA_SUFFIX}"


def contract() -> dict[str, dict[str, Any]]:
    """Every file of the contract, by name."""
    files = {schema_file(event_type): event_schema(model) for event_type, model in EVENT_TYPES.items()}
    files[ASYNCAPI_FILE] = asyncapi()
    return files


def write_contract(folder: Path) -> list[Path]:
    """Write the contract into `folder`, removing schema files of types that no longer exist."""
    files = contract()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"*{SCHEMA_SUFFIX}"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, document in files.items():
        path = folder / name
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def event_schema(model: type[EventData]) -> dict[str, Any]:
    """The JSON Schema of an event's `data` as producers serialise it."""
    schema = _as_documented(model).model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": GENERATED,
        **_open(schema),
        "x-cloudevents-type": model.event_type,
    }


def _as_documented(model: type[EventData]) -> type[BaseModel]:
    fields = DOCUMENTED_AS.get(model)
    if fields is None:
        return model
    typed: dict[str, Any] = {
        name: (shape, Field(description=model.model_fields[name].description))
        for name, shape in fields.items()
    }
    return create_model(model.__name__, __base__=model, __doc__=model.__doc__, **typed)


def _open(schema: Any) -> Any:
    """`schema` without `additionalProperties: false` (routing's API refuses unknown fields): a
    reader of events ignores fields it does not know, which is how events evolve."""
    if isinstance(schema, dict):
        return {
            key: _open(value)
            for key, value in schema.items()
            if not (key == "additionalProperties" and value is False)
        }
    if isinstance(schema, list):
        return [_open(value) for value in schema]
    return schema


def asyncapi() -> dict[str, Any]:
    topics = Topics(prefix="", partitions=1, tenant="")  # topic names only: the areas share them
    cleanup = {spec.name: spec.config["cleanup.policy"] for spec in topics.specs()}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for stream in STREAMS:
        address = getattr(topics, stream.channel)
        for model in stream.events:
            messages[model.__name__] = _kafka_message(model, stream.key)
        channels[stream.channel] = {
            "address": address,
            "description": inspect.cleandoc(getattr(Topics, stream.channel).__doc__ or ""),
            "servers": [{"$ref": "#/servers/kafka"}],
            "messages": {model.__name__: _component(model.__name__) for model in stream.events},
            "bindings": {
                "kafka": {
                    "topic": address,
                    "topicConfiguration": {"cleanup.policy": [cleanup[address]]},
                    "bindingVersion": KAFKA_BINDING,
                }
            },
        }
        operations[f"publish_{stream.channel}"] = _sends(
            stream.channel, stream.events, suffix="", summary=f"Signpost publishes to {address}."
        )
    for model in WEBHOOK_EVENTS:
        messages[f"{model.__name__}Delivery"] = _webhook_message(model)
    channels["webhooks"] = {
        "address": None,
        "description": "Your endpoint's URL, as registered.",
        "servers": [{"$ref": "#/servers/partner"}],
        "messages": {
            f"{model.__name__}Delivery": _component(f"{model.__name__}Delivery") for model in WEBHOOK_EVENTS
        },
    }
    operations["deliver_webhooks"] = {
        **_sends("webhooks", WEBHOOK_EVENTS, suffix="Delivery", summary="Signpost delivers a webhook."),
        "description": WEBHOOK_DELIVERY,
        "security": [{"$ref": "#/components/securitySchemes/signpostSignature"}],
        "bindings": {"http": {"method": "POST", "bindingVersion": HTTP_BINDING}},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Signpost events",
            "version": version("signpost-shared"),
            "description": INTRODUCTION,
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The local area's Kafka cluster, for partners it gives access.",
                "variables": {"bootstrap": {"description": "A broker's host:port."}},
            },
            "partner": {
                "host": "{host}",
                "protocol": "https",
                "description": "Your webhook endpoint (http only for loopback in development).",
                "variables": {"host": {"description": "Your endpoint's host."}},
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {HEADER_SCHEMAS["ce_"]: _kafka_headers(), HEADER_SCHEMAS["ce-"]: _webhook_headers()},
            "correlationIds": {
                "kafka": _correlation("$message.header#/ce_correlationid"),
                "webhook": _correlation("$message.header#/ce-correlationid"),
            },
            "securitySchemes": {
                "signpostSignature": {
                    "type": "httpApiKey",
                    "name": signing.SIGNATURE_HEADER,
                    "in": "header",
                    "description": inspect.cleandoc(signing.__doc__ or ""),
                }
            },
        },
    }


def _kafka_headers() -> dict[str, Any]:
    extra = {
        "content-type": {"type": "string", "const": CONTENT_TYPE},
        "correlation_id": {
            "type": "string",
            "description": "Added by Signpost's Kafka client (FastStream): the same as ce_correlationid.",
        },
    }
    return _headers("ce_", extra, required=["content-type"])


def _webhook_headers() -> dict[str, Any]:
    extra = {
        "content-type": {"type": "string", "const": CONTENT_TYPE},
        signing.SIGNATURE_HEADER: {
            "type": "string",
            "pattern": SIGNATURE_PATTERN,
            "description": "See the security scheme signpostSignature: verify v2.",
        },
        "Signpost-Delivery-Id": {
            "type": "string",
            "description": "This delivery in GET /v1/subscriptions/{id}/deliveries; the same on its retries.",
        },
    }
    return _headers("ce-", extra, required=["content-type", signing.SIGNATURE_HEADER, "Signpost-Delivery-Id"])


def _kafka_message(model: type[EventData], key: str) -> dict[str, Any]:
    return {
        **_message(model, "ce_", key),
        "correlationId": {"$ref": "#/components/correlationIds/kafka"},
        "bindings": {
            "kafka": {"key": {"type": "string", "description": key}, "bindingVersion": KAFKA_BINDING}
        },
    }


def _webhook_message(model: type[EventData]) -> dict[str, Any]:
    return {
        **_message(model, "ce-", "The referral id."),
        "correlationId": {"$ref": "#/components/correlationIds/webhook"},
        "bindings": {"http": {"bindingVersion": HTTP_BINDING}},
    }


def _message(model: type[EventData], prefix: str, subject: str) -> dict[str, Any]:
    """`model`'s message: the headers named with `prefix` (`ce_` on Kafka, `ce-` over HTTP) with
    its type and what its subject is, and its payload schema."""
    summary = inspect.cleandoc(model.__doc__).partition("\n\n")[0] if model.__doc__ else None
    common = HEADER_SCHEMAS[prefix]
    return {
        "name": model.event_type,
        "title": model.__name__,
        **({"summary": summary} if summary else {}),
        "contentType": CONTENT_TYPE,
        "headers": {
            "type": "object",
            "allOf": [{"$ref": f"#/components/schemas/{common}"}],
            "properties": {
                f"{prefix}type": {"const": model.event_type},
                f"{prefix}subject": {"description": subject},
            },
        },
        "payload": {"$ref": f"./{schema_file(model.event_type)}"},
    }


def _headers(prefix: str, extra: dict[str, Any], *, required: list[str]) -> dict[str, Any]:
    """The CloudEvents attributes as headers named `prefix<attribute>`, each a string as the
    envelope's field describes it, then `extra`."""
    return {
        "type": "object",
        "properties": {f"{prefix}{name}": schema for name, schema in _attribute_schemas().items()} | extra,
        "required": [name.replace("ce_", prefix, 1) for name in REQUIRED_HEADERS] + required,
    }


def _attribute_schemas() -> dict[str, dict[str, Any]]:
    fields = Envelope[EventData].model_json_schema(mode="serialization")["properties"]
    schemas = {}
    for name in HEADER_ATTRIBUTES:
        field = fields[name]
        value = next(branch for branch in field.get("anyOf", [field]) if branch.get("type") != "null")
        schemas[name] = {
            **{key: part for key, part in value.items() if key not in ("title", "default", "description")},
            "description": field["description"],
        }
    return schemas


def _sends(channel: str, events: Sequence[type[EventData]], *, suffix: str, summary: str) -> dict[str, Any]:
    return {
        "action": "send",
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{model.__name__}{suffix}"} for model in events],
    }


def _component(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/messages/{name}"}


def _correlation(location: str) -> dict[str, str]:
    return {
        "description": "One request's chain; follow a referral by ce_subject instead.",
        "location": location,
    }
