#!/usr/bin/env python3
"""What the schemas cannot say about resticpilot's CronJobs, checked on rendered manifests.

Usage: check_manifests.py RENDERED.yaml
Every CronJob: concurrencyPolicy Forbid, the bounds (startingDeadlineSeconds,
activeDeadlineSeconds, backoffLimit), exit 2 final (podFailurePolicy), a fixed spec.hostname
unique among the jobs, terminationGracePeriodSeconds above the config's grace_period, JSON
logs, non-root, read-only root filesystem, no capabilities, application volumes read-only.
Every profile of the config has a backup CronJob with prune: false; every repository a
maintenance CronJob (resticpilot prune). Prints the config.yaml it found (for `validate`).
"""
import re
import sys

import yaml


def seconds(d):
    m = re.fullmatch(r"(\d+)([smhd]?)", str(d))
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def main(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    problems = []
    configs = [d for d in docs if d["kind"] == "ConfigMap" and "config.yaml" in d.get("data", {})]
    if len(configs) != 1:
        sys.exit(f"{path}: expected one ConfigMap with config.yaml, found {len(configs)}")
    config = yaml.safe_load(configs[0]["data"]["config.yaml"])
    grace = seconds(config.get("grace_period", "60s"))
    backups, maintained, hostnames = set(), set(), []
    for d in docs:
        if d["kind"] != "CronJob":
            continue
        name = d["metadata"]["name"]

        def need(ok, what):
            if not ok:
                problems.append(f"CronJob {name}: {what}")

        spec = d["spec"]
        job = spec["jobTemplate"]["spec"]
        pod = job["template"]["spec"]
        need(spec.get("concurrencyPolicy") == "Forbid", "concurrencyPolicy must be Forbid")
        need(spec.get("startingDeadlineSeconds", 0) > 0, "needs startingDeadlineSeconds")
        need(job.get("activeDeadlineSeconds", 0) > 0, "needs activeDeadlineSeconds")
        need("backoffLimit" in job, "needs backoffLimit")
        rules = job.get("podFailurePolicy", {}).get("rules", [])
        need(any(r["action"] == "FailJob" and 2 in r.get("onExitCodes", {}).get("values", [])
                 and r["onExitCodes"].get("operator") == "In" for r in rules),
             "podFailurePolicy must make exit 2 final (FailJob)")
        need(pod.get("restartPolicy") == "Never", "restartPolicy must be Never (podFailurePolicy)")
        need(bool(pod.get("hostname")), "needs a fixed spec.hostname")
        hostnames.append(pod.get("hostname"))
        need(pod.get("terminationGracePeriodSeconds", 30) > grace,
             f"terminationGracePeriodSeconds must be above grace_period ({grace}s)")
        psc = pod.get("securityContext", {})
        need(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "must run as non-root")
        (c,) = [c for c in pod["containers"] if c["name"] == "resticpilot"]
        sc = c.get("securityContext", {})
        need(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
        need(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
        need(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities must drop ALL")
        args = c["args"]
        need("--log-format" in args and args[args.index("--log-format") + 1] == "json",
             "logs must be JSON (--log-format json)")
        claims = {v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        for v in pod["volumes"]:
            if "persistentVolumeClaim" in v:
                need(v["persistentVolumeClaim"].get("readOnly") is True, f"PVC {v['name']} must be read-only")
        for m in c["volumeMounts"]:
            if m["name"] in claims or m["name"] in ("config", "secrets"):
                need(m.get("readOnly") is True, f"mount {m['name']} must be read-only")
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        need(config.get("state_dir") in mounts, "state_dir must be a mounted (emptyDir) volume")
        if args[0] == "backup":
            backups.add(args[1])
        elif args[0] == "prune":
            maintained.add(args[1])
        else:
            problems.append(f"CronJob {name}: runs {args[0]}, expected backup or prune")
    for p, prof in config.get("profiles", {}).items():
        if p not in backups:
            problems.append(f"profile {p} has no backup CronJob")
        if prof.get("retention", {}).get("prune", True) is not False:
            problems.append(f"profile {p}: retention.prune must be false (the maintenance CronJob prunes)")
    for r in config.get("repositories", {}):
        if r not in maintained:
            problems.append(f"repository {r} has no maintenance CronJob")
    dup = {h for h in hostnames if hostnames.count(h) > 1}
    if dup:
        problems.append(f"spec.hostname used by more than one CronJob: {sorted(dup)}")
    if problems:
        sys.exit(f"{path}:\n  " + "\n  ".join(problems))
    sys.stdout.write(configs[0]["data"]["config.yaml"])


if __name__ == "__main__":
    main(sys.argv[1])
