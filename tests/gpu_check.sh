#!/usr/bin/env bash
# The GPU paths' check (tests that skip without CUDA), for a machine with a GPU whose Python has torch+CUDA,
# numpy, pandas, pyarrow, safetensors, pyyaml, rich, typer and pytest but no pydantic and no network.
# Beforehand, on a machine with network, put the missing wheels in .whl/ at the repo root, e.g.
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 \
#     typing-inspection==0.4.5 typing_extensions==4.16.0
# Then, on the GPU machine, from the repo root: bash tests/gpu_check.sh   (the log also goes to $OUT)
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
OUT="${OUT:-/tmp/gpu_check_out}"
mkdir -p "$OUT"
LOG="$OUT/gpu_tests.log"

{
  echo "== installing $(ls .whl/*.whl | wc -l) wheels into /tmp/site"
  if ! python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl; then
    echo "pip install failed: unpacking the wheels instead"
    mkdir -p /tmp/site
    for wheel in .whl/*.whl; do python3 -m zipfile -e "$wheel" /tmp/site || exit 3; done
  fi
} 2>&1 | tee "$LOG"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "installing the wheels failed" | tee -a "$LOG"; exit 3; }

# Exported so that the process executor's workers (python -m cardloop.engine.worker) find cardloop and pydantic.
export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export CARDLOOP_TEST_CUDA=1  # tests/conftest.py hides CUDA from the suite otherwise
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"  # deterministic cuBLAS (the tests set it too)

{
  echo "== device"
  nvidia-smi -L 2>&1 || echo "(no nvidia-smi)"
  echo "== versions"
  python3 - <<'EOF'
import sys, torch, pydantic, cardloop
print("python", sys.version.split()[0], sys.executable)
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
print("pydantic", pydantic.__version__, pydantic.__file__)
print("cardloop", cardloop.__version__, cardloop.__file__)
EOF
} 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "environment check failed" | tee -a "$LOG"; exit 4; }

echo "== tests" | tee -a "$LOG"
timeout "${GPU_CHECK_TEST_TIMEOUT:-480}" python3 -m pytest -q -rs -p no:cacheprovider \
  tests/engine/test_cuda.py tests/cards/test_evaluate.py tests/store/test_model_codec.py tests/cards/test_model.py \
  2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
echo "== pytest exit code $rc" | tee -a "$LOG"
exit "$rc"
