package main

import (
	"testing"

	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
)

func TestGolangMigrate_MigratesThroughLakebase(t *testing.T) {
	demo.Check(t, run, "golang-migrate: version 2 (dirty false), 2 accounts")
}
