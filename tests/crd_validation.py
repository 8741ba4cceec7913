"""Validate Kubernetes custom resources against the Seldon CRDs (found by tests/inputs.py).

One validator for every test that checks Seldon objects (tests/serving, tests/infra):
the CRD's served openAPIV3Schema made strict the way the API server applies it
(unknown fields are errors), ObjectMeta for metadata, and the x-kubernetes-*
extensions and int32/int64 formats enforced.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {
            "type": "string",
            "maxLength": 253,
            "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        },
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "resourceVersion": {"type": "string"},
        "labels": {
            "type": "object",
            "additionalProperties": {
                "type": "string",
                "maxLength": 63,
                "pattern": r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$",
            },
        },
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def strict(node: Any) -> Any:
    """A CRD schema as the API server applies it to a create with strict field validation:
    objects with declared properties admit no others, unless the schema preserves
    unknown fields (x-kubernetes-preserve-unknown-fields)."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _int_or_string(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if value and (isinstance(instance, bool) or not isinstance(instance, int | str)):
        yield jsonschema.ValidationError(f"{instance!r} is neither an integer nor a string")


def _list_type(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, list):
        return
    if value == "set":
        seen = [json.dumps(item, sort_keys=True) for item in instance]
        if len(set(seen)) != len(seen):
            yield jsonschema.ValidationError(f"duplicate items in a list-type set: {instance!r}")
    elif value == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        # keys with a schema default (protocol: TCP) count with it, like the server does
        props = schema.get("items", {}).get("properties", {})
        tuples = [
            tuple(item.get(k, props.get(k, {}).get("default")) for k in keys) for item in instance
        ]
        duplicated = sorted({t for t in tuples if tuples.count(t) > 1}, key=str)
        if duplicated:
            yield jsonschema.ValidationError(
                f"duplicate entries for list-map keys {keys}: {duplicated}"
            )


def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


FORMATS = jsonschema.FormatChecker()
FORMATS.checks("int32")(_int32)
FORMATS.checks("int64")(_int64)


KubeValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    {"x-kubernetes-int-or-string": _int_or_string, "x-kubernetes-list-type": _list_type},
)


@dataclass(frozen=True)
class Crd:
    """One served version of a CRD."""

    api_version: str
    kind: str
    plural: str
    validator: Any

    def errors(self, obj: dict[str, Any]) -> list[str]:
        """Every violation, as "<path>: <message>" (empty when valid)."""
        return sorted(
            f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in self.validator.iter_errors(obj)
        )


def load_crds(crd_dir: Path) -> dict[tuple[str, str], Crd]:
    """(apiVersion, kind) -> every served version of the CRDs in `crd_dir`.

    FileNotFoundError names the folder when it is missing or holds no YAML file.
    """
    paths = sorted(crd_dir.glob("*.yaml")) if crd_dir.is_dir() else []
    if not paths:
        raise FileNotFoundError(f"no Seldon CRD YAML files in {crd_dir}")
    out: dict[tuple[str, str], Crd] = {}
    for path in paths:
        # libyaml's loader: the v1 CRD is 35k lines (7 s with the pure-Python one)
        for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, names = doc["spec"]["group"], doc["spec"]["names"]
            for version in doc["spec"]["versions"]:
                if not version.get("served"):
                    continue
                schema = strict(version["schema"]["openAPIV3Schema"])
                schema["properties"]["metadata"] = OBJECT_META
                schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind"})
                KubeValidator.check_schema(schema)
                key = (f"{group}/{version['name']}", names["kind"])
                out[key] = Crd(key[0], names["kind"], names["plural"],
                               KubeValidator(schema, format_checker=FORMATS))  # fmt: skip
    return out
