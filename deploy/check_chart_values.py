#!/usr/bin/env python3
"""Without helm (Debian has none), what can be checked of the chart: Chart.yaml and values.yaml
parse, every `.Values.X.Y` a template reads exists in values.yaml, and the template actions'
braces balance. Not a render: `helm template` (deploy/check.sh, where helm exists) is.

Usage: check_chart_values.py CHART_DIR
"""
import os
import re
import sys

import yaml


def main(chart):
    meta = yaml.safe_load(open(os.path.join(chart, "Chart.yaml")))
    for key in ("apiVersion", "name", "version", "appVersion"):
        if key not in meta:
            sys.exit(f"{chart}/Chart.yaml: no {key}")
    values = yaml.safe_load(open(os.path.join(chart, "values.yaml")))
    problems = []
    tdir = os.path.join(chart, "templates")
    for name in sorted(os.listdir(tdir)):
        text = open(os.path.join(tdir, name)).read()
        if text.count("{{") != text.count("}}"):
            problems.append(f"{name}: unbalanced {{{{ }}}}")
        for path in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            node = values
            for part in path.strip(".").split("."):
                if not isinstance(node, dict) or part not in node:
                    problems.append(f"{name}: .Values{path} is not in values.yaml")
                    break
                node = node[part]
    if problems:
        sys.exit("\n".join(problems))
    print(f"deploy/check.sh: chart {meta['name']} {meta['version']}: values and templates agree (not rendered)")


if __name__ == "__main__":
    main(sys.argv[1])
