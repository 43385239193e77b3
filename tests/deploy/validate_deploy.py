#!/usr/bin/env python3
"""Checks the deployment files without a Docker engine or a cluster.

docker-compose.yml: `docker-compose config` must accept it (Debian's
docker-compose parses and resolves it offline), then the resolved file must
have: the official apache/kafka image of the version the local runtime
runs (deploy/kafka/pom.xml) in KRaft mode, with a fixed CLUSTER_ID and its
log directory (KAFKA_LOG_DIRS) on a mounted volume, a topics job,
PostgreSQL and Redis with healthchecks, Redis with requirepass, and every service built from
deploy/docker/Dockerfile with an admin-port healthcheck and depends_on
conditions.

deploy/k8s: per service a Deployment with liveness and readiness probes on
the admin port, resource requests, the instance id from the pod name,
terminationGracePeriodSeconds at least the drain time, and a
PodDisruptionBudget selecting it.

Every pod (Deployments and the topics Job) meets the Kubernetes
"restricted" Pod Security Standard: runAsNonRoot, seccompProfile
RuntimeDefault, and per container allowPrivilegeEscalation false,
readOnlyRootFilesystem true and capabilities drop ALL. Every image, in the
manifests, in docker-compose.yml and the Dockerfile's FROM lines, is pinned by a version tag (digits
and dots, never `latest` or no tag).

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


# A version tag: "name:1.2.3" (an optional suffix such as -alpine is fine),
# never "latest", a bare major ("redis:7" moves under our feet) or no tag.
PINNED_TAG = re.compile(r"^[^:@]+(:[0-9]+\.[0-9]+[0-9A-Za-z.+_-]*)$")


def image_pinned(image):
    return bool(PINNED_TAG.match(str(image or "")))


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
    for name, svc in svcs.items():
        if "image" in svc and not image_pinned(svc["image"]):
            problems.append(f"{name}: image {svc['image']} is not pinned by version")
        if "build" in svc and not image_pinned(svc.get("image")):
            problems.append(f"{name}: a built service needs an image name with a version tag")
    redis_cmd = " ".join(svcs.get("redis", {}).get("command", []))
    if "requirepass" not in redis_cmd:
        problems.append("redis: no requirepass (Redis AUTH)")
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
        if "TESSERA_REDIS_PASSWORD" not in s.get("environment", {}):
            problems.append(f"{name}: no TESSERA_REDIS_PASSWORD")
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


def check_dockerfile(text):
    """Every FROM names an image pinned by version."""
    problems = []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["FROM"] and len(words) > 1 and not image_pinned(words[1]):
            problems.append(f"Dockerfile: base image {words[1]} is not pinned by version")
    return problems


def load_k8s(directory):
    docs = []
    for f in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(f) as fh:
            docs += [d for d in yaml.safe_load_all(fh) if d]
    return docs


def check_restricted(what, pod):
    """The "restricted" Pod Security Standard, for one pod spec."""
    problems = []
    psc = pod.get("securityContext", {})
    if not psc.get("runAsNonRoot"):
        problems.append(f"k8s {what}: not runAsNonRoot")
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        sc = c.get("securityContext", {})
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp != "RuntimeDefault":
            problems.append(f"k8s {what}/{c['name']}: seccompProfile is not RuntimeDefault")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"k8s {what}/{c['name']}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"k8s {what}/{c['name']}: readOnlyRootFilesystem is not true")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []) or \
                sc.get("capabilities", {}).get("add"):
            problems.append(f"k8s {what}/{c['name']}: capabilities do not drop ALL")
        if sc.get("privileged") or sc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"k8s {what}/{c['name']}: privileged or root")
        if not image_pinned(c.get("image")):
            problems.append(f"k8s {what}/{c['name']}: image {c.get('image')} is not pinned "
                            "by version")
    return problems


def check_k8s(docs):
    problems = []
    for d in docs:
        if d.get("kind") in ("Deployment", "Job"):
            problems += check_restricted(d["metadata"]["name"], d["spec"]["template"]["spec"])
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
        if "secretKeyRef" not in envs.get("TESSERA_REDIS_PASSWORD", {}).get("valueFrom", {}):
            problems.append(f"k8s {name}: TESSERA_REDIS_PASSWORD is not from a Secret")
        if not any(p["spec"].get("selector", {}).get("matchLabels") == labels for p in pdbs):
            problems.append(f"k8s {name}: no PodDisruptionBudget selects it")
    return problems


def self_test(compose, docs, dockerfile):
    """Each mutation must produce at least one problem."""
    failures = []
    for what, text in [("bare debian:12", dockerfile.replace("debian:12.8 ", "debian:12 ")),
                       ("slim latest", dockerfile.replace("debian:12.8-slim", "debian:latest"))]:
        if text == dockerfile or not check_dockerfile(text):
            failures.append("self-test: not caught: " + what)
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

    def container(k, name, index=0):
        d = next(d for d in k if d["metadata"]["name"] == name)
        return d["spec"]["template"]["spec"]["containers"][index]

    def pod(k, name):
        return next(d for d in k if d["metadata"]["name"] == name)["spec"]["template"]["spec"]

    mutations += [
        ("latest image", lambda c, k: container(k, "tessera-ingest").update(
            image="tessera/ingest:latest")),
        ("untagged job image", lambda c, k: container(k, "tessera-topics").update(
            image="tessera/topics")),
        ("redis:latest in compose", lambda c, k: c["services"]["redis"].update(
            image="redis:latest")),
        ("bare major in compose", lambda c, k: c["services"]["postgres"].update(
            image="postgres:15")),
        ("built image unversioned", lambda c, k: c["services"]["ledger"].pop("image")),
        ("privilege escalation", lambda c, k: container(k, "tessera-ledger")[
            "securityContext"].update(allowPrivilegeEscalation=True)),
        ("writable root", lambda c, k: container(k, "tessera-campaign")[
            "securityContext"].pop("readOnlyRootFilesystem")),
        ("capabilities kept", lambda c, k: container(k, "tessera-tiering")[
            "securityContext"].update(capabilities={"drop": ["NET_RAW"]})),
        ("capability added", lambda c, k: container(k, "tessera-notification")[
            "securityContext"]["capabilities"].update(add=["NET_ADMIN"])),
        ("no seccomp", lambda c, k: (pod(k, "tessera-ingest")["securityContext"].pop(
            "seccompProfile", None), container(k, "tessera-ingest")["securityContext"].pop(
            "seccompProfile", None))),
        ("redis without a password", lambda c, k: c["services"]["redis"].update(
            command=["redis-server"])),
        ("k8s without the redis password", lambda c, k: container(k, "tessera-ledger").update(
            env=[e for e in container(k, "tessera-ledger")["env"]
                 if e["name"] != "TESSERA_REDIS_PASSWORD"])),
        ("job as root", lambda c, k: pod(k, "tessera-topics")["securityContext"].update(
            runAsNonRoot=False)),
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
    with open(os.path.join(root, "deploy", "docker", "Dockerfile")) as fh:
        dockerfile = fh.read()
    problems = check_compose(compose) + check_k8s(docs) + check_dockerfile(dockerfile)
    if "--self-test" in sys.argv:
        problems += self_test(compose, docs, dockerfile)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
