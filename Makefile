# detr-serve: one entry point for set-up, build, tests and benchmarks.
# Every target installs what is missing first (deploy/install-deps.sh), so the
# commands in README.md work on a fresh Debian 12 machine as root.

BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test serve bench clean

all: build

deps:
	bash deploy/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# Until the gRPC server lands, `serve` runs the prediction CLI on the sample
# image with the embedded default model (seeded random weights) and draws it.
serve: build
	$(BUILD_DIR)/bin/detr-predict --model-config deploy/models/default-softmax.json \
	  --random-init 0 --image deploy/samples/shapes.png --threshold 0 --max-detections 5 \
	  --json $(BUILD_DIR)/serve-detections.json --draw $(BUILD_DIR)/serve-detections.png
	@echo "detections: $(BUILD_DIR)/serve-detections.json, picture: $(BUILD_DIR)/serve-detections.png"

# Benchmarks are not part of `make test`: they take minutes and print figures.
bench: build
	bash tests/bench/run_detr_forward_bench.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
