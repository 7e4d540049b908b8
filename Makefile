# detr-serve: one entry point for set-up, build, tests and benchmarks.
# Every target installs what is missing first (deploy/install-deps.sh), so the
# commands in README.md work on a fresh Debian 12 machine as root.

BUILD_DIR ?= build
# ccache keys on paths relative to the checkout, so that a clean clone in
# another folder (CI's) reuses what a build here compiled.
export CCACHE_BASEDIR ?= $(CURDIR)
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test serve bench bench-record bench-traffic bench-canvases bench-gpu bench-memory-limit soak fuzz train train-nonsquare ablations train-large serve-large fresh-check calibrate serve-int8 bench-int8 bench-int8-traffic clean

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

# The server on its built-in configuration (deploy/detr-server.yaml): two small
# models, softmax and optimization attention, in an A/B experiment. Ctrl-C (or
# SIGTERM) drains and stops it. LISTEN/METRICS_LISTEN override the addresses.
LISTEN ?= 0.0.0.0:50051
METRICS_LISTEN ?= 0.0.0.0:9464
serve: build
	$(BUILD_DIR)/bin/detr-server --listen $(LISTEN) --metrics-listen $(METRICS_LISTEN)

# The optional second pair (deploy/detr-server-large.yaml): 512-px models whose
# encoder attends over 256 tokens, where attention's cost shows in the A/B.
serve-large: build
	$(BUILD_DIR)/bin/detr-server --config deploy/detr-server-large.yaml --listen $(LISTEN) --metrics-listen $(METRICS_LISTEN)

# Precision as an A/B (deploy/detr-server-int8.yaml): the default softmax model
# in float32 against its int8 variant (docs/int8.md).
serve-int8: build
	$(BUILD_DIR)/bin/detr-server --config deploy/detr-server-int8.yaml --listen $(LISTEN) --metrics-listen $(METRICS_LISTEN)

# Benchmarks are not part of `make test`: they take minutes and print figures.
bench: build bench-record
	bash tests/bench/run_detr_forward_bench.sh $(BUILD_DIR)
	bash tests/bench/run_serving_bench.sh $(BUILD_DIR)

# The figures the README's status paragraph cites, as records in
# results/benchmarks.jsonl (tests/bench/record_benchmark.py): attention alone
# at 850 and 1,400 tokens, and DETR-R50's forward pass per attention type
# (about 2 minutes). Then run server/tools/render_results.py.
bench-record: build
	/usr/bin/python3 tests/bench/record_benchmark.py $(BUILD_DIR)/bin/attention_bench --name attention \
	  --out results/benchmarks.jsonl --filter '^(softmax|optimization_K5)/encoder.self/(850|1400)/'
	ONEDNN_MAX_CPU_ISA=AVX2 DETR_KERNEL_MAX_ISA=AVX2 /usr/bin/python3 tests/bench/record_benchmark.py \
	  $(BUILD_DIR)/bin/attention_bench --name attention --out results/benchmarks.jsonl \
	  --filter '^(softmax|optimization_K5)/encoder.self/(850|1400)/'
	/usr/bin/python3 tests/bench/record_benchmark.py $(BUILD_DIR)/bin/detr_forward_bench --name detr_r50_forward \
	  --out results/benchmarks.jsonl --filter 'detr_r50_800x1066/(softmax|optimization)$$' \
	  -- --weights=$(BUILD_DIR)/bench/detr-r50-seed0.safetensors

# The int8 variant against float32 (docs/int8.md): DETR-R50's speed, whole and
# backbone, natively and capped at AVX-512 VNNI and AVX2; the default models'
# accuracy on held-out draws (about 8 minutes; records in results/).
bench-int8: build
	bash tests/bench/run_int8_bench.sh $(BUILD_DIR)

# Served int8 against served float32 on the real-traffic mix, each with ONNX
# Runtime round by round beside it (about 15 minutes; results/traffic_int8.jsonl).
bench-int8-traffic: build
	bash tests/bench/run_int8_traffic_bench.sh $(BUILD_DIR)

# Real traffic (issue 35): DETR-R50 (seeded weights) at the official 800/1333
# resize over a mix of image shapes through detr-server, padded into canvases
# and on each image's own size, then the same mix through PyTorch eager and
# ONNX Runtime (about 15 minutes here): first-request and warm latency per
# shape, p50/p99, throughput at concurrency 1 and 4, RSS and the exported
# memory parts. Appends a record per run to results/traffic.jsonl.
bench-traffic: build
	bash tests/bench/run_traffic_bench.sh $(BUILD_DIR)

# The canvases DETR-R50's images are padded into, chosen by measurement: every
# candidate canvas's forward time through detr-server, then every canvas set
# scored on the traffic mix (about 2 minutes). Appends to results/canvas_sweep.jsonl.
bench-canvases: build
	/usr/bin/python3 tests/bench/canvas_sweep.py $(BUILD_DIR) --runs 8 --out results/canvas_sweep.jsonl

# Attention alone on a GPU, softmax on FlashAttention in bf16 against
# optimization attention in bf16 (docs/benchmarks.md, "GPU"); needs a CUDA
# PyTorch. Appends to results/gpu_attention.jsonl.
bench-gpu:
	/usr/bin/python3 tests/bench/gpu_attention_bench.py --device cuda --out results/gpu_attention.jsonl

# Each deployment's memory limit under real traffic (issue 35): the r50-ab
# overlay's two DETR-R50 arms, the base's built-in models and the large-task
# pair, each for MEMORY_LIMIT_SECONDS at 4 clients under the limit its
# manifests set (a cgroup where this machine allows one, else RSS sampling).
# Appends to results/memory_limit.jsonl.
MEMORY_LIMIT_SECONDS ?= 180
bench-memory-limit: build
	for d in deploy/k8s/overlays/r50-ab deploy/k8s/base deploy/k8s/overlays/large-task; do \
	  /usr/bin/python3 tests/bench/memory_limit_bench.py $(BUILD_DIR) --deployment $$d --concurrency 4 \
	    --seconds $(MEMORY_LIMIT_SECONDS) --out results/memory_limit.jsonl || exit 1; done

# The soak: detr-server on its built-in configuration at twice the throughput
# it sustains for SOAK_SECONDS (10 minutes); checks codes, memory and p99, and
# prints the figures (docs/serving.md). `make test` runs it for 30 s.
SOAK_SECONDS ?= 600
soak: build
	SOAK_SECONDS=$(SOAK_SECONDS) $(BUILD_DIR)/bin/soak_test

# Fuzzing with clang's libFuzzer: each harness of tests/fuzz/ for FUZZ_SECONDS;
# findings land in build-fuzz/crashes/ (make test replays the corpora).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run_fuzzers.sh

# Trains the default models and measures docs/accuracy.md's table (about two
# hours on 2 cores; resumable: run it again after an interruption).
TRAIN_DIR ?= runs/accuracy
train: build
	BUILD_DIR=$(BUILD_DIR) bash server/tools/train_default_models.sh $(TRAIN_DIR)

# The default models for non-square images: the square ones of `make train`
# (or, without them, the ones shipped before) fine-tuned on many aspect ratios
# with random resize, optimization at encoder.self swapped into that softmax
# and fine-tuned the same way (the shipped optimization-encoder), and the
# shipped softmax (half-square sizes, two stages, the mean of the last
# stage's checkpoints; its curves to results/training_curves.jsonl), measured
# on square, padded 192x128 and mixed-size sets (about 3 hours here;
# resumable). Copy OUT/softmax and OUT/optimization-encoder's
# model.safetensors to deploy/models/default-softmax.safetensors and
# default-optimization-encoder.safetensors afterwards, then `make calibrate`
# (the all-sites optimization row misses its target so far:
# docs/accuracy.md#non-square-images).
train-nonsquare: build
	BUILD_DIR=$(BUILD_DIR) bash server/tools/train_nonsquare_models.sh

# docs/accuracy.md's ablation table: one 600-step fine-tuning per option
# (about 8 minutes each here, 24 rows with the long ones; resumable; ROWS="k1
# k2" for some only), then every finished row through one detr-server.
ablations: build
	BUILD_DIR=$(BUILD_DIR) bash server/tools/train_ablations.sh

# The second task, where attention costs show (512-px images, 256 encoder
# tokens): softmax fine-tuned from the default softmax model (its queries
# widened from 10 to 40), optimization fine-tuned from that, both measured
# through the server (about 50 minutes here with the bfloat16 backbone on AMX;
# WARM_START=0 for from scratch; SOFTMAX_WEIGHTS=deploy/models/large-softmax.safetensors
# to fine-tune from the shipped softmax; OPTIMIZATION_CONFIG=deploy/models/
# large-optimization-encoder.json for the shipped arm, optimization at
# encoder.self only; resumable).
train-large: build
	BUILD_DIR=$(BUILD_DIR) bash server/tools/train_large_task.sh

# The README's commands in a chroot of a minimal Debian 12 built from this
# machine's mirror, on the committed checkout (tests/fresh_machine/). Minutes;
# run it after changing install-deps, CMake or the Dockerfile.
fresh-check:
	bash tests/fresh_machine/fresh_check.sh

# The int8 calibration of each shipped default model, beside its weights
# (deploy/models/*.int8.json; seconds; docs/int8.md).
calibrate: build
	BUILD_DIR=$(BUILD_DIR) bash server/tools/calibrate_default_models.sh

clean:
	rm -rf $(BUILD_DIR)
