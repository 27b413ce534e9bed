#!/usr/bin/env python3
"""Validates every manifest under deploy/ against its schema, strictly (an unknown field is an error):
Kubernetes' own kinds with kubernetes-validate (the API's OpenAPI schemas of the version below), the custom
resources with the CRDs vendored in deploy/schemas/ (their openAPIV3Schema, made strict the way the API server
prunes: every object that lists its properties and does not preserve unknown fields accepts no others).

Then it checks that it catches typos: each manifest with a misspelt field must fail.

    python3 -m venv /tmp/deployvenv && /tmp/deployvenv/bin/pip install -r deploy/requirements.txt
    /tmp/deployvenv/bin/python deploy/validate.py
"""

import copy
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.37.0"
DEPLOY = Path(__file__).resolve().parent
# (apiVersion, kind) → the vendored CRD that defines it.
CRDS = {
    ("core.spinkube.dev/v1alpha1", "SpinApp"): "spin-operator-v0.6.1-spinapps.yaml",
    ("monitoring.coreos.com/v1", "PodMonitor"): "prometheus-operator-v0.93.0-podmonitors.yaml",
}


def strict(schema):
    """The schema with `additionalProperties: false` wherever the API server would prune unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (node.get("type") == "object" and "properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def crd_schema(api_version, kind):
    crd = yaml.safe_load((DEPLOY / "schemas" / CRDS[(api_version, kind)]).read_text())
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema = strict(served["schema"]["openAPIV3Schema"])
            # metadata is the API's ObjectMeta, which CRDs leave open: check the part every manifest uses.
            schema["properties"]["metadata"] = {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                               "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                               "annotations": {"type": "object", "additionalProperties": {"type": "string"}}},
                "additionalProperties": False}
            schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
            return schema
    raise SystemExit(f"{CRDS[(api_version, kind)]} does not serve {api_version}")


def errors(document):
    """Why `document` does not validate (an empty list when it does)."""
    key = (document.get("apiVersion"), document.get("kind"))
    if key in CRDS:
        validator = jsonschema.Draft7Validator(crd_schema(*key))
        return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'/'.join(map(str, e.path))}: {e.message}"]
    except kubernetes_validate.utils.SchemaNotFoundError as e:
        return [f"no schema for {key}: {e}"]
    return []


def misspelt(document):
    """The document with one field of its spec misspelt (the first key, `x` appended)."""
    broken = copy.deepcopy(document)
    spec = broken.get("spec", broken)
    first = next(iter(spec))
    spec[first + "x"] = spec.pop(first)
    return broken


def main():
    files = sorted(p for p in DEPLOY.rglob("*.yaml") if "schemas" not in p.parts)
    failed = 0
    count = 0
    for path in files:
        for document in yaml.safe_load_all(path.read_text()):
            if document is None:
                continue
            count += 1
            name = f"{path.relative_to(DEPLOY.parent)}: {document['kind']} {document['metadata']['name']}"
            problems = errors(document)
            if problems:
                failed += 1
                print(f"FAIL {name}")
                for problem in problems:
                    print(f"     {problem}")
                continue
            if not errors(misspelt(document)):
                failed += 1
                print(f"FAIL {name}: a misspelt field passes, so the check is not strict")
                continue
            print(f"ok   {name}")
    print(f"{count} manifests, {failed} failed (Kubernetes {KUBERNETES_VERSION} schemas, strict)")
    return 1 if failed or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
