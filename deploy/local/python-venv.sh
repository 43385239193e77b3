#!/usr/bin/env bash
# Puts the pinned Python test tools (tests/openapi/requirements.txt, from
# PyPI) in a private venv, never in the system's Python. Called by
# install-deps.sh. Does nothing, and needs no network, when the venv already
# holds exactly those versions.
#   python-venv.sh         create or update the venv
#   python-venv.sh --dir   print the venv's directory
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=${TESSERA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/venv}
requirements=$repo/tests/openapi/requirements.txt

if [ "${1:-}" = "--dir" ]; then
  echo "$venv"
  exit 0
fi

wanted=$(grep -v '^#' "$requirements" | sort)
if [ -x "$venv/bin/pip" ] && [ "$("$venv/bin/pip" freeze 2>/dev/null | sort)" = "$wanted" ]; then
  exit 0
fi
echo "python-venv: installing $requirements into $venv" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
