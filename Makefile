# The one place that says how idm is built, checked, measured and shown.
GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BINARIES    := idm-server idmd idmctl
GOFILES      = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')

.PHONY: all build test fmt-check vet staticcheck unit bench demo fuzz clean

all: build

## build: the three binaries in bin/.
build:
	@mkdir -p bin
	$(GO) build -o bin/ ./cmd/...

## test: formatting, vet, staticcheck and every test under the race detector.
test: fmt-check vet staticcheck unit

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

## fuzz: run every fuzz target for FUZZTIME each (default 30s).
FUZZTIME ?= 30s
FUZZPKGS ?= ./transport ./store
fuzz:
	@for p in $(FUZZPKGS); do \
		for t in $$($(GO) test -list 'Fuzz.*' $$p | grep ^Fuzz); do \
			echo "== $$p $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
		done; \
	done

## bench: the benchmarks whose figures the README reports.
bench: build
	bash scripts/bench.sh

## demo: the main job end to end, on this machine.
demo: build
	bash scripts/demo.sh

clean:
	rm -rf bin dist
