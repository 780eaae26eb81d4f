# The one command that runs every test: make test
# (the main module with the race detector, its end-to-end tests again on
# PostgreSQL, then the nested modules test/ and bench/, then test/k8s again
# on PostgreSQL).
#
# PostgreSQL tests use the server at $KINELITE_TEST_POSTGRES (default below;
# each test creates and drops a database of its own). Without a reachable
# server they skip loudly, unless KINELITE_TEST_POSTGRES_REQUIRED is set, as
# .ci/run sets it.
GO ?= go
export KINELITE_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/

.PHONY: test test-main test-e2e-postgres test-nested test-k8s-postgres test-pg-restart vet fmt-check build run

test: test-main test-e2e-postgres test-nested test-k8s-postgres

test-main:
	$(GO) test -race -count=1 ./...

# The end-to-end tests of the root package, on PostgreSQL.
test-e2e-postgres:
	KINELITE_TEST_BACKEND=postgres $(GO) test -count=1 .

# Restarts the PostgreSQL server itself (pg_ctlcluster), so it runs alone:
# TestPostgresRestartDuringCompaction and TestPostgresRestartDuringWriteBurst.
# PG_CLUSTER names the cluster; it must be the server $KINELITE_TEST_POSTGRES
# points at. (The kill -9 tests on PostgreSQL, test/'s TestCrashMatrixPostgres,
# leave the server running and run in test-nested.)
PG_CLUSTER ?= 15 main
test-pg-restart:
	KINELITE_TEST_PG_RESTART="$(PG_CLUSTER)" $(GO) test -count=1 -run TestPostgresRestart -v .

test-nested:
	cd test && $(GO) test -count=1 ./...
	cd bench && $(GO) test -count=1 ./...

# Kubernetes' storage conformance suite (test/k8s) again, on PostgreSQL.
test-k8s-postgres:
	cd test && KINELITE_TEST_BACKEND=postgres $(GO) test -count=1 ./k8s/

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
