#!/usr/bin/env bash
# Installs the Debian 12 packages Tessera builds and runs with, then the
# pinned Apache Kafka broker's jars (deploy/kafka/fetch.sh) and the pinned
# Python test tools in a venv (deploy/local/python-venv.sh), and nothing
# else. Does nothing (and needs no network) when everything is already there.
set -euo pipefail

packages=(
  build-essential pkg-config make gcc
  librdkafka-dev libhiredis-dev libpq-dev
  libprotobuf-c-dev protobuf-c-compiler
  libevent-dev libjansson-dev libsodium-dev libcmocka-dev
  libcurl4-openssl-dev
  postgresql postgresql-client redis-server
  curl ca-certificates procps
  clang-format                  # make format and the check in .ci/run (Debian 12: version 14)
  docker-compose python3-yaml   # tests validate docker-compose.yml and deploy/k8s (no engine needed)
  python3-venv python3-pip      # the pinned PyPI test tools (deploy/local/python-venv.sh)
  python3-aiosmtpd              # the SMTP server the notification tests deliver to (tests/support/notify_sinks.py)
  openjdk-17-jre-headless maven # the local Kafka broker (deploy/kafka/) and what fetches its jars
)

# Extra groups for the targets that need more: `install-deps.sh fuzz`
# (clang and libFuzzer for make fuzz), `install-deps.sh bench` (bc).
for group in "$@"; do
  case $group in
    fuzz) packages+=(clang libclang-rt-14-dev) ;;
    bench) packages+=(bc linux-perf) ;;
    *) echo "install-deps: unknown group '$group' (fuzz, bench)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$(dirname "$0")/../kafka/fetch.sh"
"$(dirname "$0")/python-venv.sh"
