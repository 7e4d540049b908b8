#!/usr/bin/env bash
# Installs the Debian 12 packages detr-serve needs to build, test and serve.
# Idempotent: only packages that are missing are installed, so a set-up machine
# pays one dpkg query and nothing else. Run as root (CI and `make` do).
set -euo pipefail

# Build and runtime of the C++ code.
BUILD_PACKAGES=(
  make build-essential cmake ninja-build ccache pkg-config
  libtorch-dev
  libopenblas0-openmp          # LibTorch's BLAS: ~15x the reference BLAS here
  libdnnl-dev                  # oneDNN, called directly for Winograd backbone convolutions
  # Debian's oneDNN is built with its OpenCL GPU runtime: its CMake config
  # requires OpenCL, but libdnnl-dev does not depend on these two.
  ocl-icd-opencl-dev opencl-headers
  libopencv-dev
  libjpeg-dev                  # libjpeg-turbo, called directly to decode JPEG requests
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  prometheus-cpp-dev
  libboost-dev                 # Beast and Asio: the HTTP server of /metrics and the OIP REST front end
  libspdlog-dev libfmt-dev
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
# Reference scripts (checkpoint conversion, the PyTorch eager benchmark) and
# the observability tests (a real Prometheus, promtool).
TOOL_PACKAGES=(
  python3 python3-torch python3-torchvision python3-numpy python3-matplotlib
  prometheus
  clang-format                 # make test checks the formatting
  openssl                      # make test makes TLS certificates with it
  curl python3-grpcio          # the Open Inference Protocol's end-to-end test: clients we did not write
  python3-yaml                 # server/tools/render_k8s_monitoring.py
  nodejs npm                   # the manifests' schema check (npm's kubernetes-models), the ONNX Runtime bench
)

# Fuzzing (make fuzz): libFuzzer is clang's, and its runtime has a package of its own.
FUZZ_PACKAGES=(clang libclang-rt-14-dev)

# DETR_DEPS=build: only what building the binaries needs (the Docker build stage);
# DETR_DEPS=fuzz: everything, and the fuzzing compiler.
packages=("${BUILD_PACKAGES[@]}")
[[ "${DETR_DEPS:-all}" == build ]] || packages+=("${TOOL_PACKAGES[@]}")
[[ "${DETR_DEPS:-all}" != fuzz ]] || packages+=("${FUZZ_PACKAGES[@]}")

# --list: print the packages, one per line, and change nothing (the
# dependency-closure test reads them from here).
if [[ "${1:-}" == --list ]]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] && continue
  # NodeSource's nodejs carries npm and conflicts with Debian's npm package:
  # a working npm command is enough.
  [[ "$pkg" == npm ]] && command -v npm > /dev/null && continue
  missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo $0)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
