package main

import (
	"testing"

	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
)

func TestBun_QueriesThroughLakebase(t *testing.T) {
	demo.Check(t, run, "bun: 2 books, first \"The Go Programming Language\"")
}
