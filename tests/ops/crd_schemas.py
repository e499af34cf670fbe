"""Structural schemas for the custom resources we deploy, where no published schema is at hand.

kubernetes-validate covers only built-in kinds. These schemas state the fields of the
CloudNativePG ``Cluster``/``ScheduledBackup`` (postgresql.cnpg.io/v1) and Prometheus Operator
``ServiceMonitor``/``PrometheusRule`` (monitoring.coreos.com/v1) that our manifests use, written
from those projects' API reference documentation. Unknown fields are rejected at the levels we
spell out, so a misspelt key fails here instead of being silently ignored by the operator.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def obj(properties: Schema, required: tuple[str, ...] = (), closed: bool = True) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "required": list(required)}
    if closed:
        schema["additionalProperties"] = False
    return schema


STRING = {"type": "string", "minLength": 1}
QUANTITY = {"type": ["string", "integer"]}
DURATION = {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h))+$"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = obj(
    {"name": STRING, "namespace": STRING, "labels": STRING_MAP, "annotations": STRING_MAP},
    ("name",),
)
SECRET_KEY_SELECTOR = obj({"name": STRING, "key": STRING}, ("name", "key"))
RESOURCES = obj(
    {
        "requests": obj({"cpu": QUANTITY, "memory": QUANTITY}),
        "limits": obj({"cpu": QUANTITY, "memory": QUANTITY}),
    }
)
COMPRESSION = {"enum": ["bzip2", "gzip", "lz4", "snappy", "xz", "zstd"]}


def resource(api_version: str, kind: str, spec: Schema) -> Schema:
    return obj(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


CLUSTER = resource(
    "postgresql.cnpg.io/v1",
    "Cluster",
    obj(
        {
            "instances": {"type": "integer", "minimum": 1},
            "imageName": {
                "type": "string",
                "pattern": r"^[^:@\s]+(:[\w.\-]+)?(@sha256:[0-9a-f]{64})?$",
            },
            "primaryUpdateStrategy": {"enum": ["supervised", "unsupervised"]},
            "bootstrap": obj(
                {
                    "initdb": obj(
                        {"database": STRING, "owner": STRING, "secret": obj({"name": STRING})}
                    )
                }
            ),
            "postgresql": obj({"parameters": STRING_MAP}),
            "storage": obj({"size": QUANTITY, "storageClass": STRING}, ("size",)),
            "walStorage": obj({"size": QUANTITY, "storageClass": STRING}, ("size",)),
            "affinity": obj(
                {
                    "enablePodAntiAffinity": {"type": "boolean"},
                    "topologyKey": STRING,
                    "podAntiAffinityType": {"enum": ["preferred", "required"]},
                }
            ),
            "resources": RESOURCES,
            "monitoring": obj({"enablePodMonitor": {"type": "boolean"}}),
            "backup": obj(
                {
                    "retentionPolicy": {"type": "string", "pattern": r"^[1-9][0-9]*[dwm]$"},
                    "barmanObjectStore": obj(
                        {
                            "destinationPath": {"type": "string", "pattern": r"^(s3|gs|https?)://"},
                            "endpointURL": {"type": "string", "pattern": r"^https?://"},
                            "s3Credentials": obj(
                                {
                                    "accessKeyId": SECRET_KEY_SELECTOR,
                                    "secretAccessKey": SECRET_KEY_SELECTOR,
                                },
                                ("accessKeyId", "secretAccessKey"),
                            ),
                            "wal": obj(
                                {"compression": COMPRESSION, "maxParallel": {"type": "integer"}}
                            ),
                            "data": obj({"compression": COMPRESSION, "jobs": {"type": "integer"}}),
                        },
                        ("destinationPath",),
                    ),
                }
            ),
        },
        ("instances", "storage"),
    ),
)

SCHEDULED_BACKUP = resource(
    "postgresql.cnpg.io/v1",
    "ScheduledBackup",
    obj(
        {
            # Six fields: CloudNativePG's cron format starts with seconds.
            "schedule": {"type": "string", "pattern": r"^\S+( \S+){5}$"},
            "immediate": {"type": "boolean"},
            "suspend": {"type": "boolean"},
            "backupOwnerReference": {"enum": ["none", "self", "cluster"]},
            "method": {"enum": ["barmanObjectStore", "volumeSnapshot", "plugin"]},
            "target": {"enum": ["primary", "prefer-standby"]},
            "cluster": obj({"name": STRING}, ("name",)),
        },
        ("schedule", "cluster"),
    ),
)

SERVICE_MONITOR = resource(
    "monitoring.coreos.com/v1",
    "ServiceMonitor",
    obj(
        {
            "jobLabel": STRING,
            "selector": obj({"matchLabels": STRING_MAP}, ("matchLabels",)),
            "namespaceSelector": obj(
                {"matchNames": {"type": "array", "items": STRING}, "any": {"type": "boolean"}}
            ),
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": obj(
                    {
                        "port": STRING,
                        "path": {"type": "string", "pattern": "^/"},
                        "scheme": {"enum": ["http", "https"]},
                        "interval": DURATION,
                        "scrapeTimeout": DURATION,
                    },
                    ("port",),
                ),
            },
        },
        ("selector", "endpoints"),
    ),
)

RULE = {
    "oneOf": [
        obj(
            {
                "alert": STRING,
                "expr": STRING,
                "for": DURATION,
                "labels": STRING_MAP,
                "annotations": STRING_MAP,
            },
            ("alert", "expr"),
        ),
        obj({"record": STRING, "expr": STRING, "labels": STRING_MAP}, ("record", "expr")),
    ]
}
PROMETHEUS_RULE = resource(
    "monitoring.coreos.com/v1",
    "PrometheusRule",
    obj(
        {
            "groups": {
                "type": "array",
                "minItems": 1,
                "items": obj(
                    {
                        "name": STRING,
                        "interval": DURATION,
                        "rules": {"type": "array", "minItems": 1, "items": RULE},
                    },
                    ("name", "rules"),
                ),
            }
        },
        ("groups",),
    ),
)

SCHEMAS: dict[tuple[str, str], Schema] = {
    ("postgresql.cnpg.io/v1", "Cluster"): CLUSTER,
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): SCHEDULED_BACKUP,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
}
