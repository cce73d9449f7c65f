package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// legacyDomain is the domain table as other tools make it: a rowid table.
const legacyDomain = `CREATE TABLE domain (Domain TEXT PRIMARY KEY, IPv4 TEXT, IPv6 TEXT)`

// legacyList makes a list as another tool would, from stmts alone (no
// meta table, no triggers), open until the test ends.
func legacyList(t testing.TB, stmts ...string) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "legacy.db")
	db := testlist.Open(t, path)
	testlist.Exec(t, db, stmts...)
	return path, db
}

// column returns the first column of query's rows, as text.
func column(t testing.TB, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// openWriter opens the list at path for writing until the test ends.
func openWriter(t testing.TB, path string) *store.Writer {
	t.Helper()
	w, err := store.OpenWriter(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// keys is an import's next function over the keys format makes of
// from..to.
func keys(format string, from, to int) func() (string, bool, error) {
	i := from - 1
	return func() (string, bool, error) {
		i++
		return fmt.Sprintf(format, i), i <= to, nil
	}
}

// importN imports the keys format makes of 1..n into table in one import.
func importN(t testing.TB, w *store.Writer, table verdict.Table, format string, n int) store.ImportStats {
	t.Helper()
	st, err := w.Import(context.Background(), table, keys(format, 1, n), store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// logs collects a store's log lines for a test.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, a...))
}

// text is every line so far, one a line.
func (l *logs) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// with returns the first line that holds part, or "".
func (l *logs) with(part string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, part) {
			return s
		}
	}
	return ""
}
