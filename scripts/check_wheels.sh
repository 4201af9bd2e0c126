#!/usr/bin/env bash
# Packaging check: build every distribution's wheel, install core + evals + one family from the
# wheels (not editable) into a fresh venv, constrained to the CI pins, then list methods and run
# a tiny model end to end. Catches missing package data, entry points and dependency metadata.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PY=${PYTHON:-.venv/bin/python}
for dist in moco_core moco_evals moco_methods_api moco_methods_text moco_methods_logit moco_methods_weight; do
    rm -rf "./$dist/build"
    $PY -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/wheels" "./$dist"
done
python3 -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
$VPY -m pip install -q --upgrade pip
$VPY -m pip install -q -c requirements-ci.txt \
    "$WORK"/wheels/moco_core-*.whl "$WORK"/wheels/moco_evals-*.whl "$WORK"/wheels/moco_methods_text-*.whl
cd "$WORK"
"$WORK/venv/bin/moco" list-methods | tee methods.txt
grep -q majority_vote methods.txt
$VPY - <<'EOF'
import json
from pathlib import Path

from moco_core.testing import build_tiny_pool

paths = build_tiny_pool(Path("models"), 2)
items = [{"id": i, "question": f"Question {i}: pick one.", "choices": {"A": "yes", "B": "no"}, "answer": "A"}
         for i in range(4)]
Path("data.json").write_text(json.dumps({"name": "wheel_check", "task_type": "multiple_choice",
                                          "dev": items[:2], "test": items[2:]}))
Path("run.yaml").write_text(json.dumps({
    "method": "majority_vote",
    "models": [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(paths)],
    "dataset": {"path": "data.json"},
    "generation": {"max_new_tokens": 4, "temperature": 0, "batch_size": 4},
    "output_dir": "run",
}))
EOF
MOCO_CACHE_DIR="$WORK/cache" HF_HUB_OFFLINE=1 "$WORK/venv/bin/moco" run run.yaml
test -s run/predictions.jsonl
test -s run/metrics.json
$VPY -c "import moco_core, pathlib; assert (pathlib.Path(moco_core.__file__).parent / 'py.typed').is_file(), 'py.typed missing'"
echo "wheels: built, installed and ran"
