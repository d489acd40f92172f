# Thin wrappers over CMake presets. `make run` and `make test` install missing Debian packages first.
PRESET ?= release
BUILD := build/$(PRESET)
ARGS ?=

.PHONY: all deps configure build run test bench format check-format asan-test tsan-test fuzz clean

all: build

deps:
	@./scripts/install-deps.sh

configure: deps
	@cmake --preset $(PRESET) >/dev/null

build: configure
	@cmake --build --preset $(PRESET)

# The main job: the memory planner's overview table (ARGS go to kvpack plan), then the probe model
# retrieving a passkey from a 4096-token prompt through f16 and compressed caches (kvpack demo).
run: build
	@./$(BUILD)/kvpack plan $(ARGS)
	@echo
	@./$(BUILD)/kvpack demo

test: build
	@ctest --preset $(PRESET) -j $$(nproc) $(ARGS)

bench: build
	@./$(BUILD)/kvpack bench $(ARGS)

asan-test:
	@$(MAKE) --no-print-directory test PRESET=asan ARGS="$(ARGS)"

tsan-test:
	@$(MAKE) --no-print-directory test PRESET=tsan ARGS="$(ARGS)"

# Builds only the fuzz targets (a few sources with ASan + UBSan), then runs each for FUZZ_SECONDS.
fuzz:
	@$(MAKE) --no-print-directory configure PRESET=fuzz
	@cmake --build --preset fuzz --target fuzzers
	@./scripts/run-fuzzers.sh build/fuzz

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

check-format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run --Werror

clean:
	@rm -rf build
