#!/usr/bin/env bash
# Validates docs/openapi.yaml with openapi-spec-validator (the OpenAPI 3.0
# schema plus its own checks: $refs resolve, path parameters are declared).
# Self-test first: a copy with a dangling $ref must be refused, so a
# validator that accepts anything cannot pass. Run from the repository root.
set -uo pipefail

venv=$(deploy/local/python-venv.sh --dir)
validator=$venv/bin/openapi-spec-validator
if [ ! -x "$validator" ]; then
  echo "openapi: $validator is missing: run deploy/local/install-deps.sh" >&2
  exit 1
fi

broken=$(mktemp --suffix=.yaml)
trap 'rm -f "$broken"' EXIT
sed 's@#/components/schemas/Balances@#/components/schemas/NoSuchSchema@' docs/openapi.yaml >"$broken"
if "$validator" "$broken" >/dev/null 2>&1; then
  echo "openapi: self-test: a dangling \$ref was not noticed" >&2
  exit 1
fi

"$validator" docs/openapi.yaml
