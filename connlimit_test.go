package lakebase_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// At the compute's connection limit the server answers 53300: the connect fails at
// once (never retried as a waking compute) with ErrTooManyConnections, naming the
// database, the sessions this process holds and the fixes.
func TestConnectionLimit_IsAClearErrorNeverAWake(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{MaxConnections: 3})
	db, _ := newDB(t, e.OAuthClientDSN("Timeout=120"))
	ctx := context.Background()
	var held []*sql.Conn
	for range 3 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PingContext(ctx); err != nil {
			t.Fatalf("a connection within the limit: %v", err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	c, err := db.Conn(ctx)
	if err == nil {
		err = c.PingContext(ctx)
		c.Close()
	}
	var tm *lakebase.TooManyConnectionsError
	if !errors.Is(err, lakebase.ErrTooManyConnections) || !errors.As(err, &tm) || tm.Held != 3 || errors.Is(err, lakebase.ErrNotAwake) {
		t.Fatalf("beyond the limit: %v", err)
	}
	for _, want := range []string{e.Endpoint, "holds 3", "PoolMaxSize", "Pooled=true"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("the error does not name %q: %v", want, err)
		}
	}
	// A session closed frees a slot.
	held[0].Close()
	held = held[1:]
	c, err = db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.PingContext(ctx); err != nil {
		t.Fatalf("after one closed: %v", err)
	}
}
