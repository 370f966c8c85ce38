package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lakebase-go/lakebase/lakebasetest"
)

// maxDowntime bounds the downtime a control request may ask for.
const maxDowntime = 10 * time.Minute

// control serves the compute's events of a running lakebase-local on loopback:
//
//	POST /restart?downtime=5s    restart the compute (sessions end with 57P01, logins 57P03 meanwhile)
//	POST /failover?downtime=5s   fail over (as restart; the instance reports FAILING_OVER meanwhile)
//	POST /suspend                scale the endpoint to zero (the next login wakes it)
//
// Every request carries "Authorization: Bearer <control_token>" from the JSON line;
// without it the answer is 401 and nothing happens. A restart or failover answers
// when the compute is back.
type control struct {
	srv   *lakebasetest.Server
	token string
}

func newControlToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// listenControl serves c on 127.0.0.1:port (0: a free port) and returns its URL.
func listenControl(c *control, port int) (string, func(), error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return "", nil, fmt.Errorf("the control endpoint cannot listen on 127.0.0.1:%d (-control-port): %w", port, err)
	}
	hs := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String(), func() { hs.Close() }, nil
}

func (c *control) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	given, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(given), []byte(c.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lakebase-local control"`)
		answer(w, http.StatusUnauthorized, "the control endpoint needs Authorization: Bearer <control_token> (from the JSON line)")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		answer(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	downtime := 5 * time.Second
	if v := r.URL.Query().Get("downtime"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxDowntime {
			answer(w, http.StatusBadRequest, fmt.Sprintf("downtime must be a duration from 0s to %v (e.g. 5s)", maxDowntime))
			return
		}
		downtime = d
	}
	var err error
	switch r.URL.Path {
	case "/restart":
		err = c.srv.RestartCompute(downtime)
	case "/failover":
		err = c.srv.Failover(downtime)
	case "/suspend":
		c.srv.Suspend()
	default:
		answer(w, http.StatusNotFound, "no such event: POST /restart, /failover or /suspend")
		return
	}
	if err != nil {
		answer(w, http.StatusInternalServerError, err.Error())
		return
	}
	answer(w, http.StatusOK, strings.TrimPrefix(r.URL.Path, "/")+" done")
}

func answer(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	key := "error"
	if status == http.StatusOK {
		key = "result"
	}
	json.NewEncoder(w).Encode(map[string]string{key: msg})
}
