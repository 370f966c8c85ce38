package main

import (
	"testing"

	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
)

func TestSQLx_SelectsStructsThroughLakebase(t *testing.T) {
	demo.Check(t, run, "sqlx: [{1 Ada} {2 Grace}]")
}
