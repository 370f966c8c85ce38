package lakebase_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
	"github.com/lakebase-go/lakebase/oauth"
	"github.com/lakebase-go/lakebase/workspace"
	"golang.org/x/oauth2"
)

// Overhead benchmarks: the same PostgreSQL, the same TLS, the same run; plain pgx
// stdlib is the baseline. Compare pgx/... with lakebase/... (benchstat, or the
// ratios in BENCHMARKS.md).

// pgxStdlibDB opens the test database through plain pgx stdlib: the baseline that
// benchmarks and side-by-side tests compare the lakebase driver with.
func pgxStdlibDB(tb testing.TB, extra string) *sql.DB {
	cs := fmt.Sprintf("host=localhost port=%d user=%s password='%s' dbname=%s sslmode=verify-full sslrootcert=%s %s",
		pg.Port, testRole, strings.ReplaceAll(testPassword, "'", `\'`), testDB, pg.CAFile, extra)
	cc, err := pgx.ParseConfig(cs)
	if err != nil {
		tb.Fatal(err)
	}
	return stdlib.OpenDB(*cc)
}

func benchDBs(b *testing.B) map[string]*sql.DB {
	lb, err := sql.Open("lakebase", passwordDSN(""))
	if err != nil {
		b.Fatal(err)
	}
	dbs := map[string]*sql.DB{"pgx": pgxStdlibDB(b, ""), "lakebase": lb}
	for _, db := range dbs {
		db.SetMaxIdleConns(4)
		if err := db.Ping(); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		for _, db := range dbs {
			db.Close()
		}
	})
	return dbs
}

func forEachDriver(b *testing.B, fn func(b *testing.B, db *sql.DB)) {
	dbs := benchDBs(b)
	for _, name := range []string{"pgx", "lakebase"} {
		b.Run(name, func(b *testing.B) { fn(b, dbs[name]) })
	}
}

func BenchmarkSelect1(b *testing.B) { forEachDriver(b, benchSelect1) }

// benchSelect1 times SELECT 1 round trips through db.
func benchSelect1(b *testing.B, db *sql.DB) {
	ctx := context.Background()
	var v int
	b.ReportAllocs()
	for b.Loop() {
		if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScan1000Rows(b *testing.B) {
	forEachDriver(b, func(b *testing.B, db *sql.DB) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			rows, err := db.QueryContext(ctx, "SELECT g, 'row ' || g FROM generate_series(1, 1000) g")
			if err != nil {
				b.Fatal(err)
			}
			var id int
			var s string
			n := 0
			for rows.Next() {
				rows.Scan(&id, &s)
				n++
			}
			rows.Close()
			if n != 1000 {
				b.Fatalf("%d rows", n)
			}
		}
	})
}

func BenchmarkPreparedInsert(b *testing.B) {
	forEachDriver(b, func(b *testing.B, db *sql.DB) {
		ctx := context.Background()
		if _, err := db.Exec(`CREATE TEMP TABLE IF NOT EXISTS bench_ins (id int, v text)`); err != nil {
			b.Fatal(err)
		}
		conn, err := db.Conn(ctx) // temp table: one session
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		conn.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS bench_ins (id int, v text)`)
		st, err := conn.PrepareContext(ctx, `INSERT INTO bench_ins VALUES ($1, $2)`)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, err := st.ExecContext(ctx, i, "value"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkExecMode runs a parameterized query with two arguments in each of pgx's
// exec modes, through pgx (default_query_exec_mode) and lakebase (QueryExecMode).
func BenchmarkExecMode(b *testing.B) {
	for _, mode := range []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
		b.Run(mode, func(b *testing.B) {
			dbs := map[string]*sql.DB{"pgx": pgxStdlibDB(b, "default_query_exec_mode="+mode)}
			lb, err := sql.Open("lakebase", passwordDSN("QueryExecMode="+mode))
			if err != nil {
				b.Fatal(err)
			}
			dbs["lakebase"] = lb
			for _, name := range []string{"pgx", "lakebase"} {
				db := dbs[name]
				db.SetMaxIdleConns(2)
				b.Run(name, func(b *testing.B) {
					ctx := context.Background()
					b.ReportAllocs()
					var n int
					var s string
					for b.Loop() {
						if err := db.QueryRowContext(ctx, "SELECT $1::int + 1, $2::text", 41, "x").Scan(&n, &s); err != nil {
							b.Fatal(err)
						}
					}
				})
				db.Close()
			}
		})
	}
}

func BenchmarkTransaction(b *testing.B) {
	forEachDriver(b, func(b *testing.B, db *sql.DB) {
		ctx := context.Background()
		b.ReportAllocs()
		var v int
		for b.Loop() {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := tx.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// --- connection storm ---

const (
	stormSize    = 64
	stormLatency = 50 * time.Millisecond
)

// storm opens stormSize physical connections at once with open and returns each
// connect's latency.
func storm(b *testing.B, open func(ctx context.Context) (func(), error)) []time.Duration {
	var wg sync.WaitGroup
	lat := make([]time.Duration, stormSize)
	errs := make(chan error, stormSize)
	start := make(chan struct{})
	closers := make([]func(), stormSize)
	for i := 0; i < stormSize; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			c, err := open(context.Background())
			lat[i] = time.Since(t0)
			if err != nil {
				errs <- err
				return
			}
			closers[i] = c
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	for _, c := range closers {
		c()
	}
	return lat
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// stormResult accumulates storms and reports requests per storm and latencies.
type stormResult struct {
	lat              []time.Duration
	tokens, creds    int64
	storms           int
	tokBase, credBas int64
}

func (r *stormResult) begin() {
	r.tokBase, r.credBas = emu.Count(lakebasetest.EPToken), emu.Count(lakebasetest.EPCredAutoscaling)
}

func (r *stormResult) end(lat []time.Duration) {
	r.lat = append(r.lat, lat...)
	r.tokens += emu.Count(lakebasetest.EPToken) - r.tokBase
	r.creds += emu.Count(lakebasetest.EPCredAutoscaling) - r.credBas
	r.storms++
}

func (r *stormResult) report(b *testing.B) {
	b.ReportMetric(float64(r.tokens)/float64(r.storms), "token-req/storm")
	b.ReportMetric(float64(r.creds)/float64(r.storms), "cred-req/storm")
	b.ReportMetric(float64(percentile(r.lat, 0.50))/1e6, "p50-ms")
	b.ReportMetric(float64(percentile(r.lat, 0.99))/1e6, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkConnectStorm: 64 goroutines each open a fresh physical connection, with
// 50 ms of latency on the token and credential endpoints.
//
//   - floor: plain pgx with a fixed (native) password through the same TLS front door;
//   - handrolled: a pgx BeforeConnect that mints a workspace token and a credential on
//     every connect, the pattern users write by hand today;
//   - lakebase/cold: a new connector per storm (its first storm);
//   - lakebase/warm: one connector, storms after the first.
func BenchmarkConnectStorm(b *testing.B) {
	emu.SetLatency(lakebasetest.EPToken, stormLatency)
	emu.SetLatency(lakebasetest.EPCredAutoscaling, stormLatency)
	b.Cleanup(func() {
		emu.SetLatency(lakebasetest.EPToken, 0)
		emu.SetLatency(lakebasetest.EPCredAutoscaling, 0)
	})
	if err := emu.AddPasswordRole("bench_native", "bench-pw"); err != nil {
		b.Fatal(err)
	}
	pgxConnect := func(cc *pgx.ConnConfig) func(ctx context.Context) (func(), error) {
		return func(ctx context.Context) (func(), error) {
			c, err := pgx.ConnectConfig(ctx, cc)
			if err != nil {
				return nil, err
			}
			// A connection is ready when it has answered once; the lakebase
			// connection opens its session lazily, on this first round trip.
			if err := c.Ping(ctx); err != nil {
				return nil, err
			}
			return func() { c.Close(context.Background()) }, nil
		}
	}

	b.Run("floor", func(b *testing.B) {
		cc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s user=bench_native password=bench-pw sslmode=verify-full sslrootcert=%s",
			emu.Host, emu.Port, emu.Database, emu.CAFile))
		if err != nil {
			b.Fatal(err)
		}
		var r stormResult
		for b.Loop() {
			r.begin()
			r.end(storm(b, pgxConnect(cc)))
		}
		r.report(b)
	})

	// The same, logging in as the service principal with one credential minted
	// beforehand: the floor for a credential login (the front door checks a JWT).
	b.Run("floor-credential", func(b *testing.B) {
		cc, _ := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=verify-full sslrootcert=%s",
			emu.Host, emu.Port, emu.Database, emu.ServicePrincipal.ClientID, emu.CAFile))
		tc := &oauth.TokenClient{Discovery: &oauth.Discovery{Workspace: emu.URL}, ClientID: emu.ServicePrincipal.ClientID, ClientSecret: emu.ServicePrincipal.ClientSecret}
		tok, err := tc.ClientCredentials(context.Background(), "all-apis")
		if err != nil {
			b.Fatal(err)
		}
		cred, err := workspace.New(emu.URL, oauth2.StaticTokenSource(tok), nil, workspace.Options{}).GenerateCredential(context.Background(), workspace.CredentialRequest{Endpoint: emu.Endpoint})
		if err != nil {
			b.Fatal(err)
		}
		cc.Password = cred.Token
		var r stormResult
		for b.Loop() {
			r.begin()
			r.end(storm(b, pgxConnect(cc)))
		}
		r.report(b)
	})

	b.Run("handrolled", func(b *testing.B) {
		cc, _ := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=verify-full sslrootcert=%s",
			emu.Host, emu.Port, emu.Database, emu.ServicePrincipal.ClientID, emu.CAFile))
		tc := &oauth.TokenClient{Discovery: &oauth.Discovery{Workspace: emu.URL}, ClientID: emu.ServicePrincipal.ClientID, ClientSecret: emu.ServicePrincipal.ClientSecret}
		open := func(ctx context.Context) (func(), error) {
			c := cc.Copy()
			tok, err := tc.ClientCredentials(ctx, "all-apis")
			if err != nil {
				return nil, err
			}
			cred, err := workspace.New(emu.URL, oauth2.StaticTokenSource(tok), nil, workspace.Options{}).GenerateCredential(ctx, workspace.CredentialRequest{Endpoint: emu.Endpoint})
			if err != nil {
				return nil, err
			}
			c.Password = cred.Token
			return pgxConnect(c)(ctx)
		}
		var r stormResult
		for b.Loop() {
			r.begin()
			r.end(storm(b, open))
		}
		r.report(b)
	})

	lakebaseOpen := func(c *lakebase.Connector) func(ctx context.Context) (func(), error) {
		return func(ctx context.Context) (func(), error) {
			dc, err := c.Connect(ctx)
			if err != nil {
				return nil, err
			}
			if err := dc.(interface{ Ping(context.Context) error }).Ping(ctx); err != nil {
				return nil, err
			}
			return func() { dc.Close() }, nil
		}
	}

	b.Run("lakebase/cold", func(b *testing.B) {
		var r stormResult
		for b.Loop() {
			c, err := lakebase.NewConnector(emu.OAuthClientDSN())
			if err != nil {
				b.Fatal(err)
			}
			r.begin()
			r.end(storm(b, lakebaseOpen(c)))
			c.Close()
		}
		r.report(b)
	})

	b.Run("lakebase/warm", func(b *testing.B) {
		c, err := lakebase.NewConnector(emu.OAuthClientDSN())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		storm(b, lakebaseOpen(c)) // warm up: the first storm fetches
		var r stormResult
		for b.Loop() {
			r.begin()
			r.end(storm(b, lakebaseOpen(c)))
		}
		r.report(b)
	})
}

// BenchmarkStartup is a short process's time to its first query, with 50 ms of
// latency on every workspace request (discovery, token, credential, lookups, SCIM):
// cold (nothing stored), warm (a settings file from an earlier process), and the
// hand-rolled pattern (token, then credential, then connect). Each iteration is a
// new connector, as a new process would make.
func BenchmarkStartup(b *testing.B) {
	const lat = 50 * time.Millisecond
	eps := []string{lakebasetest.EPDiscovery, lakebasetest.EPToken, lakebasetest.EPCredAutoscaling, lakebasetest.EPCredProvisioned,
		lakebasetest.EPEndpoints, lakebasetest.EPInstances, lakebasetest.EPSCIMMe}
	for _, ep := range eps {
		emu.SetLatency(ep, lat)
	}
	b.Cleanup(func() {
		for _, ep := range eps {
			emu.SetLatency(ep, 0)
		}
	})
	first := func(b *testing.B, dsn string) {
		db, err := sql.Open("lakebase", dsn)
		if err != nil {
			b.Fatal(err)
		}
		var one int
		if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
	report := func(b *testing.B, before int64) {
		b.ReportMetric(float64(workspaceRequests(emu)-before)/float64(b.N), "requests/op")
	}
	for _, scheme := range []string{"OAuthClient", "OAuthPKCE"} {
		dsnFor := func(file string) string {
			if scheme == "OAuthClient" {
				return emu.OAuthClientDSN("OAuthSettingsLocation=" + file)
			}
			return emu.OAuthPKCEDSN("Instance=", "Endpoint="+emu.Endpoint, "InitiateOAuth=REFRESH", "OAuthSettingsLocation="+file)
		}
		var rt string
		if scheme == "OAuthPKCE" {
			// Every cold iteration starts from the same person's login: refresh tokens
			// are made reusable for the benchmark.
			emu.SetRefreshRotation(false)
			b.Cleanup(func() { emu.SetRefreshRotation(true) })
			for _, ep := range eps {
				emu.SetLatency(ep, 0)
			}
			rt = userRefreshToken(b)
			for _, ep := range eps {
				emu.SetLatency(ep, lat)
			}
		}
		seed := func(file string) string {
			if rt == "" {
				return dsnFor(file)
			}
			// A person's login, as "lakebase login" leaves it: a stored refresh token.
			return dsnFor(file) + ";OAuthRefreshToken=" + rt
		}
		b.Run(scheme+"/cold", func(b *testing.B) {
			before := workspaceRequests(emu)
			for b.Loop() {
				file := filepath.Join(b.TempDir(), "s.json")
				first(b, seed(file))
			}
			report(b, before)
		})
		b.Run(scheme+"/warm", func(b *testing.B) {
			file := filepath.Join(b.TempDir(), "s.json")
			first(b, seed(file))
			before := workspaceRequests(emu)
			for b.Loop() {
				first(b, seed(file))
			}
			report(b, before)
		})
	}
	b.Run("handrolled", func(b *testing.B) {
		cc, _ := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=verify-full sslrootcert=%s",
			emu.Host, emu.Port, emu.Database, emu.ServicePrincipal.ClientID, emu.CAFile))
		before := workspaceRequests(emu)
		for b.Loop() {
			ctx := context.Background()
			tc := &oauth.TokenClient{Discovery: &oauth.Discovery{Workspace: emu.URL}, ClientID: emu.ServicePrincipal.ClientID, ClientSecret: emu.ServicePrincipal.ClientSecret}
			tok, err := tc.ClientCredentials(ctx, "all-apis")
			if err != nil {
				b.Fatal(err)
			}
			cred, err := workspace.New(emu.URL, oauth2.StaticTokenSource(tok), nil, workspace.Options{}).GenerateCredential(ctx, workspace.CredentialRequest{Endpoint: emu.Endpoint})
			if err != nil {
				b.Fatal(err)
			}
			c := cc.Copy()
			c.Password = cred.Token
			conn, err := pgx.ConnectConfig(ctx, c)
			if err != nil {
				b.Fatal(err)
			}
			var one int
			conn.QueryRow(ctx, "SELECT 1").Scan(&one)
			conn.Close(ctx)
		}
		report(b, before)
	})
}

// BenchmarkBranch makes a branch of the emulator's database (a few rows), waits for
// it, and runs a first query on it: what a test pays for lakebasetest.Branch.
func BenchmarkBranch(b *testing.B) {
	parent := emu.OAuthClientDSN()
	db, err := sql.Open("lakebase", parent)
	if err != nil {
		b.Fatal(err)
	}
	db.Exec("CREATE TABLE IF NOT EXISTS bench_branch AS SELECT g AS v FROM generate_series(1, 1000) g")
	db.Close()
	for b.Loop() {
		bdb, err := sql.Open("lakebase", lakebasetest.Branch(b, parent))
		if err != nil {
			b.Fatal(err)
		}
		var n int
		if err := bdb.QueryRow("SELECT count(*) FROM bench_branch").Scan(&n); err != nil || n != 1000 {
			b.Fatalf("%d rows, %v", n, err)
		}
		bdb.Close()
	}
}

// BenchmarkPooledHost compares the pooled host (the emulator's real PgBouncer in
// transaction mode) with the direct host: a connect (TLS, login, startup) and a
// query with an argument, through plain pgx (with the credential minted once) and
// through the driver (each with its default exec mode: cache_statement direct,
// cache_describe pooled).
func BenchmarkPooledHost(b *testing.B) {
	if _, err := exec.LookPath("pgbouncer"); err != nil {
		if _, err := os.Stat("/usr/sbin/pgbouncer"); err != nil {
			b.Skip("needs pgbouncer")
		}
	}
	e := lakebasetest.Start(b, lakebasetest.Options{Pooler: true})
	ctx := context.Background()
	for _, host := range []struct {
		name  string
		extra []string
		port  int
		mode  string
	}{{"direct", nil, e.Port, "cache_statement"}, {"pooled", []string{"Pooled=true"}, e.PooledPort, "cache_describe"}} {
		c, err := lakebase.NewConnector(e.OAuthClientDSN(host.extra...))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		li, err := c.Login(ctx)
		if err != nil {
			b.Fatal(err)
		}
		cs := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=verify-full sslrootcert=%s default_query_exec_mode=%s",
			li.Host, host.port, li.User, li.Password, e.Database, e.CAFile, host.mode)
		b.Run("connect/"+host.name+"/pgx", func(b *testing.B) {
			for b.Loop() {
				pc, err := pgx.Connect(ctx, cs)
				if err != nil {
					b.Fatal(err)
				}
				pc.Close(ctx)
			}
		})
		b.Run("connect/"+host.name+"/lakebase", func(b *testing.B) {
			for b.Loop() {
				dc, err := c.Connect(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := dc.(driver.Pinger).Ping(ctx); err != nil { // the session opens at first use
					b.Fatal(err)
				}
				dc.Close()
			}
		})
		pgxDB := stdlib.OpenDB(*mustParse(b, cs))
		lbDB := sql.OpenDB(c)
		b.Cleanup(func() { pgxDB.Close(); lbDB.Close() })
		for name, db := range map[string]*sql.DB{"pgx": pgxDB, "lakebase": lbDB} {
			b.Run("query/"+host.name+"/"+name, func(b *testing.B) {
				var v int
				b.ReportAllocs()
				for b.Loop() {
					if err := db.QueryRowContext(ctx, "SELECT $1::int", 1).Scan(&v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPoolDefaults: 100 concurrent clients run b.N queries between them
// (SELECT $1::int8, then 1 ms of the client's own work, as a service handles a
// request) through OpenDB, on the pooled host (PgBouncer in transaction mode) and on
// the direct host, with the driver's defaults, with its old settings (no cap, 5
// idle) and with PoolMaxSize=50. The emulator counts the logins; the credential is
// minted before the clock starts. Run with a fixed count: -benchtime 20000x.
func BenchmarkPoolDefaults(b *testing.B) {
	if _, err := exec.LookPath("pgbouncer"); err != nil {
		if _, err := os.Stat("/usr/sbin/pgbouncer"); err != nil {
			b.Skip("needs pgbouncer")
		}
	}
	e := lakebasetest.Start(b, lakebasetest.Options{Pooler: true})
	ctx := context.Background()
	for _, host := range []struct {
		name  string
		extra []string
	}{{"pooled", []string{"Pooled=true"}}, {"direct", nil}} {
		for _, pool := range []struct {
			name, extra string
			old         bool
		}{{"defaults", "", false}, {"old-5idle-nocap", "", true}, {"PoolMaxSize=50", "PoolMaxSize=50", false}} {
			b.Run(host.name+"/"+pool.name, func(b *testing.B) {
				extra := append([]string(nil), host.extra...)
				if pool.extra != "" {
					extra = append(extra, pool.extra)
				}
				c, err := lakebase.NewConnector(e.OAuthClientDSN(extra...))
				if err != nil {
					b.Fatal(err)
				}
				db := lakebase.OpenDB(c) // db.Close closes c
				defer db.Close()
				if pool.old {
					db.SetMaxOpenConns(0)
					db.SetMaxIdleConns(5)
				}
				if _, err := c.Login(ctx); err != nil {
					b.Fatal(err)
				}
				before := e.Count(lakebasetest.EPLogin)
				var next atomic.Int64
				failed := make(chan error, 1)
				var wg sync.WaitGroup
				b.ResetTimer()
				for range 100 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
							var v int64
							if err := db.QueryRowContext(ctx, "SELECT $1::int8", n).Scan(&v); err != nil {
								select {
								case failed <- err:
								default:
								}
								return
							}
							time.Sleep(time.Millisecond) // the client's work between queries
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				select {
				case err := <-failed:
					b.Fatal(err)
				default:
				}
				st := db.Stats()
				b.ReportMetric(float64(e.Count(lakebasetest.EPLogin)-before), "logins")
				b.ReportMetric(float64(st.MaxIdleClosed), "idle-closed")
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
			})
		}
	}
}

func mustParse(tb testing.TB, cs string) *pgx.ConnConfig {
	cc, err := pgx.ParseConfig(cs)
	if err != nil {
		tb.Fatal(err)
	}
	return cc
}

// BenchmarkObserver shows what the observer hook costs a query: nothing, with no
// observer and with one (events come from logins only), beside plain pgx.
func BenchmarkObserver(b *testing.B) {
	noop := lakebase.ObserverFunc(func(context.Context, lakebase.Event) {})
	dbs := map[string]*sql.DB{"pgx": pgxStdlibDB(b, "")}
	for name, opts := range map[string][]lakebase.Option{"lakebase": nil, "lakebase+observer": {lakebase.WithObserver(noop)}} {
		c, err := lakebase.NewConnector(passwordDSN(""), opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		dbs[name] = sql.OpenDB(c)
	}
	for _, name := range []string{"pgx", "lakebase", "lakebase+observer"} {
		db := dbs[name]
		db.SetMaxIdleConns(4)
		b.Cleanup(func() { db.Close() })
		b.Run(name, func(b *testing.B) { benchSelect1(b, db) })
	}
}

// --- client CPU per query, pgx and lakebase interleaved ---

// cpuRounds is how many interleaved rounds BenchmarkClientCPU runs per workload
// (LAKEBASE_CPU_ROUNDS overrides it); b.N queries of each driver are split among them.
func cpuRounds() int {
	if n, err := strconv.Atoi(os.Getenv("LAKEBASE_CPU_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 21
}

// localEmulator starts lakebase-local (the emulator as a process of its own, so the
// benchmark process holds only the client: its TLS server side, relay and
// PostgreSQL are not counted) and returns what it printed.
func localEmulator(b *testing.B) (info struct {
	DSN string `json:"dsn_oauthclient"`
}) {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "lakebase-local")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/lakebase-local").CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/lakebase-local: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if cmd.Process.Signal(os.Interrupt) != nil {
			cmd.Process.Kill()
		}
		cmd.Wait()
	})
	if err := json.NewDecoder(out).Decode(&info); err != nil {
		b.Fatalf("reading lakebase-local's first line: %v", err)
	}
	return info
}

// cpuSample is what one driver used in one round.
type cpuSample struct {
	cpu, wall         time.Duration
	bytes, allocs, op uint64
}

// measure runs op n times after a collection, and returns what it used. The
// memory statistics are the process's: nothing else runs in a benchmark. The
// queries run under the pprof label driver=name (inherited by the goroutines
// database/sql starts for them), so a -cpuprofile of the interleaved run can be
// split by side: go tool pprof -tagfocus driver=lakebase.
func measure(name string, n int, op func() error) (cpuSample, error) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	c0, _ := processCPU()
	t0 := time.Now()
	var err error
	pprof.Do(context.Background(), pprof.Labels("driver", name), func(context.Context) {
		for range n {
			if err = op(); err != nil {
				return
			}
		}
	})
	if err != nil {
		return cpuSample{}, err
	}
	wall := time.Since(t0)
	c1, _ := processCPU()
	runtime.ReadMemStats(&m1)
	return cpuSample{cpu: c1 - c0, wall: wall, bytes: m1.TotalAlloc - m0.TotalAlloc, allocs: m1.Mallocs - m0.Mallocs, op: uint64(n)}, nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkClientCPU is the per-query cost of the driver beside plain pgx on the
// client: the same emulator (lakebase-local, in a process of its own), the same
// TLS (verify-full against its CA), database/sql with one session each, plain pgx
// logging in with a credential the driver minted. Each workload runs in rounds;
// each round runs b.N/rounds queries through pgx and then through lakebase (the
// order alternates round by round), each half after a garbage collection, and
// measures the process's CPU time (user plus system, getrusage; far steadier
// than wall time on a shared machine), wall time, bytes and allocations.
//
// Reported per query: cpu-ratio and wall-ratio (the median over rounds of
// lakebase's over pgx's), lb-cpu-ns/op and pgx-cpu-ns/op, ns/op (lakebase's wall
// time) and pgx-ns/op, lb-B/op, pgx-B/op, lb-allocs/op and pgx-allocs/op. Where the
// process's CPU time cannot be read (see processCPU) only wall time, bytes and
// allocations are reported. With LAKEBASE_CPU_CONTROL set, both sides are plain
// pgx (two sessions alike): the ratios are then the noise floor of the machine.
//
//	go test -run '^$' -bench ClientCPU -benchtime 20000x .
func BenchmarkClientCPU(b *testing.B) {
	info := localEmulator(b)
	ctx := context.Background()
	c, err := lakebase.NewConnector(info.DSN)
	if err != nil {
		b.Fatal(err)
	}
	li, err := c.Login(ctx)
	if err != nil {
		b.Fatal(err)
	}
	cfg := c.Config()
	cc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=verify-full sslrootcert=%s",
		li.Host, li.Port, cfg.Database, li.User, cfg.SSLServerCert))
	if err != nil {
		b.Fatal(err)
	}
	cc.Password = li.Password
	dbs := map[string]*sql.DB{"pgx": stdlib.OpenDB(*cc), "lakebase": lakebase.OpenDB(c)}
	if os.Getenv("LAKEBASE_CPU_CONTROL") != "" {
		// The control: a second plain pgx session in lakebase's place, so the ratios
		// show how far two identical sessions differ on this machine (the floor
		// under which a difference between the drivers cannot be told from noise).
		dbs["lakebase"].Close()
		dbs["lakebase"] = stdlib.OpenDB(*cc)
		b.Log("LAKEBASE_CPU_CONTROL: plain pgx on both sides")
	}
	for _, db := range dbs {
		// One session each, with the same pool settings (OpenDB's).
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(lakebase.DefaultConnMaxLifetime)
		db.SetConnMaxIdleTime(10 * time.Minute)
		if err := db.PingContext(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
	}

	// Each workload makes one query's op on a database (run once per driver).
	workloads := []struct {
		name string
		op   func(b *testing.B, db *sql.DB) func() error
	}{
		{"Select1", func(b *testing.B, db *sql.DB) func() error {
			var v int
			return func() error { return db.QueryRowContext(ctx, "SELECT 1").Scan(&v) }
		}},
		{"Scan1000Rows", func(b *testing.B, db *sql.DB) func() error {
			var id int
			var s string
			return func() error {
				rows, err := db.QueryContext(ctx, "SELECT g, 'row ' || g FROM generate_series(1, 1000) g")
				if err != nil {
					return err
				}
				n := 0
				for rows.Next() {
					if err := rows.Scan(&id, &s); err != nil {
						rows.Close()
						return err
					}
					n++
				}
				if err := rows.Close(); err != nil {
					return err
				}
				if n != 1000 {
					return fmt.Errorf("%d rows", n)
				}
				return nil
			}
		}},
		{"PreparedInsert", func(b *testing.B, db *sql.DB) func() error {
			// A temporary table: the one session's own.
			if _, err := db.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS cpu_ins (id int, v text)`); err != nil {
				b.Fatal(err)
			}
			st, err := db.PrepareContext(ctx, `INSERT INTO cpu_ins VALUES ($1, $2)`)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			i := 0
			return func() error {
				i++
				_, err := st.ExecContext(ctx, i, "value")
				return err
			}
		}},
		{"Transaction", func(b *testing.B, db *sql.DB) func() error {
			var v int
			return func() error {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				if err := tx.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil {
					tx.Rollback()
					return err
				}
				return tx.Commit()
			}
		}},
	}
	names := [2]string{"pgx", "lakebase"}
	for _, w := range workloads {
		b.Run(w.name, func(b *testing.B) {
			var ops [2]func() error
			for i, name := range names {
				ops[i] = w.op(b, dbs[name])
			}
			rounds := cpuRounds()
			per := max(1, b.N/rounds)
			for i := range ops { // warm up: statement caches, buffers, the session's first reset
				if _, err := measure(names[i], min(per, 100), ops[i]); err != nil {
					b.Fatal(err)
				}
			}
			var total [2]cpuSample
			var cpuRatio, wallRatio []float64
			for r := range rounds {
				var got [2]cpuSample
				for k := range 2 {
					i := (r + k) % 2 // even rounds pgx first, odd rounds lakebase first
					s, err := measure(names[i], per, ops[i])
					if err != nil {
						b.Fatalf("%s: %v", names[i], err)
					}
					got[i] = s
					total[i].cpu += s.cpu
					total[i].wall += s.wall
					total[i].bytes += s.bytes
					total[i].allocs += s.allocs
					total[i].op += s.op
				}
				if got[0].cpu > 0 {
					cpuRatio = append(cpuRatio, float64(got[1].cpu)/float64(got[0].cpu))
				}
				wallRatio = append(wallRatio, float64(got[1].wall)/float64(got[0].wall))
			}
			perOp := func(v uint64, i int) float64 { return float64(v) / float64(total[i].op) }
			if len(cpuRatio) == rounds {
				b.ReportMetric(median(cpuRatio), "cpu-ratio")
				b.ReportMetric(perOp(uint64(total[0].cpu), 0), "pgx-cpu-ns/op")
				b.ReportMetric(perOp(uint64(total[1].cpu), 1), "lb-cpu-ns/op")
			}
			b.ReportMetric(median(wallRatio), "wall-ratio")
			b.ReportMetric(perOp(uint64(total[0].wall), 0), "pgx-ns/op")
			b.ReportMetric(perOp(uint64(total[1].wall), 1), "ns/op")
			b.ReportMetric(perOp(total[0].bytes, 0), "pgx-B/op")
			b.ReportMetric(perOp(total[1].bytes, 1), "lb-B/op")
			b.ReportMetric(perOp(total[0].allocs, 0), "pgx-allocs/op")
			b.ReportMetric(perOp(total[1].allocs, 1), "lb-allocs/op")
		})
	}
}
