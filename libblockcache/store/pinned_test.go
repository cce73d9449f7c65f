package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mattn/go-sqlite3"
)

// A pool must never open a connection to a file that replaced its own: the
// pool would then hold connections to two lists.
func TestPinnedRefusesAReplacedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "list.db")
	for _, p := range []string{path, path + ".new"} {
		db, err := sql.Open("sqlite3", p)
		if err != nil {
			t.Fatal(err)
		}
		if err := Init(context.Background(), db); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	id, _, err := statID(path)
	if err != nil {
		t.Fatal(err)
	}
	p := pinned{drv: &sqlite3.SQLiteDriver{}, dsn: "file:" + path + "?mode=ro", path: path, id: id}
	c, err := p.Connect(context.Background())
	if err != nil {
		t.Fatalf("the file itself: %v", err)
	}
	c.Close()
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	if c, err := p.Connect(context.Background()); !errors.Is(err, errReplaced) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("after the rename: %v, want errReplaced", err)
	}
	os.Remove(path)
	if _, err := p.Connect(context.Background()); err == nil {
		t.Fatal("connected with the file gone")
	}
}
