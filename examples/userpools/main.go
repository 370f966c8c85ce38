// Command userpools is a Databricks App (or any web app that holds each person's
// workspace token) that reaches Lakebase as the person who made the request, so
// Postgres row-level security decides what each person sees:
//
//	GET  /        the person's notes (only theirs: a policy on current_user)
//	POST /notes   adds a note (form field body) owned by the person
//
// The person's token comes from X-Forwarded-Access-Token, which the Apps proxy sets
// when the app has user authorization (scope postgres, or all-apis). The pool is
// chosen by who the workspace says the token belongs to, never by X-Forwarded-User
// or X-Forwarded-Email: a forged header changes nothing.
//
// In a Databricks App, the app's own identity names the database (its
// DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET, and PGHOST or LAKEBASE_DSN):
//
//	LAKEBASE_DSN='AuthScheme=OAuthClient;DatabricksInstance=...;Endpoint=...' go run ./examples/userpools
//
// The table and its policy are created once by the database's owner (see Schema).
//
// With no LAKEBASE_DSN it runs against the local emulator and stands in for the
// Apps proxy: a request with ?as=alice@example.com is forwarded with a token of
// that person, as the proxy would.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// Schema is run once by the owner of the database: a table every person may use,
// under a policy that shows and accepts only the rows of current_user. Each
// person logs in as their own Postgres role (their e-mail), so the policy is
// enforced by the server, not by the app.
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS notes (id bigserial PRIMARY KEY, owner text NOT NULL DEFAULT current_user, body text NOT NULL)`,
	`ALTER TABLE notes ENABLE ROW LEVEL SECURITY`,
	`DROP POLICY IF EXISTS own_notes ON notes`,
	`CREATE POLICY own_notes ON notes USING (owner = current_user) WITH CHECK (owner = current_user)`,
	`GRANT SELECT, INSERT ON notes TO PUBLIC`,
	`GRANT USAGE ON SEQUENCE notes_id_seq TO PUBLIC`,
}

// App serves each request as the person whose token it carries.
type App struct {
	Pools *lakebase.UserPools
}

// Handler returns the app's routes.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("POST /notes", a.add)
	return mux
}

var page = template.Must(template.New("notes").Parse(`<!doctype html><html><head><meta charset="utf-8"><title>Notes</title></head>
<body><h1>Notes of <span id="user">{{.User}}</span></h1>
<ul id="notes">{{range .Notes}}<li>{{.}}</li>{{end}}</ul>
<form method="post" action="notes?{{.Query}}"><input name="body"><button>Add</button></form>
</body></html>`))

func (a *App) home(w http.ResponseWriter, r *http.Request) {
	db, err := a.Pools.DB(r.Context(), lakebase.ForwardedToken(r))
	if err != nil {
		refuse(w, err)
		return
	}
	var data struct {
		User, Query string
		Notes       []string
	}
	data.Query = r.URL.RawQuery
	if err := db.QueryRowContext(r.Context(), `SELECT current_user`).Scan(&data.User); err != nil {
		failed(w, err)
		return
	}
	rows, err := db.QueryContext(r.Context(), `SELECT body FROM notes ORDER BY id`)
	if err != nil {
		failed(w, err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		data.Notes = append(data.Notes, body)
	}
	if err := rows.Err(); err != nil {
		failed(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	page.Execute(w, data)
}

func (a *App) add(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "a form of another site cannot post here", http.StatusForbidden)
		return
	}
	db, err := a.Pools.DB(r.Context(), lakebase.ForwardedToken(r))
	if err != nil {
		refuse(w, err)
		return
	}
	body := strings.TrimSpace(r.FormValue("body"))
	if body == "" {
		http.Error(w, "a note needs a body", http.StatusBadRequest)
		return
	}
	if _, err := db.ExecContext(r.Context(), `INSERT INTO notes (body) VALUES ($1)`, body); err != nil {
		failed(w, err)
		return
	}
	http.Redirect(w, r, "./?"+r.URL.RawQuery, http.StatusSeeOther)
}

// refuse answers a request whose token the workspace did not accept (or that has
// none) with 401, and anything else with 502; the details go to the log, not to
// the browser.
func refuse(w http.ResponseWriter, err error) {
	if errors.Is(err, lakebase.ErrUserToken) {
		http.Error(w, "sign in again", http.StatusUnauthorized)
		return
	}
	failed(w, err)
}

func failed(w http.ResponseWriter, err error) {
	log.Printf("userpools: %v", err)
	http.Error(w, "the database could not answer; try again", http.StatusBadGateway)
}

// sameOrigin refuses a cross-site form post (the proxy's session cookie would
// otherwise make it the person's): the browser's Sec-Fetch-Site, or Origin, must
// name this site.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	if o := r.Header.Get("Origin"); o != "" {
		return o == "http://"+r.Host || o == "https://"+r.Host
	}
	return true // not a browser's cross-site request
}

// asProxy stands in for the Apps proxy in front of the emulator: ?as=EMAIL
// forwards the request with a token of that person.
func asProxy(emu *lakebasetest.Server, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("X-Forwarded-Access-Token")
		if who := r.URL.Query().Get("as"); who != "" {
			if !strings.Contains(who, "@") {
				http.Error(w, "?as= takes a person's e-mail address", http.StatusBadRequest)
				return
			}
			tok, err := emu.UserToken(who)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Header.Set("X-Forwarded-Access-Token", tok)
			r.Header.Set("X-Forwarded-Email", who)
		}
		next.ServeHTTP(w, r)
	})
}

func main() {
	addr := flag.String("addr", "localhost:8080", "listen address")
	flag.Parse()
	dsn := os.Getenv("LAKEBASE_DSN")
	var emu *lakebasetest.Server
	if dsn == "" {
		var err error
		if emu, err = lakebasetest.NewServer(lakebasetest.Options{}); err != nil {
			log.Fatal(err)
		}
		defer emu.Close()
		for _, q := range Schema {
			if err := emu.Exec(q); err != nil {
				log.Fatal(err)
			}
		}
		dsn = emu.OAuthClientDSN()
	}
	base, err := lakebase.NewConnector(dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer base.Close()
	pools := lakebase.NewUserPools(base, lakebase.UserPoolOptions{})
	defer pools.Close()
	var h http.Handler = (&App{Pools: pools}).Handler()
	if emu != nil {
		h = asProxy(emu, h)
		fmt.Printf("open http://%s/?as=alice@example.com and http://%s/?as=bob@example.com\n", *addr, *addr)
	}
	srv := &http.Server{Addr: *addr, Handler: h}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		<-sig
		srv.Shutdown(context.Background())
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Print(err)
	}
}
