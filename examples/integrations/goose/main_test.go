package main

import (
	"testing"

	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
)

func TestGoose_MigratesThroughLakebase(t *testing.T) {
	demo.Check(t, run, "goose: version 1, 2 orders")
}
