package lakebasetest_test

import (
	"database/sql"
	"fmt"

	_ "github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/lakebasetest"
)

// In a test, use lakebasetest.Start(t); it closes the emulator when the test ends.
func ExampleNewServer() {
	srv, err := lakebasetest.NewServer(lakebasetest.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	db, _ := sql.Open("lakebase", srv.OAuthClientDSN())
	defer db.Close()
	var user string
	if err := db.QueryRow("SELECT current_user").Scan(&user); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(user == srv.ServicePrincipal.ClientID, srv.Count(lakebasetest.EPCredAutoscaling))
	// Output: true 1
}
