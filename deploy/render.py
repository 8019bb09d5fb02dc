"""Renders the kustomizations under deploy/k8s/ and validates every object, offline.

    python deploy/render.py [--kubernetes-version 1.33] [--out DIR] [--stdin NAME] [DIR_OR_FILE ...]

Why a renderer of its own: kustomize is a Go program, and PyPI has no kustomize for Python 3.11
(`pykustomize` needs Python >= 3.14; the package named `kustomize` is an unrelated library), so
`make lint` cannot call it without downloading a binary. This renders the subset of kustomize the
kustomizations use -- `resources` (files and directories), `namespace`, `images`, and `patches` that
are JSON 6902 operations with a kind/name target -- and refuses any other field, so a kustomization
cannot use a feature that this check would silently ignore. When a real `kustomize` (or `kubectl`)
is installed, deploy/check.sh validates its output too (`--stdin`).

Validation: built-in kinds against the Kubernetes JSON schemas of the pinned version shipped by
`kubernetes-validate` (strict: unknown fields are errors); KEDA's ScaledObject and
TriggerAuthentication against the models that `cloudcoil-models-keda` generates from KEDA's CRDs,
strictly too (a field the models do not know is an error, not dropped). Any other kind fails: no
object goes unchecked. `--only builtin|keda` validates one family: deploy/check.sh runs the
built-in kinds in .venv and KEDA's in .venv/deploy-tools (see deploy/requirements-tools.txt for why
cloudcoil stays out of .venv). `--out DIR` writes each rendered kustomization as DIR/<name>.yaml for
the policy scan (checkov).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

KUBERNETES_VERSION = "1.33.0"
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding"}

Obj = dict[str, Any]


class RenderError(Exception):
    pass


# --- Rendering -----------------------------------------------------------------------------------


def load_documents(path: Path) -> list[Obj]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise RenderError(f"{path}: a document without apiVersion/kind")
    return docs


def render(directory: Path) -> list[Obj]:
    """The objects `kustomize build DIRECTORY` would produce, for the supported subset."""
    path = directory / "kustomization.yaml"
    spec = yaml.safe_load(path.read_text())
    unknown = set(spec) - KUSTOMIZATION_FIELDS
    if unknown:
        raise RenderError(f"{path}: fields this renderer does not apply: {sorted(unknown)}")
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        objects.extend(render(target) if target.is_dir() else load_documents(target))
    for patch in spec.get("patches", []):
        apply_patch(objects, patch, path)
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] == "Namespace":
                obj["metadata"]["name"] = spec["namespace"]
            elif obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        set_image(objects, image)
    ids = [(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]) for obj in objects]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise RenderError(f"{path}: objects defined twice: {sorted(map(str, duplicates))}")
    return objects


def apply_patch(objects: list[Obj], patch: Obj, where: Path) -> None:
    if set(patch) != {"target", "patch"} or set(patch["target"]) - {"kind", "name"}:
        raise RenderError(f"{where}: only JSON 6902 patches with a kind/name target are supported")
    target = patch["target"]
    matches = [
        obj
        for obj in objects
        if obj["kind"] == target.get("kind", obj["kind"])
        and obj["metadata"]["name"] == target.get("name", obj["metadata"]["name"])
    ]
    if not matches:
        raise RenderError(f"{where}: the patch target {target} matches no object")
    operations = yaml.safe_load(patch["patch"])
    if not isinstance(operations, list):
        raise RenderError(f"{where}: a patch must be a list of JSON 6902 operations")
    for obj in matches:
        for operation in operations:
            json_patch(obj, operation, where)


def json_patch(obj: Obj, operation: Obj, where: Path) -> None:
    """One RFC 6902 operation (add, replace, remove) on OBJ, in place."""
    op, pointer = operation.get("op"), operation.get("path", "")
    parts = [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]
    if op not in {"add", "replace", "remove"} or not parts:
        raise RenderError(f"{where}: unsupported operation {operation}")
    parent: Any = obj
    for part in parts[:-1]:
        try:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        except (KeyError, IndexError, ValueError) as exc:
            raise RenderError(f"{where}: {pointer} does not exist in {obj['metadata']['name']}") from exc
    last = parts[-1]
    value = copy.deepcopy(operation.get("value"))
    if isinstance(parent, list):
        if op == "add":
            parent.insert(len(parent) if last == "-" else int(last), value)
            return
        index = int(last)
        if index >= len(parent):
            raise RenderError(f"{where}: {pointer} does not exist in {obj['metadata']['name']}")
        if op == "replace":
            parent[index] = value
        else:
            del parent[index]
        return
    if op in {"replace", "remove"} and last not in parent:
        raise RenderError(f"{where}: {pointer} does not exist in {obj['metadata']['name']}")
    if op == "remove":
        del parent[last]
    else:
        parent[last] = value


def pod_specs(obj: Obj) -> list[Obj]:
    spec = obj.get("spec", {})
    if obj["kind"] == "Pod":
        return [spec]
    if obj["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    template = spec.get("template", {})
    return [template["spec"]] if "spec" in template else []


def set_image(objects: list[Obj], image: Obj) -> None:
    for obj in objects:
        for pod in pod_specs(obj):
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                name = container["image"].split("@")[0].rsplit(":", 1)[0]
                if name != image["name"]:
                    continue
                new = image.get("newName", name)
                if "digest" in image:
                    container["image"] = f"{new}@{image['digest']}"
                elif "newTag" in image:
                    container["image"] = f"{new}:{image['newTag']}"
                else:
                    container["image"] = new


# --- Validation ----------------------------------------------------------------------------------


def unknown_fields(given: Any, known: Any, path: str = "") -> list[str]:
    """Paths present in GIVEN that the validated model dropped (pydantic ignores unknown fields)."""
    if isinstance(given, dict) and isinstance(known, dict):
        found = []
        for key, value in given.items():
            if key not in known:
                found.append(f"{path}.{key}".lstrip("."))
            else:
                found.extend(unknown_fields(value, known[key], f"{path}.{key}"))
        return found
    if isinstance(given, list) and isinstance(known, list):
        return [
            p
            for i, (g, k) in enumerate(zip(given, known, strict=False))
            for p in unknown_fields(g, k, f"{path}[{i}]")
        ]
    return []


def validate_keda(obj: Obj) -> None:
    from cloudcoil.models.keda import v1alpha1
    from pydantic import BaseModel

    models: dict[str, type[BaseModel]] = {
        "ScaledObject": v1alpha1.ScaledObject,
        "TriggerAuthentication": v1alpha1.TriggerAuthentication,
    }
    if obj["apiVersion"] != "keda.sh/v1alpha1" or obj["kind"] not in models:
        raise RenderError(f"no schema for {obj['apiVersion']} {obj['kind']}")
    model = models[obj["kind"]].model_validate(obj, strict=True)
    dumped = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    unknown = unknown_fields(obj, dumped)
    if unknown:
        raise RenderError(f"fields KEDA's schema does not have: {unknown}")


def is_keda(obj: Obj) -> bool:
    return str(obj["apiVersion"]).startswith("keda.sh/")


def validate_builtin(obj: Obj, version: str) -> str:
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    try:
        return str(kubernetes_validate.validate(obj, version, strict=True))
    except SchemaNotFoundError as exc:
        raise RenderError(f"no schema for {obj['apiVersion']} {obj['kind']} in Kubernetes {version}") from exc


def validate(objects: list[Obj], source: str, version: str) -> int:
    failures = 0
    for obj in objects:
        label = f"{source}: {obj['kind']}/{obj['metadata'].get('name')}"
        try:
            if is_keda(obj):
                validate_keda(obj)
                schema = "KEDA CRD models (cloudcoil-models-keda)"
            else:
                schema = f"Kubernetes {validate_builtin(obj, version)} (strict)"
        except Exception as exc:  # a schema violation, whichever validator raised it
            where = ".".join(str(part) for part in getattr(exc, "path", []))
            print(f"FAIL {label}: {where + ': ' if where else ''}{getattr(exc, 'message', exc)}")
            failures += 1
        else:
            print(f"ok   {label} against {schema}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "paths", nargs="*", type=Path, help="kustomization directories or plain manifest files"
    )
    parser.add_argument("--kubernetes-version", default=KUBERNETES_VERSION)
    parser.add_argument("--out", type=Path, help="write each rendered kustomization to OUT/<name>.yaml")
    parser.add_argument("--stdin", metavar="NAME", help="validate a rendered stream read from standard input")
    parser.add_argument(
        "--only",
        choices=["builtin", "keda"],
        help="validate only the built-in kinds (kubernetes-validate) or only KEDA's (cloudcoil-models-keda)",
    )
    args = parser.parse_args(argv)

    failures = total = 0
    sources: list[tuple[str, list[Obj]]] = []
    try:
        if args.stdin:
            sources.append((args.stdin, [doc for doc in yaml.safe_load_all(sys.stdin) if doc]))
        for path in args.paths:
            objects = render(path) if path.is_dir() else load_documents(path)
            sources.append((str(path), objects))
    except (RenderError, OSError, yaml.YAMLError) as exc:
        print(f"FAIL {exc}")
        return 1
    for source, objects in sources:
        if args.out and Path(source).is_dir():
            args.out.mkdir(parents=True, exist_ok=True)
            name = Path(source).resolve().name
            (args.out / f"{name}.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
        if args.only:
            objects = [obj for obj in objects if is_keda(obj) == (args.only == "keda")]
        failures += validate(objects, source, args.kubernetes_version)
        total += len(objects)
    print(f"{total - failures} of {total} objects valid ({args.only or 'all'} kinds)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
