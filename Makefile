# compact: build, run and test. `make run` trains configs/tiny.yaml on the
# default corpus (CPU when no GPU is usable); `make test` is the whole suite.
GO       ?= go
BIN      := bin/compact
OUT      ?= out/tiny
CONFIG   ?= configs/tiny.yaml
# The commit for `compact --version` where Go's VCS stamp is off (-buildvcs=false).
COMMIT   := $(shell git describe --always --dirty --abbrev=12 2>/dev/null)
LDFLAGS  := -X main.commit=$(COMMIT)
FUZZTIME ?= 10m
# Time each new interesting input may spend in minimisation (Go's default,
# 60s, left a target a few dozen executions in minutes on a fresh cache).
FUZZMINIMIZE ?= 5s

.PHONY: build run test vet fmt clean gpu-build fuzz

build:
	@echo "building $(BIN) (a first build compiles every dependency: about 45 seconds on 2 cores; later builds take seconds)..."
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/compact

# --resume: a second `make run` continues (or, when complete, reports) the
# run in $(OUT) instead of being refused for reusing its directory.
run: build
	./$(BIN) pretrain --config $(CONFIG) --out $(OUT) --resume

# Fuzz targets: a few seconds each here, longer with `make fuzz`.
FUZZ := FuzzShard:./internal/data FuzzHFTokenizer:./internal/data \
	FuzzSafetensors:./internal/model FuzzHFConfig:./internal/model \
	FuzzConfig:./internal/config FuzzTrainerState:./internal/checkpoint FuzzExamples:./internal/data/examples

# `make test` fuzzes each target for a count of executions, not a time, so a
# loaded machine cannot time a worker out; the last `execs:` line of each
# says how many ran.
test: vet
	$(GO) test ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=5000x

fuzz:
	@for t in $(FUZZ); do \
		echo "fuzz $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$${t%%:*}$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZE) -timeout=0 $${t#*:} || exit 1; \
	done

vet:
	@test -z "$$(gofmt -l cmd internal)" || (gofmt -l cmd internal; echo "gofmt needed"; exit 1)
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

clean:
	rm -rf bin out

# Binaries for the GPU machine (it has no Go): carry bin/ and .carry/.
gpu-build:
	CGO_ENABLED=0 $(GO) build -ldflags="-s -w $(LDFLAGS)" -o $(BIN) ./cmd/compact
	CGO_ENABLED=0 $(GO) test -c -ldflags="-s -w" -o bin/gpu.test ./internal/gpu/cuda
	CGO_ENABLED=0 $(GO) test -c -ldflags="-s -w" -o bin/model.test ./internal/model
	CGO_ENABLED=0 $(GO) test -c -ldflags="-s -w" -o bin/train.test ./internal/train
	CGO_ENABLED=0 $(GO) test -c -ldflags="-s -w" -o bin/dist.test ./internal/dist
	CGO_ENABLED=0 $(GO) test -c -ldflags="-s -w" -o bin/optim.test ./internal/optim
