#!/usr/bin/env python3
"""Checks the deployment files without a Docker engine or a cluster.

docker-compose.yml: `docker-compose config` must accept it (Debian's
docker-compose parses and resolves it offline), then the resolved file must
have: the official apache/kafka image of the version the local runtime
runs (deploy/kafka/pom.xml) in KRaft mode, with a fixed CLUSTER_ID and its
log directory (KAFKA_LOG_DIRS) on a mounted volume, a topics job,
PostgreSQL and Redis with healthchecks, and every service built from
deploy/docker/Dockerfile with an admin-port healthcheck and depends_on
conditions.

deploy/k8s: per service a Deployment with liveness and readiness probes on
the admin port, resource requests, a non-root security context, the
instance id from the pod name, terminationGracePeriodSeconds at least the
drain time, and a PodDisruptionBudget selecting it.

Prints one line per problem and exits 1 if there is any. --self-test
checks that broken files are caught."""
import copy
import glob
import os
import re
import subprocess
import sys

import yaml

SERVICES = ["ingest", "ledger", "tiering", "campaign", "notification"]
DRAIN_S = {"ingest": 10, "ledger": 15, "tiering": 15, "campaign": 15, "notification": 15}


def compose_resolved(path):
    out = subprocess.run(["docker-compose", "-f", path, "config"], capture_output=True, text=True)
    if out.returncode != 0:
        return None, "docker-compose config failed: " + out.stderr.strip()
    return yaml.safe_load(out.stdout), None


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def local_kafka_version():
    """The broker version the local runtime runs (deploy/kafka/pom.xml)."""
    with open(os.path.join(ROOT, "deploy", "kafka", "pom.xml")) as f:
        m = re.search(r"<kafka.version>([^<]+)</kafka.version>", f.read())
    return m.group(1) if m else None


def volume_targets(service):
    """Container paths of the service's volumes (short or long syntax)."""
    targets = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            targets.append(str(v.get("target", "")))
        else:
            parts = str(v).split(":")
            if len(parts) >= 2:
                targets.append(parts[1])
    return [t.rstrip("/") for t in targets if t]


def check_kafka(kafka):
    problems = []
    version = local_kafka_version()
    if str(kafka.get("image", "")) != f"apache/kafka:{version}":
        problems.append(f"kafka: image must be apache/kafka:{version}, the local runtime's version")
    env = kafka.get("environment", {})
    if "controller" not in str(env.get("KAFKA_PROCESS_ROLES", "")):
        problems.append("kafka: not in KRaft mode (KAFKA_PROCESS_ROLES)")
    # A Kafka cluster id: 16 bytes in URL-safe base64 without padding.
    if not re.fullmatch(r"[A-Za-z0-9_-]{22}", str(env.get("CLUSTER_ID", ""))):
        problems.append("kafka: no fixed CLUSTER_ID (22 base64url characters)")
    log_dirs = [d.rstrip("/") for d in str(env.get("KAFKA_LOG_DIRS", "")).split(",") if d]
    mounts = volume_targets(kafka)
    if not log_dirs:
        problems.append("kafka: KAFKA_LOG_DIRS unset (the image writes to /tmp/kraft-combined-logs)")
    for d in log_dirs:
        if not any(d == m or d.startswith(m + "/") for m in mounts):
            problems.append(f"kafka: log dir {d} is not on a mounted volume")
    return problems


def check_compose(doc):
    problems = []
    svcs = doc.get("services", {})
    problems += check_kafka(svcs.get("kafka", {}))
    for name in ["kafka", "postgres", "redis"]:
        if "healthcheck" not in svcs.get(name, {}):
            problems.append(f"{name}: no healthcheck")
    topics = svcs.get("topics", {})
    if topics.get("build", {}).get("args", {}).get("SERVICE") != "topics":
        problems.append("topics: no topic-creation job built from the Dockerfile")
    for name in SERVICES:
        s = svcs.get(name)
        if s is None:
            problems.append(f"{name}: missing")
            continue
        build = s.get("build", {})
        if not str(build.get("dockerfile", "")).endswith("deploy/docker/Dockerfile"):
            problems.append(f"{name}: not built from deploy/docker/Dockerfile")
        if build.get("args", {}).get("SERVICE") != name:
            problems.append(f"{name}: build arg SERVICE is not {name}")
        test = " ".join(s.get("healthcheck", {}).get("test", []))
        if "9100" not in test or "/readyz" not in test:
            problems.append(f"{name}: healthcheck does not probe /readyz on the admin port")
        deps = s.get("depends_on", {})
        if not isinstance(deps, dict) or deps.get("topics", {}).get("condition") != \
                "service_completed_successfully" or any(
                    deps.get(d, {}).get("condition") != "service_healthy"
                    for d in ["postgres", "redis"]):
            problems.append(f"{name}: depends_on lacks conditions on topics/postgres/redis")
    return problems


def load_k8s(directory):
    docs = []
    for f in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(f) as fh:
            docs += [d for d in yaml.safe_load_all(fh) if d]
    return docs


def check_k8s(docs):
    problems = []
    deployments = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Deployment"}
    pdbs = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
    for name in SERVICES:
        dep = deployments.get("tessera-" + name)
        if dep is None:
            problems.append(f"k8s {name}: no Deployment")
            continue
        labels = dep["spec"]["selector"]["matchLabels"]
        pod = dep["spec"]["template"]["spec"]
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace < DRAIN_S[name]:
            problems.append(f"k8s {name}: terminationGracePeriodSeconds {grace} < drain {DRAIN_S[name]}")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"k8s {name}: not runAsNonRoot")
        c = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for probe, path in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")]:
            get = c.get(probe, {}).get("httpGet", {})
            port = get.get("port")
            if get.get("path") != path or ports.get(port, port) != 9100:
                problems.append(f"k8s {name}: {probe} is not {path} on the admin port 9100")
        req = c.get("resources", {}).get("requests", {})
        if "cpu" not in req or "memory" not in req:
            problems.append(f"k8s {name}: no cpu/memory requests")
        envs = {e["name"]: e for e in c.get("env", [])}
        if envs.get("TESSERA_INSTANCE_ID", {}).get("valueFrom", {}).get("fieldRef", {}).get(
                "fieldPath") != "metadata.name":
            problems.append(f"k8s {name}: TESSERA_INSTANCE_ID is not the pod name")
        if not any(p["spec"].get("selector", {}).get("matchLabels") == labels for p in pdbs):
            problems.append(f"k8s {name}: no PodDisruptionBudget selects it")
    return problems


def self_test(compose, docs):
    """Each mutation must produce at least one problem."""
    failures = []
    mutations = [
        ("kafka 3.7", lambda c, k: c["services"]["kafka"].update(image="apache/kafka:3.7.0")),
        ("kafka 3.9.0 beside a local 3.9.1",
         lambda c, k: c["services"]["kafka"].update(image="apache/kafka:3.9.0")),
        ("no log dirs", lambda c, k: c["services"]["kafka"]["environment"].pop("KAFKA_LOG_DIRS")),
        ("log dirs off the volume", lambda c, k: c["services"]["kafka"]["environment"].update(
            KAFKA_LOG_DIRS="/tmp/kraft-combined-logs")),
        ("no cluster id", lambda c, k: c["services"]["kafka"]["environment"].pop("CLUSTER_ID")),
        ("no kafka volume", lambda c, k: c["services"]["kafka"].pop("volumes")),
        ("no topics job", lambda c, k: c["services"].pop("topics")),
        ("no ledger healthcheck", lambda c, k: c["services"]["ledger"].pop("healthcheck")),
        ("no conditions", lambda c, k: c["services"]["tiering"].update(depends_on={})),
        ("no readiness probe", lambda c, k: next(
            d for d in k if d["metadata"]["name"] == "tessera-ledger")["spec"]["template"]
            ["spec"]["containers"][0].pop("readinessProbe")),
        ("short grace", lambda c, k: next(
            d for d in k if d["metadata"]["name"] == "tessera-campaign")["spec"]["template"]
            ["spec"].update(terminationGracePeriodSeconds=5)),
        ("no pdb", lambda c, k: k.remove(next(
            d for d in k if d["kind"] == "PodDisruptionBudget"
            and d["metadata"]["name"] == "tessera-tiering"))),
    ]
    for what, mutate in mutations:
        c, k = copy.deepcopy(compose), copy.deepcopy(docs)
        mutate(c, k)
        if not check_compose(c) + check_k8s(k):
            failures.append("self-test: not caught: " + what)
    return failures


def main():
    root = ROOT
    compose, err = compose_resolved(os.path.join(root, "docker-compose.yml"))
    if err:
        print(err)
        return 1
    docs = load_k8s(os.path.join(root, "deploy", "k8s"))
    problems = check_compose(compose) + check_k8s(docs)
    if "--self-test" in sys.argv:
        problems += self_test(compose, docs)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
