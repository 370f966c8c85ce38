// Command webapp is a small net/http app that logs a person in to Lakebase with
// OAuthPKCE through the connector's login steps, then shows query results:
//
//	/login     Connector.AuthorizationURL (EXEC GetOAuthAuthorizationURL in SQL); the
//	           state goes into a cookie, then the browser is redirected there
//	/callback  the state must match the cookie (no login CSRF); Connector.ExchangeCode
//	           (EXEC GetOAuthAccessToken) with the code and state, then redirect to /
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
	"crypto/subtle"
	"database/sql"
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

// App is the web app: a database whose connector logs the person in.
type App struct {
	DB        *sql.DB
	Connector *lakebase.Connector // DB's connector
	BaseURL   string              // where the browser reaches this app, e.g. http://localhost:8080
}

// stateCookie binds a login to the browser that started it: a callback whose state is
// not this browser's (a link an attacker logged in with) is refused.
const stateCookie = "lakebase_login_state"

// Handler returns the app's routes.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /callback", a.callback)
	mux.HandleFunc("GET /{$}", a.home)
	return mux
}

func (a *App) login(w http.ResponseWriter, r *http.Request) {
	auth, err := a.Connector.AuthorizationURL(r.Context(), lakebase.AuthorizationRequest{CallbackURL: a.BaseURL + "/callback"})
	if err != nil {
		http.Error(w, "login: "+err.Error(), http.StatusBadGateway)
		return
	}
	// The driver keeps the PKCE verifier under state; this browser keeps the state.
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: auth.State, Path: "/callback", MaxAge: 600,
		HttpOnly: true, Secure: strings.HasPrefix(a.BaseURL, "https://"), SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, auth.URL, http.StatusFound)
}

func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		http.Error(w, "login refused: "+e, http.StatusForbidden)
		return
	}
	ck, err := r.Cookie(stateCookie)
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(q.Get("state"))) != 1 {
		http.Error(w, "this login was not started in this browser; start again at /login", http.StatusForbidden)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Path: "/callback", MaxAge: -1})
	if _, err := a.Connector.ExchangeCode(r.Context(), lakebase.CodeExchange{Code: q.Get("code"), State: q.Get("state")}); err != nil {
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
	app := &App{DB: db, Connector: c, BaseURL: "http://" + *addr}
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
