package lakebase_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

// countDials counts the TCP dials of a connector's sessions.
func countDials(n *atomic.Int64) lakebase.Option {
	return lakebase.WithPgxConfig(func(cc *pgx.ConnConfig) {
		dial := cc.DialFunc
		cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			n.Add(1)
			return dial(ctx, network, addr)
		}
	})
}

// A host that refuses connections while its endpoint (or instance) says it is up
// is no waking compute: the connect gives up after a few tries, with an error that
// says the host refused connections and names host:port, not ErrNotAwake.
func TestDial_RefusedHostOfAnActiveDatabaseFailsAfterFewTries(t *testing.T) {
	needServers(t)
	port := closedPort(t)
	for name, extra := range map[string][]string{
		"endpoint": {"Port=" + port},
		"instance": {"Port=" + port, "Endpoint=", "Instance=" + emu.Instance},
	} {
		t.Run(name, func(t *testing.T) {
			var dials atomic.Int64
			rec := &recorder{}
			db, _ := newDB(t, emu.OAuthClientDSN(extra...), countDials(&dials), lakebase.WithObserver(rec))
			err := db.PingContext(context.Background())
			var he *lakebase.HostRefusedError
			if !errors.Is(err, lakebase.ErrHostRefused) || !errors.As(err, &he) || errors.Is(err, lakebase.ErrNotAwake) {
				t.Fatalf("a refused host of an up database: %v", err)
			}
			if want := net.JoinHostPort(emu.Host, port); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "refused connections") {
				t.Fatalf("the error does not say %s refused connections: %v", want, err)
			}
			if strings.Contains(err.Error(), "scale-to-zero") || lakebase.Retryable(err) {
				t.Fatalf("the error blames a wake, or calls itself retryable: %v", err)
			}
			// A few connects, each dialling every address of the host (localhost may
			// have two).
			if n := dials.Load(); n < 2 || n > 2*int64(he.Attempts) || he.Attempts > 4 {
				t.Fatalf("%d dials in %d connects for one refused connect, want a few", n, he.Attempts)
			}
			evs := rec.take()
			if find(evs, lakebase.EventRetry, "connect") == nil || find(evs, lakebase.EventRetry, "wake") != nil || find(evs, lakebase.EventWakeWait, "") != nil {
				t.Fatalf("the observer was not told of the few tries, or was told of a wake: %+v", evs)
			}
		})
	}
}

// A Timeout that ends while a connect of the wake wait is under way (on a loaded
// machine a connect is much of the wait) is the same WakeError as one that ends
// between connects: it names the database and its state and wraps the compute's
// last answer (57P03), not the dial the deadline cut short. Here every connect
// after the first (answered 57P03 by the waking endpoint) hangs until the deadline.
func TestDial_ATimeoutEndingDuringAConnectOfTheWakeIsAWakeError(t *testing.T) {
	needServers(t)
	e := lakebasetest.Start(t, lakebasetest.Options{ScaleToZero: time.Hour, WakeDelay: time.Hour})
	e.Suspend()
	var dials atomic.Int64
	hang := lakebase.WithPgxConfig(func(cc *pgx.ConnConfig) {
		dial := cc.DialFunc
		cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dials.Add(1) == 1 {
				return dial(ctx, network, addr)
			}
			<-ctx.Done()
			return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
		}
	})
	db, _ := newDB(t, e.OAuthClientDSN("Timeout=5"), hang)
	err := db.Ping()
	var we *lakebase.WakeError
	if !errors.As(err, &we) || !errors.Is(err, lakebase.ErrNotAwake) || we.State != "IDLE" || !strings.Contains(err.Error(), "57P03") {
		t.Fatalf("a Timeout that ended during a connect of the wake: %v", err)
	}
	if dials.Load() < 2 {
		t.Fatalf("%d dials: the wait never connected again", dials.Load())
	}
}
