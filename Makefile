# The one command that runs every test: make test
# (the main module with the race detector, then the nested modules test/ and bench/).
GO ?= go

.PHONY: test test-main test-nested vet fmt-check build run

test: test-main test-nested

test-main:
	$(GO) test -race -count=1 ./...

test-nested:
	cd test && $(GO) test -count=1 ./...
	cd bench && $(GO) test -count=1 ./...

vet:
	$(GO) vet ./...
	cd test && $(GO) vet ./...
	cd bench && $(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

build:
	$(GO) build -o kinelite ./cmd/kinelite

run:
	$(GO) run ./cmd/kinelite
