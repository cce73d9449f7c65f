package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// newList makes an initialized list (testlist imports this package, so the
// internal tests cannot use it) and returns its path and a statement runner.
func newList(t *testing.T) (string, func(string)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "list.db")
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := Init(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return path, func(q string) {
		t.Helper()
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// A filter build reads one version; by the time it is done, later logged
// changes may be answered already. attach adds their names before the
// filter is used, waits while the build is ahead of the answered version,
// drops a build of a line of versions that has ended, and starts over when
// the gap is no longer in the log.
func TestFilterBuildCatchesUp(t *testing.T) {
	ctx := context.Background()
	path, exec := newList(t)
	// Enough names that three more do not wear the filter out (and start
	// a real build that would replace the ones this test attaches).
	exec(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 100)
		INSERT INTO domain SELECT 'n' || i || '.example', NULL, NULL FROM c`)
	exec(`INSERT INTO domain VALUES ('listed.example', NULL, NULL)`)
	s, err := Open(ctx, Options{Path: path, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wait := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	wait("the first filter", func() bool { return s.snap.Load().filter.Load() != nil })
	v0 := s.Namespace().Version
	exec(`INSERT INTO domain VALUES ('late.example', NULL, NULL)`)
	exec(`INSERT INTO domain VALUES ('late2.example', NULL, NULL)`)
	wait("two versions", func() bool { return s.Namespace().Version == v0+2 })

	s.refreshMu.Lock()
	gen := s.snap.Load().filterGen
	f := mustFilter(t, 1000) // a build of version v0: none of the later names
	s.built = &builtFilter{f: f, version: v0, gen: gen}
	s.attach(ctx)
	cur := s.snap.Load()
	s.refreshMu.Unlock()
	if cur.filter.Load() != f || !f.mayContain("late.example") || !f.mayContain("late2.example") {
		t.Fatal("a build of an older version was attached without the names changed since")
	}

	s.refreshMu.Lock()
	ahead := mustFilter(t, 1000)
	s.built = &builtFilter{f: ahead, version: v0 + 3, gen: gen}
	s.attach(ctx)
	waiting := s.built != nil && cur.filter.Load() == f
	s.refreshMu.Unlock()
	if !waiting {
		t.Fatal("a build ahead of the answered version was attached")
	}
	exec(`INSERT INTO domain VALUES ('late3.example', NULL, NULL)`)
	wait("the waiting build attached by the next refresh", func() bool { return s.snap.Load().filter.Load() == ahead })

	s.refreshMu.Lock()
	s.built = &builtFilter{f: mustFilter(t, 1000), version: v0, gen: gen - 1}
	s.attach(ctx)
	dropped := s.built == nil && s.snap.Load().filter.Load() == ahead
	s.refreshMu.Unlock()
	if !dropped {
		t.Fatal("a build of an ended line of versions was not dropped")
	}

	exec(`DELETE FROM ` + ChangesTable)
	s.refreshMu.Lock()
	s.built = &builtFilter{f: mustFilter(t, 1000), version: v0, gen: gen}
	s.attach(ctx)
	restarted := s.building == gen && s.snap.Load().filter.Load() == ahead
	s.refreshMu.Unlock()
	if !restarted {
		t.Fatal("a build whose gap left the log did not start a new one")
	}
	wait("the new build", func() bool {
		fl := s.snap.Load().filter.Load()
		return fl != ahead && fl.mayContain("late3.example") && fl.mayContain("listed.example")
	})
}

// When a writer commits faster than a lookup can catch up, the lookup
// answers from the rows' version alone where it can: a table match
// decides by itself, and the snapshot's regex rules apply when the log
// shows they did not change since; otherwise it fails rather than mix.
func TestRowsVersion(t *testing.T) {
	ctx := context.Background()
	path, exec := newList(t)
	exec(`INSERT INTO domain_regex VALUES ('^ads\.', NULL, NULL)`)
	s, err := Open(ctx, Options{Path: path, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap := s.snap.Load()
	v := snap.ns.Version
	exec(`INSERT INTO domain VALUES ('new.example', NULL, NULL)`)
	block := verdict.Verdict{Action: verdict.Block, Table: verdict.TableDomain}
	got, ns, err := s.rowsVersion(ctx, snap, "x.new.example", block, v+1)
	if err != nil || got != block || ns.Version != v+1 {
		t.Errorf("table match: %+v under %v (%v)", got, ns, err)
	}
	// The answer carries its version's stamp, the one a snapshot of that
	// version reads.
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if want := s.Namespace(); ns != want || ns.Stamp == 0 {
		t.Errorf("an answer of the rows' version is tagged %v, a snapshot of it %v", ns, want)
	}
	if got, ns, err := s.rowsVersion(ctx, snap, "ads.unrelated.org", verdict.Verdict{}, v+1); err != nil || got.Table != verdict.TableRegex || ns.Version != v+1 {
		t.Errorf("regex rules unchanged since: %+v under %v (%v)", got, ns, err)
	}
	exec(`DELETE FROM domain_regex`)
	if got, ns, err := s.rowsVersion(ctx, snap, "ads.unrelated.org", verdict.Verdict{}, v+2); err == nil {
		t.Errorf("regex rules changed since: answered %+v under %v", got, ns)
	}
	if got, _, err := s.rowsVersion(ctx, snap, "x.new.example", block, v+2); err != nil || got != block {
		t.Errorf("table match after a regex change: %+v (%v)", got, err)
	}
}

// The filter build reads keys in chunks through the table's key; a table
// made by another tool without one is read row by row instead (chunks
// would sort it again each time), and both give the same filter. Keys
// another tool wrote as BLOBs sort after every TEXT key, and the chunks
// must still move on past them (no query can match them). (Written with
// the triggers on, they would be rewritten as TEXT, so the test drops the
// one that does it, as such a tool might.)
func TestFilterBuildWithAndWithoutAKey(t *testing.T) {
	ctx := context.Background()
	const keyed = `CREATE TABLE domain (Domain TEXT PRIMARY KEY, IPv4 TEXT, IPv6 TEXT) WITHOUT ROWID`
	for _, c := range []struct{ ddl, after string }{
		{keyed, ""},
		{`CREATE TABLE domain (Domain TEXT, IPv4 TEXT, IPv6 TEXT)`, ""},
		{keyed, `DROP TRIGGER blockcache_domain_norm_ins; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 16390)
			INSERT INTO domain SELECT CAST('blob' || i || '.example' AS BLOB), NULL, NULL FROM c`},
	} {
		path := filepath.Join(t.TempDir(), "list.db")
		db, err := sql.Open("sqlite3", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		n := buildChunk*2 + 7 // three chunks, the last one short
		for _, q := range []string{c.ddl, fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d)
			INSERT INTO domain SELECT 'n' || i || '.example', NULL, NULL FROM c`, n)} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		if err := Init(ctx, db); err != nil {
			t.Fatal(err)
		}
		var blobs int
		if c.after != "" {
			if _, err := db.Exec(c.after); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow(`SELECT count(*) FROM domain WHERE typeof(Domain) = 'blob'`).Scan(&blobs); err != nil || blobs == 0 {
				t.Fatalf("blob keys: %d (%v)", blobs, err)
			}
		}
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		f := mustFilter(t, int64(n))
		added, err := addTable(ctx, tx, "domain", int64(n+blobs), f, &oddKeys{}, func() bool { return true })
		inOrder, _ := indexed(ctx, tx, `SELECT Domain FROM domain WHERE Domain > ? ORDER BY Domain LIMIT 10`)
		tx.Rollback()
		if err != nil || added != n+blobs {
			t.Fatalf("%s: added %d of %d (%v)", c.ddl, added, n+blobs, err)
		}
		if inOrder != (c.ddl == keyed) {
			t.Errorf("%s: read in key order: %v", c.ddl, inOrder)
		}
		for i := 1; i <= n; i++ {
			if !f.mayContain(fmt.Sprintf("n%d.example", i)) {
				t.Fatalf("%s: n%d.example missing from the filter", c.ddl, i)
			}
		}
	}
}

// A build stopped by Close (blockcachectl explain and stats close their
// store at once) says nothing of the saved filter: that it "is not used
// (context canceled)" was a false alarm, even on a list that has none.
func TestStoppedBuildSaysNothingOfTheSavedFilter(t *testing.T) {
	path, exec := newList(t)
	exec(`INSERT INTO domain VALUES ('listed.example', NULL, NULL)`)
	for _, saved := range []bool{false, true} {
		if saved {
			w, err := OpenWriter(context.Background(), path, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.SaveFilter(context.Background()); err != nil {
				t.Fatal(err)
			}
			w.Close()
		}
		var mu sync.Mutex
		var said []string
		s, err := Open(context.Background(), Options{Path: path, Logf: func(f string, a ...any) {
			mu.Lock()
			defer mu.Unlock()
			said = append(said, fmt.Sprintf(f, a...))
		}})
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(2 * time.Second); s.snap.Load().filter.Load() == nil; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no filter")
			}
		}
		tx, err := s.snap.Load().q.db.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		stopped, cancel := context.WithCancel(context.Background())
		cancel()
		if f := s.useSaved(stopped, tx, s.Namespace().Version); f != nil {
			t.Errorf("saved %v: a stopped build used a filter", saved)
		}
		tx.Rollback()
		s.Close()
		mu.Lock()
		for _, l := range said {
			if strings.Contains(l, "is not used") {
				t.Errorf("saved %v: %q", saved, l)
			}
		}
		mu.Unlock()
	}
}
