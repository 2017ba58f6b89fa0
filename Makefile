# goosed — the two commands: `make run` and `make test`. Everything else is a step of those.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS       ?= $(shell nproc)
HOST       ?= 127.0.0.1
PORT       ?= 3000

.PHONY: all deps build run test unit api deploy-test conformance lint check-asan bench format clean fuzz fuzz-replay

all: build

deps:
	@scripts/deps.sh build

build:
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

run: deps build
	$(BUILD)/goosed --host $(HOST) --port $(PORT)

# make test: unit tests (with the replay of every fuzz corpus, tests/fuzz/corpus), OpenAPI lint,
# black-box suite, the deployment files (deploy-test), the MCP conformance suite; then the unit tests, the replays and the black-box
# tests again under ASan+UBSan.
test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory build unit api deploy-test conformance BUILD=$(BUILD)
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory check-asan

unit:
	cd $(BUILD) && ctest --output-on-failure

# Two files at a time, except core.test.mjs: it checks that one session's 40 MB history does not
# stall another's WebSocket (a round trip under 50 ms), which only means something on CPUs that
# another suite's 200 sandboxed shells are not taking at the same moment. So it runs alone, after.
# Then the log scan: no secret the suite used (keys, tokens, passwords; tests/api/lib/record.mjs)
# appears in anything a goosed process wrote, kept in $(BUILD)/api-record.
api:
	@rm -rf $(CURDIR)/$(BUILD)/api-record
	GOOSED_SUITE_RECORD=$(CURDIR)/$(BUILD)/api-record GOOSED_BIN=$(CURDIR)/$(BUILD)/goosed \
	  node --test --test-concurrency=2 \
	  $$(ls tests/api/*.test.mjs | grep -v '/core\.test\.mjs$$') tests/fakes/
	GOOSED_SUITE_RECORD=$(CURDIR)/$(BUILD)/api-record GOOSED_BIN=$(CURDIR)/$(BUILD)/goosed \
	  node --test tests/api/core.test.mjs
	node tests/api/logscan.mjs $(CURDIR)/$(BUILD)/api-record

# The deployment files for real (tests/deploy/): the image of deploy/Dockerfile built by buildah on
# a debootstrapped Debian (cached in build/deploy) and run, with a streamed conversation; the
# Kubernetes manifests against the Kubernetes schemas and their probes against goosed; the Compose
# file; `systemd-analyze verify` of the unit. (deploy/nginx/goose.conf and the secret key settings
# are tested by `make api`: tests/api/deploy_*.test.mjs.) Then the log scan, as for `make api`.
deploy-test:
	@scripts/deps.sh deploy
	@rm -rf $(CURDIR)/$(BUILD)/deploy-record
	GOOSED_SUITE_RECORD=$(CURDIR)/$(BUILD)/deploy-record GOOSED_BIN=$(CURDIR)/$(BUILD)/goosed \
	  node --test --test-concurrency=2 tests/deploy/
	node tests/api/logscan.mjs $(CURDIR)/$(BUILD)/deploy-record

# The official MCP conformance suite with `goosed mcp conformance` as its client (normal build only).
conformance:
	tests/conformance/run.sh $(CURDIR)/$(BUILD)/goosed

lint:
	npx --no-install redocly lint --format=stylish docs/openapi.json
	clang-format --dry-run -Werror $$(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'bench/*.c')

check-asan:
	@test -f $(ASAN_BUILD)/CMakeCache.txt || cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGOOSED_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	@$(MAKE) --no-print-directory unit api BUILD=$(ASAN_BUILD) \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# The fuzz corpora replayed alone (they also run within `make unit`).
fuzz-replay: build
	cd $(BUILD) && ctest --output-on-failure -R '^fuzz_'

# Each libFuzzer harness (tests/fuzz/fuzz_*.c, clang, ASan+UBSan) for FUZZ_SECONDS, starting from
# its seeds; new inputs go to $(FUZZ_BUILD)/corpus, crashes to $(FUZZ_BUILD)/artifacts.
fuzz:
	@test -f $(FUZZ_BUILD)/CMakeCache.txt || CC=clang cmake -S . -B $(FUZZ_BUILD) \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOOSED_FUZZ=ON -DGOOSED_TESTS=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_ONLY)

bench:
	@scripts/deps.sh bench
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DGOOSED_TESTS=OFF >/dev/null
	@cmake --build build-release -j$(JOBS)
	GOOSED_BIN=$(CURDIR)/build-release/goosed bash bench/run.sh

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'bench/*.c')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) build-release
