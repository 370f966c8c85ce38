// Command gorm uses the driver with GORM: gorm.io/driver/postgres over a
// *sql.DB from the lakebase connector.
package main

import (
	"context"
	"fmt"
	"io"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/lakebase-go/lakebase"
	"github.com/lakebase-go/lakebase/examples/integrations/internal/demo"
)

type Product struct {
	ID    uint
	Code  string `gorm:"uniqueIndex"`
	Price int
}

func main() { demo.Main(run) }

func run(ctx context.Context, dsn string, out io.Writer) error {
	c, err := lakebase.NewConnector(dsn)
	if err != nil {
		return err
	}
	sqlDB := lakebase.OpenDB(c)
	defer sqlDB.Close()
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return err
	}
	db = db.WithContext(ctx)
	if err := db.AutoMigrate(&Product{}); err != nil {
		return err
	}
	defer db.Migrator().DropTable(&Product{})
	if err := db.Create(&Product{Code: "D42", Price: 100}).Error; err != nil {
		return err
	}
	var p Product
	if err := db.First(&p, "code = ?", "D42").Error; err != nil {
		return err
	}
	db.Model(&p).Update("Price", 200)
	var again Product
	db.First(&again, p.ID)
	fmt.Fprintf(out, "gorm: product %s costs %d\n", again.Code, again.Price)
	return nil
}
