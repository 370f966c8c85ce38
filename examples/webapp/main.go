// Command webapp is a small net/http app that logs a person in to Lakebase with
// OAuthPKCE through the driver's virtual procedures, then shows query results:
//
//	/login     EXEC GetOAuthAuthorizationURL, then redirect the browser there
//	/callback  EXEC GetOAuthAccessToken with the code and state, then redirect to /
//	/          the logged-in user's query results
//
// With InitiateOAuth=REFRESH the driver stores the tokens and every later connection
// of the pool uses (and refreshes) them. This demo serves one person; an app for many
// keeps one connector per person, each with its own OAuthSettingsLocation.
//
//	LAKEBASE_DSN='AuthScheme=OAuthPKCE;DatabricksInstance=...;Endpoint=...;InitiateOAuth=REFRESH;OAuthSettingsLocation=memory://web' \
//	  go run ./examples/webapp -addr localhost:8080
//
// With no LAKEBASE_DSN it runs against the local emulator (consent page included).
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"os"
	"os/signal"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// App is the web app: a database whose connector logs the person in.
type App struct {
	DB      *sql.DB
	BaseURL string // where the browser reaches this app, e.g. http://localhost:8080
}

// Handler returns the app's routes.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /callback", a.callback)
	mux.HandleFunc("GET /{$}", a.home)
	return mux
}

func (a *App) login(w http.ResponseWriter, r *http.Request) {
	var authURL, state, verifier string
	err := a.DB.QueryRowContext(r.Context(), "EXEC GetOAuthAuthorizationURL CallbackUrl=?", a.BaseURL+"/callback").
		Scan(&authURL, &state, &verifier)
	if err != nil {
		http.Error(w, "login: "+err.Error(), http.StatusBadGateway)
		return
	}
	// The driver keeps the PKCE verifier under state; the state comes back on the callback.
	http.Redirect(w, r, authURL, http.StatusFound)
}

func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		http.Error(w, "login refused: "+e, http.StatusForbidden)
		return
	}
	var access, refresh sql.NullString
	var expiresIn int64
	err := a.DB.QueryRowContext(r.Context(), "EXEC GetOAuthAccessToken Verifier=?, State=?", q.Get("code"), q.Get("state")).
		Scan(&access, &refresh, &expiresIn)
	if err != nil {
		http.Error(w, "callback: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, "/", http.StatusFound)
}

var homePage = template.Must(template.New("home").Parse(`<!doctype html><html><head><meta charset="utf-8"><title>Lakebase web app</title></head>
<body><h1>Hello, <span id="user">{{.User}}</span></h1>
<p>Database <code>{{.Database}}</code>, server time <span id="now">{{.Now}}</span>.</p>
<table id="tables"><tr><th>schema</th><th>tables</th></tr>{{range .Schemas}}<tr><td>{{.Name}}</td><td>{{.Count}}</td></tr>{{end}}</table>
</body></html>`))

func (a *App) home(w http.ResponseWriter, r *http.Request) {
	var data struct {
		User, Database, Now string
		Schemas             []struct {
			Name  string
			Count int
		}
	}
	err := a.DB.QueryRowContext(r.Context(), "SELECT current_user, current_database(), now()::text").Scan(&data.User, &data.Database, &data.Now)
	if err != nil {
		// No login yet (or it expired for good): start one.
		http.Redirect(w, r, "/login", http.StatusFound)
		return
	}
	rows, err := a.DB.QueryContext(r.Context(), `SELECT table_schema, count(*) FROM information_schema.tables GROUP BY 1 ORDER BY 1`)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var s struct {
			Name  string
			Count int
		}
		rows.Scan(&s.Name, &s.Count)
		data.Schemas = append(data.Schemas, s)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	homePage.Execute(w, data)
}

func main() {
	addr := flag.String("addr", "localhost:8080", "listen address")
	flag.Parse()
	dsn := os.Getenv("LAKEBASE_DSN")
	if dsn == "" {
		emu, err := lakebasetest.NewServer(lakebasetest.Options{})
		if err != nil {
			log.Fatal(err)
		}
		defer emu.Close()
		dsn = emu.OAuthPKCEDSN("InitiateOAuth=REFRESH", "OAuthSettingsLocation=memory://webapp")
		log.Printf("using the local emulator; log in as %s on its consent page", emu.User.Email)
	}
	c, err := lakebase.NewConnector(dsn)
	if err != nil {
		log.Fatal(err)
	}
	db := lakebase.OpenDB(c)
	defer db.Close()
	app := &App{DB: db, BaseURL: "http://" + *addr}
	srv := &http.Server{Addr: *addr, Handler: app.Handler()}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		<-sig
		srv.Shutdown(context.Background())
	}()
	fmt.Printf("open %s/login\n", app.BaseURL)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Print(err)
	}
}
