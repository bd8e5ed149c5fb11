#!/usr/bin/env python3
"""Renders deploy/kustomize without kustomize, for machines without kubectl (Debian's
kubernetes-client is too old for this kustomization): what this kustomization uses and nothing
more: resources, namespace, labels (no selectors) and one configMapGenerator from files,
without the name hash (kubectl kustomize adds one and rewrites the references to it).

Usage: render_kustomize.py DIR > rendered.yaml
"""
import os
import sys

import yaml


def main(folder):
    k = yaml.safe_load(open(os.path.join(folder, "kustomization.yaml")))
    allowed = {"apiVersion", "kind", "namespace", "labels", "configMapGenerator", "generatorOptions", "resources"}
    unknown = set(k) - allowed
    if unknown:
        sys.exit(f"render_kustomize.py: {sorted(unknown)} not supported: use kubectl kustomize")
    docs = []
    for gen in k.get("configMapGenerator", []):
        data = {}
        for f in gen.get("files", []):
            data[os.path.basename(f)] = open(os.path.join(folder, f)).read()
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    for r in k.get("resources", []):
        docs.extend(d for d in yaml.safe_load_all(open(os.path.join(folder, r))) if d)
    labels = {}
    for entry in k.get("labels", []):
        if entry.get("includeSelectors"):
            sys.exit("render_kustomize.py: labels with selectors not supported")
        labels.update(entry["pairs"])
    for d in docs:
        meta = d.setdefault("metadata", {})
        if "namespace" in k:
            meta["namespace"] = k["namespace"]
        meta.setdefault("labels", {}).update(labels)
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main(sys.argv[1])
