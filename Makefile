# The one place that says how idm is built, checked, measured and shown.
GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BINARIES    := idm-server idmd idmctl
GOFILES      = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')

.PHONY: all build test fmt-check vet staticcheck unit test-deps cross deb test-boot test-reliability bench demo fuzz clean

all: build

## build: the three binaries in bin/, built as the package ships them:
## static, stripped, with the version.
build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

## test: formatting, vet, staticcheck, the cross-builds and every test under the race detector.
test: fmt-check vet staticcheck cross unit

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...

unit: test-deps
	$(GO) test -race -count=1 -timeout 20m ./...

## test-deps: what the tests drive besides Go, from Debian's packages when
## missing: nginx, the HTTP mirror the mirror tests download from; aria2
## (aria2c), the Metalink client that checks idm-server's Metalinks and
## the RPC server idmd's aria2 RPC is compared with; node and npm, which
## run the aria2 client library that drives both (the e2e test installs
## that library itself, pinned, from the npm registry).
test-deps:
	@PATH="$$PATH:/usr/sbin:/sbin"; missing=""; \
	command -v nginx >/dev/null 2>&1 || missing="$$missing nginx"; \
	command -v aria2c >/dev/null 2>&1 || missing="$$missing aria2"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "missing:$$missing: install it first (Debian: sudo apt-get install nginx-light aria2 nodejs npm)"; exit 1; \
	fi; \
	apt-get update -qq || exit 1; \
	case "$$missing" in *nginx*) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx || exit 1;; esac; \
	case "$$missing" in *aria2*) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq aria2 || exit 1;; esac; \
	case "$$missing" in *nodejs*|*npm*) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm || exit 1;; esac

## cross: build the three binaries for other systems, so that nothing
## Linux-only creeps into shared code; the binaries are thrown away.
CROSS_TARGETS ?= linux/arm64 darwin/arm64 windows/amd64
cross:
	@out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
	for t in $(CROSS_TARGETS); do \
		echo "cross: $$t"; \
		GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0 $(GO) build -o "$$out/$${t%/*}_$${t#*/}/" ./cmd/... || exit 1; \
	done

## deb: the Debian package dist/idm_<version>_<arch>.deb, with nfpm.
ifeq ($(origin VERSION), undefined)
VERSION := $(shell sh scripts/version.sh)
endif
DEB_ARCH ?= $(shell $(GO) env GOARCH)
DEB      := dist/idm_$(VERSION)_$(DEB_ARCH).deb
NFPM     := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
LDFLAGS  := -s -w -X github.com/idmproject/idm/daemon/localapi.Version=$(VERSION) -X github.com/idmproject/idm/ctl.Version=$(VERSION)
DEB_BIN  := dist/build/linux_$(DEB_ARCH)_$(VERSION)
deb:
	@mkdir -p '$(DEB_BIN)'
	GOOS=linux GOARCH=$(DEB_ARCH) CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o '$(DEB_BIN)/' ./cmd/...
	IDM_VERSION='$(VERSION)' IDM_ARCH=$(DEB_ARCH) IDM_BIN='$(DEB_BIN)' \
		$(GO) run $(NFPM) package --config packaging/nfpm.yaml --packager deb --target '$(DEB)'

## test-boot: install the package in a Debian booted by a real systemd in a
## container, and show downloads surviving a power cut and a reboot. Root.
BOOT_OLD_VERSION := 0.0.1
test-boot: build deb
	$(MAKE) --no-print-directory deb VERSION=$(BOOT_OLD_VERSION)
	bash scripts/boot-test.sh '$(DEB)' 'dist/idm_$(BOOT_OLD_VERSION)_$(DEB_ARCH).deb'

## test-reliability: the long forms of the reliability suite (chaos, hostile
## servers, full disks, kills, access, load) and every fuzz target; the
## figures go in docs/reliability.md. Root, for tmpfs mounts and other uids.
RELIABILITY_FUZZTIME ?= 30s
test-reliability:
	IDM_RELIABILITY=long $(GO) test -count=1 -timeout 80m -v ./reliability/
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(RELIABILITY_FUZZTIME)

## fuzz: run every fuzz target for FUZZTIME each (default 30s); see
## scripts/fuzz.sh for the one failure that is run again.
FUZZTIME ?= 30s
FUZZPKGS ?= ./internal/bytesize ./transport/addr ./transport/httpsrc ./transport/metalink ./transport ./store ./daemon/localapi ./ctl ./cmd/idm-server
fuzz:
	@GO=$(GO) bash scripts/fuzz.sh $(FUZZTIME) $(FUZZPKGS)

## bench: the benchmarks whose figures the README reports.
bench: build
	bash scripts/bench.sh

## demo: the main job end to end, on this machine.
demo: build
	bash scripts/demo.sh

clean:
	rm -rf bin dist
