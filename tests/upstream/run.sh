#!/usr/bin/env bash
# The upstream checks: gptoss's vLLM commands against vLLM's own parser (check_vllm.py). Not in the default CI:
# vLLM is a 9.5 GB install (about 3 minutes here). Run from the repository root after `bash .ci/run` (or README
# command 2) has made .venv; VLLM_VENV keeps vLLM's venv between runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
VLLM_VERSION=0.33.0          # the release checked; docs/sources.md records it
VLLM_VENV=${VLLM_VENV:-.venv-vllm}
[ -x "$VLLM_VENV/bin/python" ] || python3 -m venv "$VLLM_VENV"
"$VLLM_VENV/bin/pip" install -q "vllm==$VLLM_VERSION"
GPTOSS="$PWD/.venv/bin/gptoss" "$VLLM_VENV/bin/python" tests/upstream/check_vllm.py
