package main

import (
	"testing"

	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
)

func TestDatabaseSQL_QueriesThroughLakebase(t *testing.T) {
	demo.Check(t, run, "database/sql: 2 items")
}
