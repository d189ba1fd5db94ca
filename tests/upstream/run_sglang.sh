#!/usr/bin/env bash
# The upstream check of SGLang: gptoss's `sglang serve` commands against SGLang's own parser (check_sglang.py). Not
# in the default CI: SGLang imports torch (5.4 GB here). Run from the repository root after `bash .ci/run` (or README
# command 2) has made .venv; SGLANG_VENV keeps SGLang's venv between runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
SGLANG_VERSION=0.5.23        # the release checked: backends/sglang.py SGLANG_RELEASE
SGLANG_VENV=${SGLANG_VENV:-.venv-sglang}
[ -x "$SGLANG_VENV/bin/python" ] || python3 -m venv "$SGLANG_VENV"
"$SGLANG_VENV/bin/pip" install -q "sglang==$SGLANG_VERSION" pyyaml
GPTOSS="$PWD/.venv/bin/gptoss" "$SGLANG_VENV/bin/python" tests/upstream/check_sglang.py
