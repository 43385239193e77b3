#!/usr/bin/env bash
# Puts the pinned Apache Kafka broker's jars (pom.xml) in the shared cache
# and checks them against jars.sha256: exactly those files, those hashes.
# Called by `make deps`. Does nothing, and needs no network, when the cache
# already holds the pinned set; the runtime never downloads anything.
#
#   fetch.sh           resolve (when needed) and verify
#   fetch.sh --dir     print the cache directory
#   fetch.sh --version print the pinned Kafka version
#   fetch.sh --check   verify only (exit 1 when the cache is missing or wrong)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
[ -n "$version" ] || { echo "fetch.sh: no kafka.version in $here/pom.xml" >&2; exit 1; }
# Outside any checkout, so every clone and runtime shares one copy.
cache=${TESSERA_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/kafka-$version}

say() { echo "kafka-deps: $*" >&2; }

# True when directory $1 holds exactly the pinned jars.
verify() {
  [ -d "$1/libs" ] || return 1
  diff -q <(cd "$1/libs" && sha256sum -- *.jar | sort -k2) "$here/jars.sha256" >/dev/null
}

case ${1:-} in
  --dir) echo "$cache"; exit 0 ;;
  --version) echo "$version"; exit 0 ;;
  --check) verify "$cache"; exit ;;
  "") ;;
  *) echo "usage: $0 [--dir|--version|--check]" >&2; exit 2 ;;
esac

verify "$cache" && exit 0

say "resolving Apache Kafka $version from Maven Central into $cache"
mkdir -p "$(dirname "$cache")"
tmp=$(mktemp -d "$(dirname "$cache")/.kafka-$version.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1 ||
  { cat "$tmp/mvn.log" >&2; say "mvn failed"; exit 1; }
if ! verify "$tmp"; then
  say "the resolved jars differ from deploy/kafka/jars.sha256:"
  diff <(cd "$tmp/libs" && sha256sum -- *.jar | sort -k2) "$here/jars.sha256" >&2 || true
  exit 1
fi
rm -f "$tmp/mvn.log"
rm -rf "$cache"
mv "$tmp" "$cache"
trap - EXIT
say "Apache Kafka $version ready in $cache"
