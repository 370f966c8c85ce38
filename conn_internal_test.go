package lakebase

import (
	"context"
	"database/sql/driver"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// TestConn_InterfaceParityWithPgx fails when pgx's connection gains a method or an
// optional database/sql/driver interface that the lakebase connection lacks.
func TestConn_InterfaceParityWithPgx(t *testing.T) {
	pgxT := reflect.TypeOf((*stdlib.Conn)(nil))
	ourT := reflect.TypeOf((*Conn)(nil))

	ifaces := []reflect.Type{
		reflect.TypeOf((*driver.Conn)(nil)).Elem(),
		reflect.TypeOf((*driver.ConnBeginTx)(nil)).Elem(),
		reflect.TypeOf((*driver.ConnPrepareContext)(nil)).Elem(),
		reflect.TypeOf((*driver.Execer)(nil)).Elem(), //lint:ignore SA1019 parity covers the old interfaces too
		reflect.TypeOf((*driver.ExecerContext)(nil)).Elem(),
		reflect.TypeOf((*driver.Queryer)(nil)).Elem(), //lint:ignore SA1019 parity covers the old interfaces too
		reflect.TypeOf((*driver.QueryerContext)(nil)).Elem(),
		reflect.TypeOf((*driver.Pinger)(nil)).Elem(),
		reflect.TypeOf((*driver.NamedValueChecker)(nil)).Elem(),
		reflect.TypeOf((*driver.SessionResetter)(nil)).Elem(),
		reflect.TypeOf((*driver.Validator)(nil)).Elem(),
	}
	for _, it := range ifaces {
		if pgxT.Implements(it) && !ourT.Implements(it) {
			t.Errorf("pgx's connection implements %v but the lakebase connection does not", it)
		}
	}
	// Every exported method of pgx's connection, with the same signature: this catches
	// interfaces this test does not know by name yet.
	for i := 0; i < pgxT.NumMethod(); i++ {
		m := pgxT.Method(i)
		ours, ok := ourT.MethodByName(m.Name)
		if !ok {
			t.Errorf("pgx's connection has method %s%v; the lakebase connection does not", m.Name, m.Type)
			continue
		}
		if ours.Type.NumIn() != m.Type.NumIn() || ours.Type.NumOut() != m.Type.NumOut() {
			t.Errorf("method %s: signature %v, pgx has %v", m.Name, ours.Type, m.Type)
			continue
		}
		for j := 1; j < m.Type.NumIn(); j++ {
			if ours.Type.In(j) != m.Type.In(j) {
				t.Errorf("method %s: parameter %d is %v, pgx has %v", m.Name, j, ours.Type.In(j), m.Type.In(j))
			}
		}
		for j := 0; j < m.Type.NumOut(); j++ {
			if ours.Type.Out(j) != m.Type.Out(j) {
				t.Errorf("method %s: result %d is %v, pgx has %v", m.Name, j, ours.Type.Out(j), m.Type.Out(j))
			}
		}
	}
}

// TestConn_LazySession shows that a connection needs no database until a statement
// needs one: Connect, ResetSession, IsValid, Begin and Commit of an empty transaction
// and Close all work against an address where nothing listens.
func TestConn_LazySession(t *testing.T) {
	c, err := NewConnector("AuthScheme=Password;Server=127.0.0.1;Port=1;User=u;Password=p;SSLMode=disable;Timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	dc, err := c.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cn := dc.(*Conn)
	if err := cn.ResetSession(ctx); err != nil || !cn.IsValid() {
		t.Fatalf("ResetSession=%v IsValid=%v", err, cn.IsValid())
	}
	tx, err := cn.BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if cn.pg != nil {
		t.Fatal("a session was opened without a statement")
	}
	if _, err := cn.QueryContext(ctx, "SELECT 1", nil); err == nil {
		t.Fatal("SELECT 1 succeeded with no server")
	}
	if cn.Conn() != nil {
		t.Fatal("Conn() returned a pgx connection with no server")
	}
	if err := cn.Close(); err != nil || cn.IsValid() {
		t.Fatalf("Close=%v IsValid after close=%v", err, cn.IsValid())
	}
}

// OpenDB's sessions leave the pool at most their lifetime after they opened (never
// later than database/sql's SetConnMaxLifetime), up to a tenth earlier at random.
func TestOpenDB_SessionsLiveAtMostTheirLifetime(t *testing.T) {
	opened := time.Unix(1_700_000_000, 0)
	for _, life := range []time.Duration{time.Nanosecond, time.Second, 7 * time.Second, DefaultConnMaxLifetime, 3 * time.Hour} {
		for range 1000 {
			e := sessionExpiry(opened, life)
			if e.After(opened.Add(life)) || e.Before(opened.Add(life-life/10)) {
				t.Fatalf("lifetime %v: the session leaves the pool after %v", life, e.Sub(opened))
			}
		}
	}
}

// stubSession is a session that only counts its resets.
type stubSession struct {
	session
	resets int
}

func (s *stubSession) ResetSession(context.Context) error { s.resets++; return nil }
func (s *stubSession) Close() error                       { return nil }

// A session past its jittered lifetime (OpenDB's) leaves the pool at its next
// checkout, told by a flag its timer sets rather than by a clock read per
// checkout; one within its lifetime goes on to the session's own reset, and Close
// stops the timer.
func TestConn_SessionPastItsLifetimeLeavesThePool(t *testing.T) {
	ctx := context.Background()
	open := func(life time.Duration) (*Conn, *stubSession) {
		c, err := NewConnector(unitPasswordDSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.lifetime.Store(int64(life))
		s := &stubSession{}
		c.open = func(context.Context) (session, *pgx.Conn, error) { return s, nil, nil }
		dc, err := c.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cn := dc.(*Conn)
		if _, err := cn.session(ctx); err != nil {
			t.Fatal(err)
		}
		return cn, s
	}

	young, ys := open(time.Hour)
	if err := young.ResetSession(ctx); err != nil || ys.resets != 1 {
		t.Fatalf("a session within its lifetime: ResetSession=%v, the session's own reset ran %d times, want nil and 1", err, ys.resets)
	}
	young.Close()
	if young.expiry.Stop() {
		t.Fatal("Close left the lifetime timer running")
	}

	old, olds := open(time.Millisecond)
	defer old.Close()
	for !old.expired.Load() { // the timer's signal, not a guess at its time
		time.Sleep(time.Millisecond)
	}
	if err := old.ResetSession(ctx); err != driver.ErrBadConn || olds.resets != 0 {
		t.Fatalf("a session past its lifetime: ResetSession=%v (reset %d times), want driver.ErrBadConn before any reset", err, olds.resets)
	}
}
