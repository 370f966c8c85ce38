GO ?= go
# Modules: the driver, and the examples with their ORM and migration tools.
MODULES := . examples/integrations
FUZZTIME ?= 10s
LONG_FUZZTIME ?= 5m

.PHONY: test vet unit fuzz-short fuzz bench soak

test: vet unit fuzz-short

vet:
	@for m in $(MODULES); do if [ -f $$m/go.mod ]; then (cd $$m && echo "go vet ($$m)" && $(GO) vet ./...) || exit 1; fi; done

unit:
	@for m in $(MODULES); do if [ -f $$m/go.mod ]; then (cd $$m && $(GO) test -race -count=1 -timeout 8m ./...) || exit 1; fi; done

# Each fuzz target for a short, bounded time (make fuzz runs them long).
FUZZ_TARGETS := .:FuzzParseDSN ./storedproc:FuzzParse

fuzz-short:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  if $(GO) test -list "^$$fn$$" $$pkg 2>/dev/null | grep -q "^$$fn$$"; then \
	    $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; fi; done

fuzz:
	@$(MAKE) fuzz-short FUZZTIME=$(LONG_FUZZTIME)

# Overhead benchmarks against plain pgx, then the connection storm (see BENCHMARKS.md).
bench:
	$(GO) test -run '^$$' -bench 'Select1|Scan1000Rows|PreparedInsert|Transaction' -benchmem -count 5 -benchtime 2s .
	$(GO) test -run '^$$' -bench 'ConnectStorm' -benchtime 20x .

# The long soak and fault variants (60 s runs, 8 processes x 50 refreshes).
soak:
	LAKEBASE_LONG=1 $(GO) test -race -count=1 -timeout 30m -run 'Soak|Fault' -v .
