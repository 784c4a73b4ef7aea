#!/usr/bin/env python3
"""Offline checks of deploy/: render every kustomize overlay, validate the rendered objects
against the Kubernetes schemas, and cross-check them against the real binaries and the
Dockerfiles. Then assert that every broken fixture under deploy/check/fixtures/ is rejected
with the message its `expect.txt` names.

No cluster and no container engine: kubectl is used only for `kubectl kustomize`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes_validate
import yaml

DEPLOY = Path(__file__).resolve().parent.parent
KUBERNETES_VERSION = "1.33.0"
WORKLOAD_KINDS = {"Deployment", "Job", "StatefulSet", "DaemonSet"}
# Images whose repository does not end in one of these are not ours (none today).
IMAGE_PREFIX = "rankdistill/"
# The trainer image's wrapper: `rd-with-teachers SERVICE PORT MIN -- BINARY ...`.
TEACHER_WRAPPER = "rd-with-teachers"


@dataclass
class Binary:
    """What a binary accepts, read from its own `--help`."""

    name: str
    flags: dict[str, dict] = field(default_factory=dict)  # "--addr" -> {"env":..., "default":...}

    @property
    def envs(self) -> dict[str, str]:
        return {o["env"]: f for f, o in self.flags.items() if o.get("env")}


# Per binary: the flags that carry its gRPC and metrics addresses, and the health service it
# registers (checked against the running binary, see `registered_health`).
SERVICES = {
    "teacher-svc": {"grpc_flag": "--addr", "metrics_flag": "--metrics-addr"},
    "student-svc": {"grpc_flag": "--addr", "metrics_flag": "--metrics-addr"},
}


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{where}: {what}")


# ---------------------------------------------------------------- binaries


def parse_help(text: str) -> dict[str, dict]:
    """clap's long help: an option line `--flag <V>` followed by its text, `[env: X=]` and
    `[default: V]`."""
    flags: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^\s{2,}(?:-\w, )?(--[a-z0-9][a-z0-9-]*)", line)
        if m:
            current = m.group(1)
            flags[current] = {"takes_value": "<" in line}
            continue
        if current is None:
            continue
        m = re.search(r"\[env: ([A-Z0-9_]+)=", line)
        if m:
            flags[current]["env"] = m.group(1)
        m = re.search(r"\[default: ([^\]]*)\]", line)
        if m:
            flags[current]["default"] = m.group(1)
    return flags


def load_binary(bin_dir: Path, name: str, subcommand: str | None) -> Binary | None:
    path = bin_dir / name
    if not path.exists():
        return None
    argv = [str(path)] + ([subcommand] if subcommand else []) + ["--help"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{out.stderr}")
    flags = parse_help(out.stdout)
    if not flags:
        if name == "student-svc":
            # Being written: a stub `main` with no CLI yet counts as not built.
            print(f"WARNING: {' '.join(argv)} prints no flags (a stub): treated as not built", file=sys.stderr)
            return None
        raise SystemExit(f"{' '.join(argv)}: no flags parsed from --help")
    return Binary(f"{name} {subcommand}" if subcommand else name, flags)


def registered_health(bin_dir: Path, name: str, services: list[str]) -> dict[str, str]:
    """Starts the real binary with its inputs on FIFOs (loading blocks, as with a slow model
    store), then asks its grpc.health.v1 service about each name, as the kubelet's `grpc:`
    probe does. A registered name answers SERVING/NOT_SERVING, an unknown one NOT_FOUND."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = {"teacher-svc": ["data", "model"], "student-svc": ["model"]}[name]
        argv = [str(bin_dir / name)]
        for flag in inputs:
            d = tmp / flag
            d.mkdir()
            os.mkfifo(d / "manifest.json")
            argv += [f"--{flag}", str(d)]
        argv += ["--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The binary prints `listening on ADDR` once bound; connecting earlier would put the
        # channel into reconnect backoff.
        killer = threading.Timer(20, proc.kill)
        killer.start()
        line = proc.stdout.readline()
        killer.cancel()
        m = re.match(r"listening on (\S+)", line)
        if not m:
            proc.kill()
            raise SystemExit(f"{name} did not print `listening on ADDR`: {line!r} {proc.stderr.read()}")
        port = port_of(m.group(1))
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            stub = health_pb2_grpc.HealthStub(channel)
            answers: dict[str, str] = {}
            deadline = time.monotonic() + 20
            for service in services:
                while True:
                    try:
                        r = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                        answers[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
                        break
                    except grpc.RpcError as e:
                        if e.code() == grpc.StatusCode.NOT_FOUND:
                            answers[service] = "NOT_FOUND"
                            break
                        if proc.poll() is not None or time.monotonic() > deadline:
                            err = proc.stderr.read() if proc.poll() is not None else ""
                            raise SystemExit(f"{name} did not answer health checks: {e.code()} {err}")
                        time.sleep(0.1)
            channel.close()
            return answers
        finally:
            proc.kill()
            proc.wait()


class Health:
    """What each binary's health service answers for a name, asked of the running binary
    once per (binary, name)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.answers: dict[tuple[str, str], str] = {}

    def answer(self, binary: str, service: str) -> str:
        key = (binary, service)
        if key not in self.answers:
            self.answers[key] = registered_health(self.bin_dir, binary, [service])[service]
        return self.answers[key]


# ---------------------------------------------------------------- Dockerfiles


@dataclass
class ImageTarget:
    dockerfile: Path
    stage: str
    entrypoint: list[str]
    user: str | None


def dockerfile_targets(problems: Problems) -> dict[str, ImageTarget]:
    """Image targets: every named stage that is not a `build-*` or `base-*` stage."""
    targets: dict[str, ImageTarget] = {}
    for df in sorted((DEPLOY / "docker").glob("*.Dockerfile")):
        stage = None
        for raw in df.read_text().splitlines():
            line = raw.strip()
            m = re.match(r"(?i)^FROM\s+\S+\s+AS\s+(\S+)", line)
            if m:
                stage = m.group(1)
                if not stage.startswith(("build", "base")):
                    targets[stage] = ImageTarget(df, stage, [], None)
                continue
            if stage in targets:
                if line.upper().startswith("ENTRYPOINT"):
                    targets[stage].entrypoint = json.loads(line.split(None, 1)[1])
                elif line.upper().startswith("USER"):
                    targets[stage].user = line.split(None, 1)[1]
                elif re.match(r"(?i)^COPY\s", line):
                    if "--from=" in line:
                        continue  # a file of another stage
                    for src in line.split()[1:-1]:
                        if not src.startswith("--") and not (DEPLOY.parent / src).exists():
                            problems.add(f"{df.name} [{stage}]", f"COPY source {src} does not exist")
    for t in targets.values():
        where = f"{t.dockerfile.name} [{t.stage}]"
        if not t.entrypoint:
            problems.add(where, "no exec-form ENTRYPOINT")
        user = (t.user or "root").split(":")[0]
        if user in ("root", "0") or not user.isdigit():
            problems.add(where, f"USER must be a numeric non-root uid, got {t.user!r}")
    return targets


# ---------------------------------------------------------------- local images


def built_images() -> tuple[set[str], str]:
    """The image names deploy/images/build.sh builds (its IMAGES list) and its default tag."""
    text = (DEPLOY / "images" / "build.sh").read_text()
    block = re.search(r"^IMAGES=\((.*?)^\)", text, re.S | re.M)
    tag = re.search(r"^TAG=(\S+)", text, re.M)
    if not block or not tag:
        raise SystemExit("deploy check: cannot read IMAGES=( ... ) and TAG= from deploy/images/build.sh")
    names = {line.split()[0].strip('"') for line in block.group(1).splitlines() if line.strip()}
    return names, tag.group(1)


def check_local_images(objects: list[dict], label: str, problems: Problems) -> None:
    """Every container image of a local tree is one that build.sh builds, with its tag, so
    the images built on this machine are the ones the overlay deploys."""
    names, tag = built_images()
    for obj in objects:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        pod_spec = obj["spec"]["template"]["spec"]
        for c in pod_spec.get("initContainers", []) + pod_spec.get("containers", []):
            image = c["image"]
            where = f"{label}: {obj['kind']}/{obj['metadata']['name']} container {c['name']}"
            wanted = {f"rankdistill/{n}:{tag}" for n in names}
            if image not in wanted:
                problems.add(where, f"image {image} is not built by deploy/images/build.sh "
                             f"(it builds {', '.join(sorted(wanted))})")


# ---------------------------------------------------------------- rendering


def render(kubectl: str, directory: Path) -> list[dict]:
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def validate_schemas(objects: list[dict], label: str, problems: Problems) -> None:
    for obj in objects:
        where = f"{label} {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            problems.add(where, f"schema: {e.message} at /{path}")
        except Exception as e:  # noqa: BLE001 - schema not found etc.: a failure, never a skip
            problems.add(where, f"schema: {e}")


# ---------------------------------------------------------------- cross-checks


def port_of(address: str) -> int | None:
    m = re.search(r":(\d+)$", address)
    return int(m.group(1)) if m else None


def parse_args(args: list[str], binary: Binary, where: str, problems: Problems) -> dict[str, str]:
    """Flags a container passes; reports every flag the binary lacks."""
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            spec = binary.flags.get(name)
            if spec is None:
                problems.add(where, f"flag {name} is not in `{binary.name} --help`")
            elif spec["takes_value"] and not eq:
                if i + 1 >= len(args):
                    problems.add(where, f"flag {name} has no value")
                else:
                    value = args[i + 1]
                    i += 1
            values[name] = value
        i += 1
    return values


def cross_check(
    objects: list[dict],
    label: str,
    binaries: dict[str, Binary | None],
    targets: dict[str, ImageTarget],
    health: dict[str, dict[str, str]],
    problems: Problems,
) -> None:
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    hpas = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    pvcs = {o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
    pod_ports: dict[str, set[str]] = {}
    # (workload, binary key, effective value of a flag, where the shard index came from) per
    # container, for the cross-workload checks of the sharded pull.
    runs: list[tuple[dict, str, object, list[str]]] = []

    for obj in objects:
        pod = pod_template(obj)
        if pod is None:
            continue
        pod_spec = pod["spec"]
        name = obj["metadata"]["name"]
        pod_labels = pod.get("metadata", {}).get("labels", {})
        psc = pod_spec.get("securityContext", {})
        for volume in pod_spec.get("volumes", []):
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim and claim not in pvcs:
                problems.add(f"{label} {obj['kind']}/{name}", f"volume claims {claim}, which is not rendered")
        for c in pod_spec.get("containers", []):
            where = f"{label} {obj['kind']}/{name} container {c['name']}"
            csc = c.get("securityContext", {})
            if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
                problems.add(where, "runAsNonRoot is not true")
            if csc.get("readOnlyRootFilesystem") is not True:
                problems.add(where, "readOnlyRootFilesystem is not true")
            if csc.get("allowPrivilegeEscalation") is not False:
                problems.add(where, "allowPrivilegeEscalation is not false")
            if "ALL" not in csc.get("capabilities", {}).get("drop", []):
                problems.add(where, "capabilities do not drop ALL")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(kind, {}):
                        problems.add(where, f"resources.{kind}.{r} missing")
            for p in c.get("ports", []):
                pod_ports.setdefault(name, set()).add(p.get("name", ""))

            # Image -> Dockerfile target -> entrypoint -> binary.
            image = c["image"]
            repo = image.rsplit("@", 1)[0]
            repo = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
            target_name = repo.rsplit("/", 1)[-1]
            if f"/{target_name}" not in f"/{repo}" or "rankdistill/" not in repo:
                problems.add(where, f"image {image} is not a rankdistill/<target> image")
            target = targets.get(target_name)
            if target is None:
                problems.add(where, f"image {image}: no Dockerfile target `{target_name}` in deploy/docker/")
                continue
            argv = list(c.get("command") or target.entrypoint) + list(c.get("args") or [])
            if Path(argv[0]).name == TEACHER_WRAPPER:
                check_wrapper(argv, where, services, deployments, problems)
                argv = argv[argv.index("--") + 1 :] if "--" in argv else argv[4:]
            bin_name = Path(argv[0]).name
            sub = argv[1] if bin_name == "trainer" and len(argv) > 1 else None
            key = f"{bin_name} {sub}" if sub else bin_name
            binary = binaries.get(key, "unknown")
            if binary == "unknown":
                problems.add(where, f"runs {key}, which no check knows")
                continue
            if binary is None:
                print(f"WARNING: SKIPPED {where}: binary {bin_name} is not built; its flags, env, "
                      f"ports and health name are NOT checked", file=sys.stderr)
                continue
            flags = parse_args(argv[2:] if sub else argv[1:], binary, where, problems)

            # Environment: explicit, and every key of every envFrom ConfigMap.
            env: dict[str, str] = {}
            for ref in c.get("envFrom", []):
                cm_name = ref.get("configMapRef", {}).get("name")
                if cm_name is None:
                    problems.add(where, "envFrom other than configMapRef is not checked")
                    continue
                if cm_name not in configmaps:
                    problems.add(where, f"envFrom ConfigMap {cm_name} is not rendered")
                    continue
                for k, v in configmaps[cm_name].items():
                    env[k] = v
                    if k not in binary.envs:
                        problems.add(where, f"env {k} (ConfigMap {cm_name}) is not in `{binary.name} --help`")
            for e in c.get("env", []):
                env[e["name"]] = e.get("value", "")
                if e["name"] not in binary.envs:
                    problems.add(where, f"env {e['name']} is not in `{binary.name} --help`")

            # Default arguments bind this container's values (the function outlives the loop).
            def effective(flag: str, flags=flags, env=env, binary=binary) -> str | None:
                if flag in flags:
                    return flags[flag]
                spec = binary.flags.get(flag, {})
                if spec.get("env") in env:
                    return env[spec["env"]]
                return spec.get("default")

            svc = SERVICES.get(bin_name)
            if svc:
                check_server(c, where, bin_name, effective, svc, pod_spec, health, problems)
            index_sources = [s for s in ("--shard-index", "RD_SHARD_INDEX") if s in flags or s in env]
            runs.append((obj, key, effective, index_sources))

    check_sharded_pull(runs, label, problems)
    check_refresh_cronjob(runs, objects, label, problems)

    # Services point at ports the selected pods name.
    for s in services.values():
        selector = s["spec"].get("selector", {})
        matched = [
            o for o in objects if o["kind"] in WORKLOAD_KINDS
            and all(o["spec"]["template"].get("metadata", {}).get("labels", {}).get(k) == v for k, v in selector.items())
        ]
        where = f"{label} Service/{s['metadata']['name']}"
        if not matched:
            problems.add(where, f"selector {selector} matches no pod template")
        for p in s["spec"].get("ports", []):
            tp = p.get("targetPort", p["port"])
            for o in matched:
                names = pod_ports.get(o["metadata"]["name"], set())
                if isinstance(tp, str) and tp not in names:
                    problems.add(where, f"targetPort {tp} is not a port of {o['metadata']['name']}")
    for h in hpas:
        ref = h["spec"]["scaleTargetRef"]["name"]
        if ref not in deployments:
            problems.add(f"{label} HPA/{h['metadata']['name']}", f"scales {ref}, which is not rendered")
        elif "replicas" in deployments[ref]["spec"]:
            problems.add(f"{label} Deployment/{ref}", "sets replicas although an HPA owns them")
    for p in pdbs:
        sel = p["spec"]["selector"]["matchLabels"]
        if not any(all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())
                   for d in deployments.values()):
            problems.add(f"{label} PDB/{p['metadata']['name']}", "selects no Deployment")


def pod_template(obj: dict) -> dict | None:
    """The pod template of a workload (a CronJob's is inside its jobTemplate); None for the
    other kinds."""
    if obj["kind"] in WORKLOAD_KINDS:
        return obj["spec"]["template"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return None


def check_refresh_cronjob(runs, objects: list[dict], label: str, problems: Problems) -> None:
    """`trainer refresh` runs as a CronJob that never overlaps itself, and publishes into the
    folder student-svc serves, on the volume the students mount."""
    students = [(o, e) for o, k, e, _ in runs if k == "student-svc"]
    for obj, key, effective, _ in runs:
        if key != "trainer refresh":
            continue
        where = f"{label} {obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] != "CronJob":
            problems.add(where, "trainer refresh must run as a CronJob (or a Deployment with --interval-secs)")
            continue
        if obj["spec"].get("concurrencyPolicy") != "Forbid":
            problems.add(where, f"concurrencyPolicy {obj['spec'].get('concurrencyPolicy', 'Allow')!r}: two refreshes "
                                "would race on the candidate and the published folder; use Forbid")
        if pod_template(obj)["spec"].get("restartPolicy") not in ("Never", "OnFailure"):
            problems.add(where, "restartPolicy must be Never or OnFailure")
        publish = effective("--publish")
        if not publish:
            problems.add(where, "no --publish folder")
            continue
        if not students:
            problems.add(where, "publishes a student but no student-svc is rendered")
        for student, student_effective in students:
            other = f"{student['kind']}/{student['metadata']['name']}"
            if student_effective("--model") != publish:
                problems.add(where, f"--publish {publish!r} is not {other}'s --model "
                                    f"{student_effective('--model')!r}: the students would never see it")
            claims = lambda o: {v["persistentVolumeClaim"]["claimName"] for v in pod_template(o)["spec"].get("volumes", [])
                                if "persistentVolumeClaim" in v}
            if not claims(obj) & claims(student):
                problems.add(where, f"shares no volume with {other}")


def check_sharded_pull(runs, label: str, problems: Problems) -> None:
    """The pull split over an Indexed Job: one worker per shard (completions = --shard-count,
    the index left to JOB_COMPLETION_INDEX), the training step merging the same number of
    shards from the same cache folder, and no more streams per teacher than it accepts."""
    def count(effective) -> int | None:
        value = effective("--shard-count")
        return int(value) if value is not None and str(value).isdigit() else None

    pulls = [(o, e, i) for o, k, e, i in runs if k == "trainer pull"]
    teachers = [e for o, k, e, i in runs if k == "teacher-svc"]
    for obj, effective, index_sources in pulls:
        where = f"{label} {obj['kind']}/{obj['metadata']['name']}"
        spec = obj["spec"]
        n = count(effective)
        if n is None:
            problems.add(where, f"--shard-count {effective('--shard-count')!r} is not a number")
            continue
        if index_sources:
            problems.add(where, f"the shard index is set ({', '.join(index_sources)}): every worker would pull "
                                "the same shard; leave it to JOB_COMPLETION_INDEX")
        if obj["kind"] != "Job" or spec.get("completionMode") != "Indexed":
            problems.add(where, "trainer pull must run as an Indexed Job (completionMode: Indexed)")
            continue
        completions = spec.get("completions", 1)
        parallelism = spec.get("parallelism", 1)
        if completions != n:
            problems.add(where, f"completions {completions} but the workers pull --shard-count {n}: "
                                "some shards would never be pulled, or indices would be out of range")
        if parallelism > completions:
            problems.add(where, f"parallelism {parallelism} > completions {completions}")
        streams = effective("--streams-per-teacher")
        for t in teachers:
            limit = t("--max-streams")
            if streams and limit and str(streams).isdigit() and str(limit).isdigit() \
                    and min(parallelism, completions) * int(streams) > int(limit):
                problems.add(where, f"{min(parallelism, completions)} workers x {streams} streams per teacher "
                                    f"exceed teacher-svc --max-streams {limit}: streams would be refused")
    for obj, key, effective, _ in runs:
        if key != "trainer distill":
            continue
        where = f"{label} {obj['kind']}/{obj['metadata']['name']}"
        n = count(effective)
        if n is not None and n > 1 and not pulls:
            problems.add(where, f"merges --shard-count {n} shards but no `trainer pull` Job writes them")
        for pull, pull_effective, _ in pulls:
            other = f"{pull['kind']}/{pull['metadata']['name']}"
            if count(pull_effective) != n:
                problems.add(where, f"merges --shard-count {n} but {other} pulls --shard-count "
                                    f"{count(pull_effective)}")
            for flag in ("--cache-dir", "--rd-k", "--exclude-seen", "--seq-len", "--targets", "--data",
                         "--method", "--cd-top-n", "--rrd-top-n", "--dcd-top-n", "--rcekd-k"):
                if effective(flag) != pull_effective(flag):
                    problems.add(where, f"{flag} {effective(flag)!r} differs from {other}'s "
                                        f"{pull_effective(flag)!r}: the shards would not be found")
            # The student's kind decides its training queries (SASRec's positions or windows).
            if effective("--model") != pull_effective("--student-model"):
                problems.add(where, f"--model {effective('--model')!r} differs from {other}'s "
                                    f"--student-model {pull_effective('--student-model')!r}: the shards "
                                    f"would hold other training queries")


def check_wrapper(argv, where, services, deployments, problems) -> None:
    """rd-with-teachers SERVICE PORT MIN -- ...: a headless Service of that port, and MIN no
    more than the replicas behind it (else the Job waits forever)."""
    if len(argv) < 5 or argv[4] != "--":
        problems.add(where, f"{TEACHER_WRAPPER} needs SERVICE PORT MIN -- COMMAND")
        return
    service, port, minimum = argv[1], argv[2], argv[3]
    s = services.get(service)
    if s is None:
        problems.add(where, f"{TEACHER_WRAPPER}: no Service {service}")
        return
    if s["spec"].get("clusterIP") != "None":
        problems.add(where, f"{TEACHER_WRAPPER}: Service {service} is not headless")
    if not any(str(p["port"]) == port for p in s["spec"]["ports"]):
        problems.add(where, f"{TEACHER_WRAPPER}: Service {service} has no port {port}")
    backing = [d for d in deployments.values()
               if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v
                      for k, v in s["spec"]["selector"].items())]
    replicas = sum(d["spec"].get("replicas", 1) for d in backing)
    if not minimum.isdigit() or int(minimum) < 1 or int(minimum) > replicas:
        problems.add(where, f"{TEACHER_WRAPPER}: waits for {minimum} teachers, {service} has {replicas} replicas")


def check_server(c, where, bin_name, effective, svc, pod_spec, health, problems) -> None:
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    for role, flag in (("grpc", svc["grpc_flag"]), ("metrics", svc["metrics_flag"])):
        addr = effective(flag) or ""
        if not addr.startswith("0.0.0.0:") and not addr.startswith("[::]:"):
            problems.add(where, f"{flag} {addr!r} does not listen on all interfaces")
        if ports.get(role) != port_of(addr):
            problems.add(where, f"containerPort {role}={ports.get(role)} but {flag} listens on {port_of(addr)}")
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = c.get(probe_name)
        if not probe or "grpc" not in probe:
            problems.add(where, f"{probe_name} is not a grpc: probe")
            continue
        if probe["grpc"].get("port") != ports.get("grpc"):
            problems.add(where, f"{probe_name} port {probe['grpc'].get('port')} is not the grpc port {ports.get('grpc')}")
        service = probe["grpc"].get("service", "")
        if not service:
            problems.add(where, f"{probe_name} names no service: it would only prove the process is alive")
        else:
            answer = health.answer(bin_name, service)
            if answer not in ("SERVING", "NOT_SERVING"):
                problems.add(where, f"{probe_name} service {service!r}: {bin_name} health answers {answer}")
    # Drain: grace >= preStop sleep + drain delay + drain timeout.
    pre = c.get("lifecycle", {}).get("preStop", {})
    sleep_s = pre.get("sleep", {}).get("seconds")
    if sleep_s is None:
        problems.add(where, "no preStop sleep")
        sleep_s = 0
    try:
        delay = int(effective("--drain-delay-ms") or 0) / 1000
        timeout = int(effective("--drain-timeout-ms") or 0) / 1000
    except ValueError:
        problems.add(where, "drain settings are not integers")
        return
    grace = pod_spec.get("terminationGracePeriodSeconds", 30)
    need = sleep_s + delay + timeout
    if grace < need:
        problems.add(where, f"terminationGracePeriodSeconds {grace} < preStop {sleep_s} + drain delay {delay:g} + drain timeout {timeout:g}")
    elif grace > need + 30:
        problems.add(where, f"terminationGracePeriodSeconds {grace} is far above the drain ({need:g} s)")
    if delay <= 0:
        problems.add(where, "drain delay is 0: clients get no time to see NOT_SERVING")


# ---------------------------------------------------------------- metrics, dashboard, Flagger

# The sources whose Prometheus registrations the dashboard and the Flagger templates may use.
METRIC_SOURCES = ("student-svc/src", "teacher-svc/src", "serving/src")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "inf", "nan", "Inf", "NaN",
}
FLAGGER_GROUP = "flagger.app/"
FLAGGER_PROVIDERS = {"prometheus"}


def registered_metrics(root: Path) -> set[str]:
    """Every metric name the services register, read from their sources: the literal names
    (`"student_..."`, `"teacher_..."`) and the shared server metrics (`format!("{prefix}_...")`
    in serving) for each prefix given to `ServerTelemetry::new`. A histogram also exports
    `_bucket`, `_sum` and `_count`."""
    literals: dict[str, bool] = {}
    templated: dict[str, bool] = {}
    prefixes: set[str] = set()
    for crate in METRIC_SOURCES:
        for path in sorted((root / crate).rglob("*.rs")):
            text = path.read_text()
            prefixes.update(re.findall(r'ServerTelemetry::new\(\s*"(\w+)"', text))
            for pattern, found in ((r'"((?:student|teacher)_[a-z0-9_]+)"', literals),
                                   (r'format!\(\s*"\{prefix\}(_[a-z0-9_]+)"', templated)):
                for m in re.finditer(pattern, text):
                    before = text[max(0, m.start() - 160):m.start()]
                    found[m.group(1)] = found.get(m.group(1), False) or "istogram" in before
    names = dict(literals)
    for prefix in prefixes:
        for suffix, histogram in templated.items():
            names[prefix + suffix] = histogram
    out = set(names)
    out.update(n + s for n, histogram in names.items() if histogram for s in HISTOGRAM_SUFFIXES)
    return out


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers outside strings, label
    matchers, ranges and grouping clauses that are not called like functions."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    previous = None
    while previous != s:  # label matchers, and {{ }} template variables inside them
        previous, s = s, re.sub(r"\{[^{}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        token = m.group(0)
        if m.start() > 0 and (s[m.start() - 1].isdigit() or s[m.start() - 1] in ".$"):
            continue  # 1e-3, $variables
        if s[m.end():].lstrip().startswith("(") or token in PROMQL_KEYWORDS:
            continue
        names.add(token)
    return names


def check_dashboard(path: Path, registered: set[str], problems: Problems) -> None:
    """A Grafana dashboard: valid JSON, every panel with queries, and every metric name its
    queries (and `label_values(...)` variables) read registered by a service."""
    where = path.relative_to(DEPLOY).as_posix() if path.is_relative_to(DEPLOY) else str(path)
    try:
        dashboard = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        problems.add(where, f"not a JSON dashboard: {e}")
        return
    for key in ("title", "uid", "panels"):
        if key not in dashboard:
            problems.add(where, f"no {key!r}")
    queries: list[tuple[str, str]] = []

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        if panel.get("type") == "row":
            continue
        title = panel.get("title", f"id {panel.get('id')}")
        targets = [t for t in panel.get("targets", []) if t.get("expr")]
        if not targets:
            problems.add(f"{where} panel {title!r}", "has no PromQL query")
        queries += [(f"{where} panel {title!r}", t["expr"]) for t in targets]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        for m in re.finditer(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,", text):
            queries.append((f"{where} variable {variable.get('name')!r}", m.group(1)))
    if not queries:
        problems.add(where, "no queries")
    for place, expr in queries:
        for name in sorted(promql_metric_names(expr) - registered):
            problems.add(place, f"metric {name} is not registered by the services ({', '.join(METRIC_SOURCES)})")


def check_flagger(objects: list[dict], context: list[dict], label: str, registered: set[str],
                  problems: Problems) -> None:
    """Flagger MetricTemplates and Canaries (no Flagger schema ships with a registry we reach,
    see deploy/README.md): the fields Flagger needs, PromQL on registered metrics, and
    references that resolve to the rendered base (`context`)."""
    templates = {o["metadata"]["name"] for o in objects if o.get("kind") == "MetricTemplate"}
    by_kind = lambda kind: {o["metadata"]["name"]: o for o in context if o.get("kind") == kind}
    for obj in objects:
        kind, name = obj.get("kind"), obj.get("metadata", {}).get("name")
        where = f"{label} {kind}/{name}"
        if obj.get("apiVersion") != "flagger.app/v1beta1":
            problems.add(where, f"apiVersion {obj.get('apiVersion')!r} is not flagger.app/v1beta1")
        spec = obj.get("spec", {})
        if kind == "MetricTemplate":
            provider = spec.get("provider", {})
            if provider.get("type") not in FLAGGER_PROVIDERS:
                problems.add(where, f"provider type {provider.get('type')!r} is not one of {sorted(FLAGGER_PROVIDERS)}")
            if not str(provider.get("address", "")).startswith(("http://", "https://")):
                problems.add(where, "provider address is not an http(s) URL")
            query = spec.get("query", "")
            if not query.strip():
                problems.add(where, "no query")
            for metric in sorted(promql_metric_names(query) - registered):
                problems.add(where, f"metric {metric} is not registered by the services ({', '.join(METRIC_SOURCES)})")
        elif kind == "Canary":
            target = spec.get("targetRef", {})
            deployments = by_kind(target.get("kind", "Deployment"))
            if target.get("name") not in deployments:
                problems.add(where, f"targetRef {target.get('kind')}/{target.get('name')} is not rendered by the base")
            scaler = spec.get("autoscalerRef")
            if scaler and scaler.get("name") not in by_kind(scaler.get("kind", "")):
                problems.add(where, f"autoscalerRef {scaler.get('kind')}/{scaler.get('name')} is not rendered by the base")
            service = spec.get("service", {})
            ports = {p["port"] for s in by_kind("Service").values() for p in s["spec"].get("ports", [])
                     if s["metadata"]["name"] == target.get("name")}
            if service.get("port") not in ports:
                problems.add(where, f"service port {service.get('port')} is not a port of Service/{target.get('name')} {sorted(ports)}")
            analysis = spec.get("analysis", {})
            for key in ("interval", "threshold"):
                if key not in analysis:
                    problems.add(where, f"analysis has no {key}")
            metrics = analysis.get("metrics", [])
            if not metrics:
                problems.add(where, "analysis has no metrics")
            for metric in metrics:
                ref = metric.get("templateRef")
                if ref is None:
                    problems.add(where, f"metric {metric.get('name')!r} has no templateRef")
                elif ref.get("name") not in templates:
                    problems.add(where, f"metric {metric.get('name')!r}: templateRef names MetricTemplate "
                                        f"{ref.get('name')}, which is not rendered")
                if "thresholdRange" not in metric:
                    problems.add(where, f"metric {metric.get('name')!r} has no thresholdRange: it could never fail")
        else:
            problems.add(where, "not a Flagger kind this check knows (MetricTemplate, Canary)")


def check_progressive(kubectl, directory: Path, label: str, base: list[dict], registered: set[str]) -> Problems:
    """A kustomization of Flagger objects, checked against the rendered base."""
    problems = Problems()
    try:
        objects = render(kubectl, directory)
    except RuntimeError as e:
        problems.add(label, str(e))
        return problems
    flagger = [o for o in objects if str(o.get("apiVersion", "")).startswith(FLAGGER_GROUP)]
    if len(flagger) != len(objects):
        problems.add(label, "holds objects other than Flagger's")
    if not flagger:
        problems.add(label, "renders no Flagger object")
    check_flagger(flagger, base, label, registered, problems)
    return problems


# ---------------------------------------------------------------- main


def check_tree(kubectl, directory: Path, label: str, binaries, targets, health) -> Problems:
    problems = Problems()
    try:
        objects = render(kubectl, directory)
    except RuntimeError as e:
        problems.add(label, str(e))
        return problems
    validate_schemas(objects, label, problems)
    cross_check(objects, label, binaries, targets, health, problems)
    # The local overlay (and fixtures built on it, named local-*) deploys the images that
    # deploy/images/build.sh makes on this machine.
    if directory.name == "local" or directory.name.startswith("local-"):
        check_local_images(objects, label, problems)
    return problems


def check_fixture(kubectl, fixture: Path, label: str, binaries, targets, health, base, registered) -> list[str]:
    """A broken fixture: a dashboard (dashboard.json), Flagger objects (progressive, checked
    against the base), or an overlay."""
    if (fixture / "dashboard.json").exists():
        problems = Problems()
        check_dashboard(fixture / "dashboard.json", registered, problems)
        return problems.items
    objects = render(kubectl, fixture)
    if objects and all(str(o.get("apiVersion", "")).startswith(FLAGGER_GROUP) for o in objects):
        return check_progressive(kubectl, fixture, label, base, registered).items
    return check_tree(kubectl, fixture, label, binaries, targets, health).items


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--bin-dir", required=True, type=Path)
    opts = ap.parse_args()

    passed = failed = 0

    def result(name: str, problems: list[str]) -> None:
        nonlocal passed, failed
        if problems:
            failed += 1
            print(f"FAIL {name}")
            for p in problems:
                print(f"    {p}")
        else:
            passed += 1
            print(f"ok   {name}")

    binaries: dict[str, Binary | None] = {
        "teacher-svc": load_binary(opts.bin_dir, "teacher-svc", None),
        "student-svc": load_binary(opts.bin_dir, "student-svc", None),
    }
    trainer_subcommands = ["distill", "pull", "refresh", "prepare", "train", "evaluate", "gen-synthetic", "report"]
    for sub in trainer_subcommands:
        binaries[f"trainer {sub}"] = load_binary(opts.bin_dir, "trainer", sub)
    for required in ("teacher-svc", "trainer distill", "trainer pull"):
        if binaries[required] is None:
            raise SystemExit(f"deploy check: {required} is not built in {opts.bin_dir}")
    if binaries["student-svc"] is None:
        print("\n" + "!" * 78 + "\nWARNING: student-svc is not built (no binary in "
              f"{opts.bin_dir}).\nIts manifests are schema-validated but NOT cross-checked "
              "against the binary.\n" + "!" * 78 + "\n", file=sys.stderr)

    health = Health(opts.bin_dir)
    for name, expected in (("teacher-svc", "rankdistill.v1.TeacherService"),
                           ("student-svc", "rankdistill.v1.StudentService")):
        if binaries[name] is not None:
            # The oracle itself: a registered name answers, an unknown one is NOT_FOUND.
            answers = registered_health(opts.bin_dir, name, [expected, "rankdistill.v1.NoSuchService"])
            health.answers.update({(name, k): v for k, v in answers.items()})
            ok = answers[expected] in ("SERVING", "NOT_SERVING") and \
                answers["rankdistill.v1.NoSuchService"] == "NOT_FOUND"
            result(f"{name} health registers {expected} (answers: {answers})",
                   [] if ok else [f"{name} health answers {answers}"])

    dockerfile_problems = Problems()
    targets = dockerfile_targets(dockerfile_problems)
    result(f"Dockerfile targets {sorted(targets)}", dockerfile_problems.items)

    registered = registered_metrics(DEPLOY.parent)
    dashboard_problems = Problems()
    check_dashboard(DEPLOY / "grafana" / "rankdistill.json", registered, dashboard_problems)
    result(f"grafana/rankdistill.json: parses, every query reads one of the {len(registered)} metric names "
           "the services register", dashboard_problems.items)
    base_objects = render(opts.kubectl, DEPLOY / "k8s" / "base")
    result("k8s/progressive: Flagger MetricTemplate and Canary match the base and the registered metrics",
           check_progressive(opts.kubectl, DEPLOY / "k8s" / "progressive", "k8s/progressive",
                             base_objects, registered).items)

    overlays = sorted(p for p in (DEPLOY / "k8s" / "overlays").iterdir() if p.is_dir())
    for overlay in [DEPLOY / "k8s" / "base"] + overlays:
        label = overlay.relative_to(DEPLOY).as_posix()
        result(f"{label}: renders, validates (Kubernetes {KUBERNETES_VERSION}, strict) and matches the binaries",
               check_tree(opts.kubectl, overlay, label, binaries, targets, health).items)

    # Broken fixtures: each must be rejected, with every line of its expect.txt reported.
    fixtures = sorted(p for p in (DEPLOY / "check" / "fixtures").iterdir() if p.is_dir())
    if not fixtures:
        result("broken fixtures exist", ["no fixture under deploy/check/fixtures"])
    for fixture in fixtures:
        label = fixture.relative_to(DEPLOY).as_posix()
        expected = [l for l in (fixture / "expect.txt").read_text().splitlines() if l.strip()]
        found = check_fixture(opts.kubectl, fixture, label, binaries, targets, health, base_objects, registered)
        missing = [e for e in expected if not any(e in f for f in found)]
        for f in found:
            print(f"    (fixture {fixture.name} reports) {f}")
        result(f"{label} is rejected: {' | '.join(expected)}",
               [f"expected a problem containing {e!r}" for e in missing] + ([] if found else ["the checker accepted it"]))

    print(f"deploy: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
