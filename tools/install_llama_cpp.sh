#!/usr/bin/env bash
# Build llama.cpp's llama-server and llama-quantize from the tree vendored in the llama-cpp-python sdist.
# Why from that sdist: it is the registry package that ships llama.cpp whole (the GGUF converter
# convert_hf_to_gguf.py + gguf-py, the OpenAI-compatible server with parallel slots, the quantizer), so the
# converter and the binaries always come from the same llama.cpp revision.
# Why these flags: a native build (-march=native) crashed on the reference CPU (AMX / AVX-512 paths); the
# portable build keeps AVX2/FMA/F16C and picks nothing the CPU may lack.
# Cost (measured on the 2-core reference machine): ~45 s download + unpack, build time printed at the end.
# Idempotent: does nothing when both binaries exist and run.
# Usage: tools/install_llama_cpp.sh [DIR]   (env: LLAMA_CPP_DIR=build/llama-cpp, LLAMA_CPP_VERSION, JOBS)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-${LLAMA_CPP_DIR:-$ROOT/build/llama-cpp}}"
VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
PY="${PYTHON_FOR_DOWNLOAD:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
JOBS="${JOBS:-$(nproc)}"

is_complete() {
  [ -x "$DIR/bin/llama-server" ] && [ -x "$DIR/bin/llama-quantize" ] || return 1
  "$DIR/bin/llama-server" --version >/dev/null 2>&1 || return 1
  [ -f "$DIR/src/convert_hf_to_gguf.py" ] && [ -d "$DIR/src/gguf-py" ]
}

if is_complete; then
  echo "llama.cpp already built: $DIR/bin"
  exit 0
fi
for tool in cmake c++; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required (apt-get install -y cmake g++)" >&2; exit 1; }
done

mkdir -p "$DIR"
if [ ! -f "$DIR/src/convert_hf_to_gguf.py" ]; then
  echo "Fetching llama-cpp-python==$VERSION (sdist, ~77 MB) for its vendored llama.cpp"
  SDIST_DIR="$DIR/sdist"
  mkdir -p "$SDIST_DIR"
  if ! ls "$SDIST_DIR"/llama_cpp_python-"$VERSION".tar.gz >/dev/null 2>&1; then
    "$PY" -m pip download --disable-pip-version-check --no-deps --no-binary :all: \
      "llama-cpp-python==$VERSION" -d "$SDIST_DIR"
  fi
  rm -rf "$DIR/src.partial"
  mkdir -p "$DIR/src.partial"
  tar xzf "$SDIST_DIR/llama_cpp_python-$VERSION.tar.gz" -C "$DIR/src.partial" --strip-components=3 \
    "llama_cpp_python-$VERSION/vendor/llama.cpp"
  rm -rf "$DIR/src"
  mv "$DIR/src.partial" "$DIR/src"
fi

echo "Building llama-server and llama-quantize ($JOBS jobs, portable CPU flags; several minutes on 2 cores)"
START=$(date +%s)
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
nice cmake -S "$DIR/src" -B "$DIR/cmake-build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF >/dev/null
nice cmake --build "$DIR/cmake-build" --target llama-server llama-quantize -j "$JOBS"
mkdir -p "$DIR/bin"
cp "$DIR/cmake-build/bin/llama-server" "$DIR/cmake-build/bin/llama-quantize" "$DIR/bin/"
echo "built in $(( $(date +%s) - START )) s"

if is_complete; then
  echo "llama.cpp ready: $DIR/bin ($("$DIR/bin/llama-server" --version 2>&1 | head -1))"
else
  echo "error: $DIR/bin is incomplete after the build; see the output above" >&2
  exit 1
fi
