GO ?= go
# Modules: the driver, and the examples with their ORM and migration tools.
MODULES := . examples/integrations
FUZZTIME ?= 10s
LONG_FUZZTIME ?= 5m

.PHONY: test vet unit fuzz-short fuzz bench

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

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
