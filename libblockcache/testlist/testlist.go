// Package testlist builds real SQLite blocklists for tests of every package.
package testlist

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/libblockcache/libblockcache/libblockcache/store"
)

// Fixture is a small list with a rule of every kind, used across tests.
var Fixture = []string{
	`INSERT INTO domain_dns_allow VALUES ('allowed.tracker.net', '9.9.9.9')`,
	`INSERT INTO domain_dns_block VALUES ('family.example', '1.1.1.3')`,
	`INSERT INTO domain_exact VALUES ('exact.example', NULL, NULL), ('ip.exact.example', '10.0.0.9', 'fd00::9')`,
	`INSERT INTO domain VALUES ('tracker.net', NULL, NULL), ('deep.tracker.net', '10.0.0.2', NULL)`,
	`INSERT INTO domain_regex VALUES ('^ad[sz]?[0-9]*\.', NULL, NULL)`,
}

// New creates dir/list.db with the schema and the statements, and returns
// its path and a writable handle (closed with the test).
func New(t testing.TB, stmts ...string) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "list.db")
	db := Open(t, path)
	if err := store.Init(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	Exec(t, db, stmts...)
	return path, db
}

// Open opens the SQLite file at path as it is, for a test that writes
// around the library (another tool's list, a change behind its back); the
// handle is closed with the test.
func Open(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Exec runs statements or fails the test.
func Exec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// At is the namespace of version v of the list in db, stamp included: what
// a cache holds for a verdict computed at v, for tests that ask about
// verdicts of older versions.
func At(t testing.TB, db *sql.DB, v uint64) store.Namespace {
	t.Helper()
	ns := store.Namespace{Version: v}
	err := db.QueryRow(`SELECT (SELECT Value FROM `+store.MetaTable+` WHERE Key = 'list_id'),
		coalesce((SELECT Stamp FROM `+store.StampsTable+` WHERE Version = ?), 0)`, int64(v)).Scan(&ns.ListID, &ns.Stamp)
	if err != nil {
		t.Fatalf("namespace of version %d: %v", v, err)
	}
	return ns
}
