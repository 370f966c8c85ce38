GO ?= go
# Modules: the driver, the examples with their ORM and migration tools, and the
# OpenTelemetry module.
MODULES := . examples/integrations otel
# Fuzz budgets are counts of executions, not durations: Go 1.26's fuzz coordinator can
# report a bare "context deadline exceeded" failure when a -fuzztime duration ends
# while a worker is mid-call on a loaded machine (go.dev/issue/75804, fixed in Go
# 1.27); a count has no deadline to race. 100000x takes 2 to 20 seconds a target here.
FUZZTIME ?= 100000x
LONG_FUZZTIME ?= 2000000x

.PHONY: test tracked deps vet cross toolchains unit short fuzz-short fuzz bench soak

# Every test: installs what is missing first (scripts/test-deps), then requires the
# browser tests to run (plain go test skips them where Chromium is missing). The
# steps run in this order; a failing step does not stop the later ones, and the
# failed steps are named at the end (the exit status is then non-zero).
TEST_STEPS := tracked deps vet cross toolchains unit fuzz-short
test:
	@failed=""; for s in $(TEST_STEPS); do $(MAKE) --no-print-directory $$s || failed="$$failed $$s"; done; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi

# Each loop below runs every module (or target) even after one fails, keeps go's
# own output, and ends by naming what failed with a non-zero exit status.
report_failed = if [ -n "$$failed" ]; then echo "make $@: FAILED:$$failed" >&2; exit 1; fi

deps:
	@./scripts/test-deps

# No built binary and no file over 1 MB is tracked.
tracked:
	@./scripts/check-tracked

# Every module builds and vets for Windows and macOS too.
cross:
	@failed=""; for m in $(MODULES); do if [ -f $$m/go.mod ]; then for os in windows darwin; do \
	  (cd $$m && echo "GOOS=$$os go vet ($$m)" && GOOS=$$os $(GO) vet ./... && GOOS=$$os $(GO) build ./...) || failed="$$failed $$m(GOOS=$$os)"; done; fi; done; \
	$(report_failed)

# The oldest and the newest supported Go (from the module proxy) build and vet every
# module. The tests themselves run on the installed toolchain.
OLDEST_GO ?= go1.26.0
NEWEST_GO ?= go1.27.4
toolchains:
	@failed=""; for tc in $(OLDEST_GO) $(NEWEST_GO); do for m in $(MODULES); do if [ -f $$m/go.mod ]; then \
	  (cd $$m && echo "GOTOOLCHAIN=$$tc go vet ($$m)" && GOTOOLCHAIN=$$tc $(GO) vet ./... && GOTOOLCHAIN=$$tc $(GO) build ./...) || failed="$$failed $$m($$tc)"; fi; done; done; \
	$(report_failed)

# The fast tier: no PostgreSQL, no Chromium.
short:
	@failed=""; for m in $(MODULES); do if [ -f $$m/go.mod ]; then (cd $$m && $(GO) test -short -count=1 ./...) || failed="$$failed $$m"; fi; done; \
	$(report_failed)

vet:
	@failed=""; for m in $(MODULES); do if [ -f $$m/go.mod ]; then (cd $$m && echo "go vet ($$m)" && $(GO) vet ./...) || failed="$$failed $$m"; fi; done; \
	$(report_failed)

unit:
	@failed=""; for m in $(MODULES); do if [ -f $$m/go.mod ]; then (cd $$m && LAKEBASE_REQUIRE_BROWSER=1 LAKEBASE_REQUIRE_PGBOUNCER=1 LAKEBASE_REQUIRE_KEYRING=$$( [ "$$(uname -s)" = Linux ] && echo 1 ) $(GO) test -race -count=1 -timeout 20m ./...) || failed="$$failed $$m"; fi; done; \
	$(report_failed)

# Each fuzz target for a short, bounded time (make fuzz runs them long).
FUZZ_TARGETS := .:FuzzParseDSN .:FuzzQuoteDSNValue ./storedproc:FuzzParse ./internal/connstr:FuzzQuote ./internal/sqlscan:FuzzCalls

fuzz-short:
	@failed=""; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  if $(GO) test -list "^$$fn$$" $$pkg 2>/dev/null | grep -q "^$$fn$$"; then \
	    $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || failed="$$failed $$t"; fi; done; \
	$(report_failed)

fuzz:
	@$(MAKE) fuzz-short FUZZTIME=$(LONG_FUZZTIME)

# Overhead benchmarks against plain pgx, the connection storm, client CPU per query
# beside pgx (interleaved) and the pool defaults' churn (see BENCHMARKS.md).
bench:
	$(GO) test -run '^$$' -bench 'Select1|Scan1000Rows|PreparedInsert|Transaction' -benchmem -count 5 -benchtime 2s .
	$(GO) test -run '^$$' -bench 'ConnectStorm' -benchtime 20x .
	$(GO) test -run '^$$' -bench 'ClientCPU' -benchtime 20s .
	$(GO) test -run '^$$' -bench 'PoolDefaults' -benchtime 20000x -count 3 .

# The long soak and fault variants (60 s runs, 8 processes x 50 refreshes).
soak:
	LAKEBASE_LONG=1 $(GO) test -race -count=1 -timeout 30m -run 'Soak|Pipeline_|SettingsFile_' -v .
