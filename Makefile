# The two commands of the README, and the pieces they are made of.
#   make demo   install what is missing, build, run the walk-through
#   make test   install what is missing, build, start the test backends, ctest
#   make bench  the benchmarks (not part of make test)
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
BUILD_TYPE ?= RelWithDebInfo
# CI builds treat warnings as errors.
WERROR ?= $(if $(filter true,$(CI)),ON,OFF)
CTEST_ARGS ?=
# ccache: paths relative to the checkout, so a fresh clone elsewhere (as CI
# makes) still hits the cache of an earlier build on the same machine.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

.PHONY: all deps configure build test demo bench clean

all: build

deps:
	@deploy/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DTURNOUT_WERROR=$(WERROR) >/dev/null

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	tests/harness/backends.sh run -- \
	  ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) $(CTEST_ARGS)

demo: build
	deploy/demo.sh $(BUILD_DIR)/proxy/turnout

bench: build
	bench/run_all.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
