package lakebase_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/lakebase-go/lakebase"
)

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// MaxRows caps what every query returns; column metadata is pgx's.
func TestMaxRows_CapsEveryQuery(t *testing.T) {
	needServers(t)
	db := openDB(t, passwordDSN("MaxRows=3"))
	rows, err := db.Query("SELECT g, g::text AS s FROM generate_series(1, 100) g")
	if err != nil {
		t.Fatal(err)
	}
	types, _ := rows.ColumnTypes()
	if types[0].DatabaseTypeName() != "INT4" || types[1].DatabaseTypeName() != "TEXT" {
		t.Fatalf("column types %s %s", types[0].DatabaseTypeName(), types[1].DatabaseTypeName())
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil || n != 3 {
		t.Fatalf("%d rows, %v", n, err)
	}
	rows.Close()
	// The connection is still good after the discarded rows.
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	if _, err := lakebase.ParseDSN("AuthScheme=Password;Server=localhost;User=u;MaxRows=-5"); err == nil {
		t.Fatal("MaxRows=-5 accepted")
	}
}
