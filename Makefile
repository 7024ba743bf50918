# jetfleet — two commands matter: `make run` and `make test`. Both install
# what is missing first (on Debian/Ubuntu, with apt and the Go toolchain).

GO      ?= go
GOBIN   := $(shell $(GO) env GOPATH)/bin
BIN     := bin/jetfleet
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT     := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get
export GOFLAGS ?= -buildvcs=false

.PHONY: run test test-race lint build generate vet fmt-check deps-run deps-test clickhouse minio compose-cli chromium nats-cli cc ffmpeg clean

# `make run` starts the demo world (a local YouTube stand-in: this machine may have no
# internet). `make run RUN_FLAGS=` tracks real YouTube instead.
RUN_FLAGS ?= --demo

## run: install what is missing, build, start everything in one process (jetfleet dev)
run: deps-run build
	./$(BIN) dev $(RUN_FLAGS)

## test: install what is missing, run the checks (make lint), run every test
test: deps-test lint
	$(GO) test -count=1 -timeout 20m ./...

# The packages whose code runs goroutines against shared state; .ci/run runs
# them under the race detector (~3 min on 2 cores).
RACE_PKGS := ./workers/consume/... ./workers/enricher/... ./workers/counter/... ./web/counter/... ./web/ratelimit/... ./web/chathub/... ./web/chat/...

## test-race: the concurrent packages under the race detector
test-race: deps-test cc
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)

## lint: what review misses: gofmt, go vet, staticcheck, go.mod tidy, templ output in sync
lint: fmt-check vet
	$(GO) tool staticcheck ./...
	$(GO) mod tidy -diff
	$(GO) tool templ generate
	@git diff --exit-code -- '*_templ.go' || { echo "templ output out of date: commit the regenerated *_templ.go files"; exit 1; }
	@out=$$(git ls-files --others --exclude-standard -- '*_templ.go'); \
	if [ -n "$$out" ]; then echo "generated templ files not committed:"; echo "$$out"; exit 1; fi

build:
	$(GO) build -o $(BIN) ./cmd/jetfleet

## generate: regenerate templ components (the generated code is committed)
generate:
	$(GO) tool templ generate

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

deps-run: clickhouse ffmpeg
deps-test: clickhouse minio compose-cli chromium nats-cli ffmpeg

# ClickHouse server from Debian's archive (18.16 on bookworm); started by
# `jetfleet dev` and by the tests themselves, never as a system service.
clickhouse:
	@if command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ]; then :; else \
		echo "installing clickhouse-server (apt)"; \
		$(APT) update -qq && $(APT) install -y -qq --no-install-recommends clickhouse-server clickhouse-client; \
	fi

# A real S3-compatible server for the blob tests; built once, then cached.
minio:
	@if command -v minio >/dev/null 2>&1 || [ -x "$(GOBIN)/minio" ]; then :; else \
		echo "building minio (go install, ~6 min on 2 cores, once)"; \
		$(GO) install github.com/minio/minio@latest; \
	fi

# Headless Chromium from Debian's archive for the browser tests (Events
# acceptance flow, driven with chromedp).
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; else \
		echo "installing chromium (apt)"; \
		$(APT) update -qq && $(APT) install -y -qq --no-install-recommends chromium; \
	fi

# ffmpeg and ffprobe from Debian's archive: the Media roles probe uploads
# and transcode them into HLS renditions; the Media tests generate videos.
ffmpeg:
	@if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then :; else \
		echo "installing ffmpeg (apt)"; \
		$(APT) update -qq && $(APT) install -y -qq --no-install-recommends ffmpeg; \
	fi

# Validates docker-compose.yml in the tests when no `docker compose` plugin exists.
compose-cli:
	@if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; then :; else \
		echo "installing docker-compose (apt)"; \
		$(APT) update -qq && $(APT) install -y -qq --no-install-recommends docker-compose; \
	fi

## nats-cli: the operator's NATS CLI (README recipes; cmd/jetfleet TestReadmeRecipesRunAgainstDevDemo runs them)
nats-cli:
	@command -v nats >/dev/null 2>&1 || [ -x "$(GOBIN)/nats" ] || $(GO) install github.com/nats-io/natscli/nats@v0.5.0

# -race needs cgo, so a C compiler (a fresh Debian with only Go has none).
cc:
	@if command -v gcc >/dev/null 2>&1; then :; else \
		echo "installing gcc (apt; the race detector needs cgo)"; \
		$(APT) update -qq && $(APT) install -y -qq --no-install-recommends gcc libc6-dev; \
	fi

clean:
	rm -rf bin

# Benchmarks print figures; they never run in `make test`. Each is a main
# package beside the role it measures (workers/<role>/<role>bench), sharing
# its setup through internal/benchenv.
.PHONY: bench bench-counter bench-enricher bench-tracker bench-chat bench-outliers
bench: bench-counter bench-enricher bench-tracker bench-chat bench-outliers

## bench-counter: Counter API ingest and read figures (issue: Counter API)
bench-counter:
	$(GO) run ./workers/counter/counterbench

## bench-enricher: Enricher throughput and latency figures, the ratio to the bare JetStream bound
## (a 3-server R3 cluster: make bench-enricher ENRICHER_BENCH_FLAGS="-cluster 3")
bench-enricher:
	$(GO) build -o bin/nats-server github.com/nats-io/nats-server/v2
	$(GO) run ./workers/enricher/enricherbench -nats-server bin/nats-server $(ENRICHER_BENCH_FLAGS)

## bench-chat: live event chat fan-out, 5,000 sockets over 2 edges vs a bare broadcaster
## (shorter: make bench-chat CHAT_BENCH_FLAGS="-clients 500 -duration 10s")
bench-chat:
	ulimit -n 20000 2>/dev/null; $(GO) run ./web/chathub/chatbench $(CHAT_BENCH_FLAGS)

## bench-tracker: one hourly tick over 90,000 videos
bench-tracker:
	$(GO) build -o $(BIN) ./cmd/jetfleet
	$(GO) run ./workers/tracker/trackerbench -jetfleet $(BIN)

## bench-outliers: the weekly outlier job and digest over 10,000 channels, 90,000 videos of samples
## (shorter: make bench-outliers OUTLIERS_BENCH_FLAGS="-channels 1000 -videos 9000")
bench-outliers:
	$(GO) run ./workers/tracker/outliersbench $(OUTLIERS_BENCH_FLAGS)
