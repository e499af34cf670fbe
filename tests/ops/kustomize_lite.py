"""A small kustomize renderer for the subset our manifests use, so CI needs no kubectl.

Supported: ``resources`` (files and kustomization directories), ``configMapGenerator`` with
``files``/``literals`` when name hashes are disabled, ``patches`` given by ``path`` (strategic
merge, target taken from the patch's kind and name), ``namespace``, ``labels`` (without selectors)
and ``images``. Anything else raises ``UnsupportedError`` instead of being ignored, so a manifest
change that needs more of kustomize fails loudly here rather than rendering wrongly. Where
``kubectl`` is installed, a test compares this renderer's output with ``kubectl kustomize``.

Transformer order follows kustomize: patches, namespace, labels, images.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

# Cluster-scoped kinds among those we render (the namespace transformer leaves them alone).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}

# Strategic-merge keys of the list fields we patch (from the Kubernetes API's patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}

SUPPORTED_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "configMapGenerator",
    "generatorOptions",
    "patches",
    "namespace",
    "labels",
    "images",
}


class UnsupportedError(Exception):
    """The kustomization uses a feature this renderer does not implement."""


def load_documents(path: Path) -> list[Resource]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def render(directory: Path) -> list[Resource]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise UnsupportedError(f"{directory}: {sorted(unknown)}")

    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        target = directory / entry
        resources.extend(render(target) if target.is_dir() else load_documents(target))
    resources.extend(_generate_config_maps(directory, kustomization))

    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise UnsupportedError(f"patch form {sorted(patch_entry)} (only `path`)")
        for patch in load_documents(directory / patch_entry["path"]):
            _apply_patch(resources, patch)
    if "namespace" in kustomization:
        _set_namespace(resources, kustomization["namespace"])
    for label_entry in kustomization.get("labels", []):
        _add_labels(resources, label_entry)
    for image in kustomization.get("images", []):
        _set_image(resources, image)
    return resources


def _generate_config_maps(directory: Path, kustomization: Resource) -> list[Resource]:
    generators = kustomization.get("configMapGenerator", [])
    if generators and not kustomization.get("generatorOptions", {}).get("disableNameSuffixHash"):
        raise UnsupportedError(
            "configMapGenerator needs generatorOptions.disableNameSuffixHash: true"
        )
    generated = []
    for generator in generators:
        if set(generator) - {"name", "files", "literals", "options"}:
            raise UnsupportedError(f"configMapGenerator fields {sorted(generator)}")
        data: dict[str, str] = {}
        for item in generator.get("files", []):
            key, _, file_name = item.rpartition("=")
            data[key or Path(file_name).name] = (directory / file_name).read_text()
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        metadata: Resource = {"name": generator["name"]}
        options = generator.get("options", {})
        if options.get("labels"):
            metadata["labels"] = dict(options["labels"])
        if options.get("annotations"):
            metadata["annotations"] = dict(options["annotations"])
        generated.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
        )
    return generated


def strategic_merge(base: Any, patch: Any) -> Any:
    """Merge ``patch`` into ``base`` as a strategic-merge patch does, for the fields we use."""
    if isinstance(base, dict) and isinstance(patch, dict):
        if "$patch" in patch or any(key.startswith("$") for key in patch):
            raise UnsupportedError("strategic-merge directives ($patch, $setElementOrder, ...)")
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged and isinstance(value, list) and key in MERGE_KEYS:
                merged[key] = _merge_list(merged[key], value, MERGE_KEYS[key])
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    return copy.deepcopy(patch)


def _merge_list(base: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in base]
    for item in patch:
        for index, existing in enumerate(merged):
            if existing.get(merge_key) == item.get(merge_key):
                merged[index] = strategic_merge(existing, item)
                break
        else:
            merged.append(copy.deepcopy(item))
    return merged


def _apply_patch(resources: list[Resource], patch: Resource) -> None:
    matches = [
        index
        for index, resource in enumerate(resources)
        if resource["kind"] == patch["kind"]
        and resource["metadata"]["name"] == patch["metadata"]["name"]
    ]
    if len(matches) != 1:
        raise ValueError(
            f"patch {patch['kind']}/{patch['metadata']['name']} matches {len(matches)} resources"
        )
    resources[matches[0]] = strategic_merge(resources[matches[0]], patch)


def _set_namespace(resources: list[Resource], namespace: str) -> None:
    for resource in resources:
        if resource["kind"] == "Namespace":
            resource["metadata"]["name"] = namespace
        elif resource["kind"] not in CLUSTER_SCOPED:
            resource["metadata"]["namespace"] = namespace


def _add_labels(resources: list[Resource], entry: Resource) -> None:
    if entry.get("includeSelectors") or entry.get("includeTemplates") or entry.get("fields"):
        raise UnsupportedError("labels with includeSelectors, includeTemplates or fields")
    for resource in resources:
        resource["metadata"].setdefault("labels", {}).update(entry["pairs"])


def _image_name(reference: str) -> str:
    without_digest = reference.split("@", 1)[0]
    slash = without_digest.rfind("/")
    colon = without_digest.rfind(":")
    return without_digest[:colon] if colon > slash else without_digest


def _set_image(resources: list[Resource], image: Resource) -> None:
    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    for container in value:
                        if _image_name(container.get("image", "")) == image["name"]:
                            container["image"] = _rewrite(container["image"])
                else:
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    def _rewrite(reference: str) -> str:
        name = image.get("newName", image["name"])
        if "digest" in image:
            return f"{name}@{image['digest']}"
        tag = image.get("newTag")
        if tag is None:
            current = reference.split("@", 1)[0]
            tag = current[len(_image_name(current)) + 1 :] or None
        return f"{name}:{tag}" if tag else name

    for resource in resources:
        visit(resource)
