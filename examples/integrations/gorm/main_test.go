package main

import (
	"testing"

	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
)

func TestGORM_CreatesAndQueriesThroughLakebase(t *testing.T) {
	demo.Check(t, run, "gorm: product D42 costs 200")
}
