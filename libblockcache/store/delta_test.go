package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

func changes(t *testing.T, db *sql.DB) []string {
	t.Helper()
	return column(t, db, `SELECT Version || ' ' || Domain FROM `+store.ChangesTable)
}

// Every row change bumps the version and logs its key; a regex change logs
// the empty key. Any writer does it, here plain SQL.
func TestTriggersLogChanges(t *testing.T) {
	_, db := testlist.New(t)
	testlist.Exec(t, db,
		`INSERT INTO domain VALUES ('a.example', NULL, NULL), ('b.example', NULL, NULL)`, // versions 2, 3
		`UPDATE domain SET Domain = 'c.example' WHERE Domain = 'a.example'`,              // 4
		`DELETE FROM domain WHERE Domain = 'b.example'`,                                  // 5
		`INSERT INTO domain_exact VALUES ('e.example', NULL, NULL)`,                      // 6
		`INSERT INTO domain_dns_allow VALUES ('f.example', '9.9.9.9')`,                   // 7
		`INSERT INTO domain_regex VALUES ('^x', NULL, NULL)`,                             // 8
		// Upserts, as operators' scripts write them: an update of the row
		// logs its key once (a second row of it would fail the statement).
		`INSERT INTO domain VALUES ('c.example', '10.0.0.1', NULL) ON CONFLICT(Domain) DO UPDATE SET IPv4 = excluded.IPv4`, // 9
		`INSERT INTO domain_regex VALUES ('^x', '10.0.0.1', NULL) ON CONFLICT DO UPDATE SET IPv4 = excluded.IPv4`,          // 10
	)
	want := []string{"2 a.example", "3 b.example", "4 a.example", "4 c.example", "5 b.example", "6 e.example", "7 f.example", "8 ", "9 c.example", "10 "}
	if got := changes(t, db); !slices.Equal(got, want) {
		t.Fatalf("change log %q, want %q", got, want)
	}
}

// The log keeps the last ChangesKept versions.
func TestChangeLogIsTrimmed(t *testing.T) {
	_, db := testlist.New(t)
	n := store.ChangesKept + 100
	testlist.Exec(t, db, fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d)
		INSERT INTO domain SELECT 'n' || i || '.example', NULL, NULL FROM c`, n))
	var rows, lo, hi int64
	if err := db.QueryRow(`SELECT count(*), min(Version), max(Version) FROM `+store.ChangesTable).Scan(&rows, &lo, &hi); err != nil {
		t.Fatal(err)
	}
	if rows != store.ChangesKept || hi != int64(n)+1 || lo != hi-store.ChangesKept+1 {
		t.Fatalf("log holds %d rows, versions %d-%d, after %d changes", rows, lo, hi, n)
	}
}

// A database initialized before the change log and the stamps (triggers
// that only bump the version) is read as it is, and gets the tables and
// new triggers from a writer's open.
func TestInitReplacesOlderTriggers(t *testing.T) {
	path, db := testlist.New(t)
	old := `CREATE TRIGGER blockcache_domain_ins AFTER INSERT ON domain BEGIN UPDATE blockcache_meta SET Value = Value + 1 WHERE Key = 'version'; END`
	testlist.Exec(t, db, `DROP TRIGGER blockcache_domain_ins`, old, `DROP TABLE `+store.ChangesTable, `DROP TABLE `+store.StampsTable, `UPDATE blockcache_meta SET Value = 1 WHERE Key = 'schema'`)
	if s := open(t, path, nil); s.Namespace().Stamp != 0 || resolve(t, s, "unrelated.org").Action != verdict.Pass {
		t.Fatalf("a list without stamps read as %v", s.Namespace())
	}
	w, err := store.OpenWriter(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	// A new connection: db's cached schema still lacks the table it
	// dropped, which the new triggers need (a connection that has seen
	// the schema change, as any other writer's, has it).
	db2, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	testlist.Exec(t, db2, `INSERT INTO domain VALUES ('a.example', NULL, NULL)`)
	if got := changes(t, db2); !slices.Equal(got, []string{"2 a.example"}) {
		t.Fatalf("change log after upgrade: %q", got)
	}
	if ns := testlist.At(t, db2, 2); ns.Stamp == 0 {
		t.Fatal("the first change after the upgrade has no stamp")
	}
	var schema int
	if err := db.QueryRow(`SELECT Value FROM blockcache_meta WHERE Key = 'schema'`).Scan(&schema); err != nil || schema != store.SchemaVersion {
		t.Fatalf("schema %d, %v", schema, err)
	}
}

// countLogs returns a log function and how many lines it saw holding part.
func countLogs(part string) (func(string, ...any), func() int) {
	var mu sync.Mutex
	n := 0
	return func(f string, a ...any) {
			if strings.Contains(fmt.Sprintf(f, a...), part) {
				mu.Lock()
				n++
				mu.Unlock()
			}
		}, func() int {
			mu.Lock()
			defer mu.Unlock()
			return n
		}
}

// nextVersion runs stmts and waits until the store answers from a newer version.
func nextVersion(t *testing.T, s *store.Store, db *sql.DB, stmts ...string) store.Namespace {
	t.Helper()
	before := s.Namespace()
	testlist.Exec(t, db, stmts...)
	waitFor(t, 2*time.Second, func() bool { return s.Namespace().Version > before.Version })
	return s.Namespace()
}

// A logged change keeps the filter (grown by the new names, so none is
// skipped) and vouches for the cached verdicts it did not touch.
func TestLoggedChangeKeepsFilterAndVerdicts(t *testing.T) {
	path, db := testlist.New(t, fixture...)
	logf, skipped := countLogs("skipped")
	s := openFiltered(t, path, logf)
	v0 := s.Namespace()
	v1 := nextVersion(t, s, db, `INSERT INTO domain VALUES ('new.example', NULL, NULL), ('other.example', NULL, NULL)`)
	if v := resolve(t, s, "www.new.example"); v.Action != verdict.Block {
		t.Fatalf("name listed by the change: %+v", v)
	}
	st := s.Stats()
	if st.Deltas != 1 || st.FilterBuilds != 1 || st.FilterBytes == 0 {
		t.Fatalf("deltas %d, filter builds %d, filter bytes %d: want the filter kept", st.Deltas, st.FilterBuilds, st.FilterBytes)
	}
	for n, want := range map[string]bool{
		"unrelated.org": true, "a.tracker.net": true, "exact.example": true, "example": true,
		"new.example": false, "www.new.example": false, "a.b.other.example": false,
	} {
		if got := s.StillValid(v0, v1, n); got != want {
			t.Errorf("StillValid(%v, %v, %q) = %v, want %v", v0, v1, n, got, want)
		}
	}
	if s.StillValid(v1, v1, "unrelated.org") || s.StillValid(v0, v0, "unrelated.org") {
		t.Error("StillValid for a version that is not older than the current one")
	}
	if s.StillValid(store.Namespace{ListID: "other", Version: v0.Version}, v1, "unrelated.org") {
		t.Error("StillValid across lists")
	}
	// Removing a name works the same way, and the changes add up.
	v2 := nextVersion(t, s, db, `DELETE FROM domain WHERE Domain = 'tracker.net'`)
	if s.StillValid(v1, v1, "x") || s.StillValid(v0, v2, "a.tracker.net") || s.StillValid(v1, v2, "a.tracker.net") || !s.StillValid(v0, v2, "unrelated.org") {
		t.Error("StillValid after a removal")
	}
	// A verdict cached after new.example was listed already has it.
	if s.StillValid(v0, v2, "www.new.example") || !s.StillValid(v1, v2, "www.new.example") {
		t.Error("StillValid does not tell apart when a name changed")
	}
	if s.StillValid(v0, v1, "unrelated.org") {
		t.Error("StillValid against a version that is no longer current")
	}
	if v := resolve(t, s, "a.tracker.net"); v.Action != verdict.Pass {
		t.Fatalf("removed name: %+v", v)
	}
	// The regex rules were not read again, and still apply; the pattern
	// that does not compile was reported once, when they were read.
	if v := resolve(t, s, "ads1.unrelated.org"); v.Action != verdict.Block || v.Table != verdict.TableRegex {
		t.Fatalf("regex rule after logged changes: %+v", v)
	}
	if n := skipped(); n != 1 {
		t.Errorf("the bad pattern was reported %d times, want once", n)
	}
}

// Changes the log cannot vouch for drop every cached verdict and rebuild
// the filter: a bump without a log row (a bulk import, or a writer with
// older triggers), and a gap trimmed from the log.
func TestUnloggedChangesDropEverything(t *testing.T) {
	for name, stmts := range map[string][]string{
		"bump without log": {`INSERT INTO domain VALUES ('new.example', NULL, NULL)`, store.BumpVersion},
		"older trigger": {`DROP TRIGGER blockcache_domain_ins`,
			`CREATE TRIGGER blockcache_domain_ins AFTER INSERT ON domain BEGIN UPDATE blockcache_meta SET Value = Value + 1 WHERE Key = 'version'; END`,
			`INSERT INTO domain VALUES ('new.example', NULL, NULL)`},
		"log trimmed": {`DELETE FROM ` + store.ChangesTable, `INSERT INTO domain VALUES ('new.example', NULL, NULL)`, `INSERT INTO domain VALUES ('new2.example', NULL, NULL)`},
	} {
		t.Run(name, func(t *testing.T) {
			path, db := testlist.New(t, fixture...)
			s := openFiltered(t, path, nil)
			v0 := s.Namespace()
			if name == "log trimmed" { // the first insert's row is gone by the time the reader looks
				testlist.Exec(t, db, `CREATE TRIGGER trim AFTER INSERT ON `+store.ChangesTable+` WHEN NEW.Domain = 'new2.example' BEGIN DELETE FROM `+store.ChangesTable+` WHERE Domain = 'new.example'; END`)
				tx, err := db.Begin()
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range stmts {
					if _, err := tx.Exec(q); err != nil {
						t.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 2*time.Second, func() bool { return s.Namespace().Version > v0.Version })
			} else {
				nextVersion(t, s, db, stmts...)
			}
			v1 := s.Namespace()
			if s.StillValid(v0, v1, "unrelated.org") {
				t.Error("an unlogged change vouched for a cached verdict")
			}
			waitFor(t, 2*time.Second, func() bool { return s.Stats().FilterBuilds == 2 })
			if st := s.Stats(); st.Deltas != 0 {
				t.Errorf("deltas %d", st.Deltas)
			}
			if v := resolve(t, s, "new.example"); v.Action != verdict.Block {
				t.Fatalf("new.example: %+v", v)
			}
		})
	}
}

// A list initialized before the change log (no ChangesTable) still gets
// its filter, once, and every change drops the cached verdicts.
func TestListWithoutChangeLog(t *testing.T) {
	path, db := testlist.New(t, fixture...)
	testlist.Exec(t, db, `DROP TABLE `+store.ChangesTable)
	for _, tr := range store.TriggerNames(verdict.TableDomain) {
		testlist.Exec(t, db, `DROP TRIGGER `+tr)
	}
	for _, op := range []string{"ins", "upd", "del"} { // bump, log nothing
		testlist.Exec(t, db, `CREATE TRIGGER blockcache_domain_`+op+` AFTER `+map[string]string{"ins": "INSERT", "upd": "UPDATE", "del": "DELETE"}[op]+` ON domain BEGIN `+store.BumpVersion+`; END`)
	}
	logf, said := countLogs("has no change log")
	s := openFiltered(t, path, logf)
	v0 := s.Namespace()
	v1 := nextVersion(t, s, db, `INSERT INTO domain VALUES ('new.example', NULL, NULL)`)
	if s.StillValid(v0, v1, "unrelated.org") {
		t.Error("a change without a log vouched for a cached verdict")
	}
	waitFor(t, 2*time.Second, func() bool { return s.Stats().FilterBytes > 0 })
	if v := resolve(t, s, "www.new.example"); v.Action != verdict.Block {
		t.Fatalf("www.new.example: %+v", v)
	}
	if st := s.Stats(); st.FilterBuilds != 2 || st.Deltas != 0 {
		t.Errorf("filter builds %d, deltas %d; want 2 and 0", st.FilterBuilds, st.Deltas)
	}
	if n := said(); n != 1 {
		t.Errorf("said %d times that the list has no change log, want once", n)
	}
}

// A store that just opened the list vouches for verdicts of the versions
// its change log covers back to the last regex change or gap: those another
// node of the fleet cached in Valkey, say.
func TestFreshStoreVouchesForRecentVersions(t *testing.T) {
	path, db := testlist.New(t, fixture...) // ends with regex rows
	var regexAt uint64
	if err := db.QueryRow(`SELECT Value FROM blockcache_meta WHERE Key = 'version'`).Scan(&regexAt); err != nil {
		t.Fatal(err)
	}
	testlist.Exec(t, db, `INSERT INTO domain VALUES ('a.example', NULL, NULL)`, `INSERT INTO domain VALUES ('b.example', NULL, NULL)`)
	s := open(t, path, nil)
	cur := s.Namespace()
	if cur.Version != regexAt+2 {
		t.Fatalf("version %d, want %d", cur.Version, regexAt+2)
	}
	at := func(v uint64) store.Namespace { return testlist.At(t, db, v) }
	for _, c := range []struct {
		v    uint64
		name string
		want bool
	}{
		{regexAt, "unrelated.org", true}, {regexAt + 1, "unrelated.org", true},
		{regexAt, "www.a.example", false}, {regexAt + 1, "b.example", false},
		// a.example changed at regexAt+1 itself: a verdict cached then
		// already has it.
		{regexAt + 1, "www.a.example", true},
		{regexAt - 1, "unrelated.org", false}, // before the regex change
	} {
		if got := s.StillValid(at(c.v), cur, c.name); got != c.want {
			t.Errorf("StillValid(version %d, %d, %q) = %v, want %v", c.v, cur.Version, c.name, got, c.want)
		}
	}

	// A bump without a log row ends the run; so does the bound on keys.
	testlist.Exec(t, db, store.BumpVersion, `INSERT INTO domain VALUES ('c.example', NULL, NULL)`)
	s2 := open(t, path, nil)
	cur = s2.Namespace()
	if s2.StillValid(at(cur.Version-2), cur, "unrelated.org") || !s2.StillValid(at(cur.Version-1), cur, "unrelated.org") {
		t.Error("history crossed a version without a log row")
	}
	testlist.Exec(t, db, `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 20000)
		INSERT INTO domain SELECT 'n' || i || '.example', NULL, NULL FROM c`)
	s3 := open(t, path, nil)
	cur = s3.Namespace()
	const kept = 16384 // store.maxChanged
	if !s3.StillValid(at(cur.Version-kept), cur, "unrelated.org") || s3.StillValid(at(cur.Version-kept-1), cur, "unrelated.org") {
		t.Errorf("history of %d versions: want exactly the last %d", 20000, kept)
	}
}

// A small import (a feed's update) is logged under its one version, so it
// keeps the caches as any logged change does; a large one drops them, and
// an empty one does not even bump the version.
func TestImportLogsAFeedUpdate(t *testing.T) {
	path, _ := testlist.New(t, fixture...)
	w := openWriter(t, path)
	s := openFiltered(t, path, nil)
	v0 := s.Namespace()
	importN(t, w, verdict.TableDomain, "feed%d.example", 3)
	waitFor(t, 2*time.Second, func() bool { return s.Namespace().Version == v0.Version+1 })
	v1 := s.Namespace()
	if v := resolve(t, s, "www.feed2.example"); v.Action != verdict.Block {
		t.Fatalf("imported name: %+v", v)
	}
	if st := s.Stats(); st.Deltas != 1 || !s.StillValid(v0, v1, "unrelated.org") || s.StillValid(v0, v1, "feed3.example") {
		t.Fatalf("a 3-name import was not read as a logged change: deltas %d", st.Deltas)
	}
	importN(t, w, verdict.TableDomain, "none%d.example", 0)
	if ns, err := w.Namespace(context.Background()); err != nil || ns != v1 {
		t.Fatalf("after an empty import the list is %v (%v), want %v", ns, err, v1)
	}
	importN(t, w, verdict.TableDomain, "bulk%d.example", 20000)
	waitFor(t, 2*time.Second, func() bool { return s.Namespace().Version == v1.Version+1 })
	if st := s.Stats(); st.Deltas != 1 || s.StillValid(v1, s.Namespace(), "unrelated.org") {
		t.Fatalf("a 20,000-name import was read as a logged change: deltas %d", st.Deltas)
	}
	if v := resolve(t, s, "bulk19999.example"); v.Action != verdict.Block {
		t.Fatalf("bulk-imported name: %+v", v)
	}
}

// A feed imported again is mostly names already listed as given. Only the
// names that are new or listed otherwise are changes: an import of nothing
// new keeps the version, one of a few new names is logged as a small
// change (readers keep every other verdict), and a rule added again as it
// is bumps nothing.
func TestImportAgainChangesOnlyWhatDiffers(t *testing.T) {
	path, db := testlist.New(t, fixture...)
	w := openWriter(t, path)
	ctx := context.Background()
	s := openFiltered(t, path, nil)
	importN(t, w, verdict.TableDomain, "feed%d.example", 20000) // too large to log
	v1, err := w.Namespace(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return s.Namespace() == v1 })
	if st := importN(t, w, verdict.TableDomain, "feed%d.example", 20000); st.Rows != 20000 || st.Changed != 0 || st.Logged || st.Filter != nil {
		t.Fatalf("the same import again: %+v, want 20,000 names and no change", st)
	}
	if ns, err := w.Namespace(ctx); err != nil || ns != v1 {
		t.Fatalf("after importing the same names the list is %v (%v), want %v", ns, err, v1)
	}
	st := importN(t, w, verdict.TableDomain, "feed%d.example", 20010)
	if st.Rows != 20010 || st.Changed != 10 || !st.Logged {
		t.Fatalf("the feed with 10 names more: %+v, want 10 changed and logged", st)
	}
	waitFor(t, 2*time.Second, func() bool { return s.Namespace().Version == v1.Version+1 })
	v2 := s.Namespace()
	if !s.StillValid(v1, v2, "feed5.example") || s.StillValid(v1, v2, "feed20005.example") {
		t.Error("a verdict the import did not change was dropped, or a changed one kept")
	}
	var logged []string
	for _, c := range changes(t, db) {
		if strings.HasPrefix(c, fmt.Sprint(v2.Version)+" ") {
			logged = append(logged, c)
		}
	}
	if len(logged) != 10 || !slices.Contains(logged, fmt.Sprintf("%d feed20010.example", v2.Version)) {
		t.Errorf("change log of version %d: %q, want the 10 new names", v2.Version, logged)
	}

	// A new sinkhole address for names already listed is a change.
	i := 0
	st, err = w.Import(ctx, verdict.TableDomain, func() (string, bool, error) {
		i++
		return fmt.Sprintf("feed%d.example", i), i <= 3, nil
	}, store.ImportOptions{Rule: store.Rule{IPv4: "10.0.0.1"}})
	if err != nil || st.Changed != 3 {
		t.Fatalf("3 names with a new address: %+v (%v)", st, err)
	}
	waitFor(t, 2*time.Second, func() bool { return resolve(t, s, "www.feed2.example").IPv4.String() == "10.0.0.1" })

	v3, _ := w.Namespace(ctx)
	for _, c := range []struct {
		table verdict.Table
		rule  store.Rule
		want  int
	}{
		{verdict.TableDomain, store.Rule{Key: "feed1.example", IPv4: "10.0.0.1"}, 0},
		{verdict.TableDomain, store.Rule{Key: "feed1.example"}, 1},
		{verdict.TableDNSAllow, store.Rule{Key: "f.example", Server: "127.0.0.1#5353"}, 1},
		{verdict.TableDNSAllow, store.Rule{Key: "f.example", Server: "127.0.0.1#5353"}, 0},
		{verdict.TableDNSAllow, store.Rule{Key: "f.example", Server: "127.0.0.2"}, 1},
	} {
		n, err := w.Add(ctx, c.table, []store.Rule{c.rule})
		if err != nil || n != c.want {
			t.Errorf("Add %+v: %d changed (%v), want %d", c.rule, n, err, c.want)
		}
		ns, _ := w.Namespace(ctx)
		if ns.Version != v3.Version+uint64(c.want) {
			t.Errorf("Add %+v: list version %d after %d, want one more for each change", c.rule, ns.Version, v3.Version)
		}
		v3 = ns
	}
}

// A regex change can change any name's verdict, so it drops every cached
// verdict of older versions, but it changes no key of the membership
// filter, which is kept (on a billion names a rebuild takes minutes).
func TestRegexChangeKeepsTheFilter(t *testing.T) {
	path, db := testlist.New(t, fixture...)
	s := openFiltered(t, path, nil)
	v0 := s.Namespace()
	v1 := nextVersion(t, s, db, `INSERT INTO domain_regex VALUES ('^new\.', NULL, NULL)`)
	if s.StillValid(v0, v1, "unrelated.org") {
		t.Error("a regex change vouched for a verdict cached before it")
	}
	if v := resolve(t, s, "new.example"); v.Action != verdict.Block || v.Table != verdict.TableRegex {
		t.Fatalf("new regex rule: %+v", v)
	}
	v2 := nextVersion(t, s, db, `INSERT INTO domain VALUES ('later.example', NULL, NULL)`)
	if !s.StillValid(v1, v2, "unrelated.org") || s.StillValid(v0, v2, "unrelated.org") {
		t.Error("after a regex change, only verdicts cached since should be vouched for")
	}
	if st := s.Stats(); st.FilterBuilds != 1 || st.Deltas != 2 {
		t.Errorf("filter builds %d, deltas %d; want the filter kept through both changes", st.FilterBuilds, st.Deltas)
	}
	if v := resolve(t, s, "www.later.example"); v.Action != verdict.Block {
		t.Fatalf("name listed after the regex change: %+v", v)
	}
}

// importRange imports format's names numbered from..to with opts.
func importRange(t *testing.T, w *store.Writer, table verdict.Table, format string, from, to int, opts store.ImportOptions) (store.ImportStats, error) {
	t.Helper()
	return w.Import(context.Background(), table, keys(format, from, to), opts)
}

// A replacing import (a feed imported whole every day) leaves the table
// holding exactly its names. The names it removes are changes like the
// ones it adds: logged when few, so readers keep every other verdict. An
// import of no names, or one that would remove more than MaxRemoved of the
// table (a feed cut short), changes nothing.
// Matches lists every rule that matches a name, the deciding one first,
// as a lookup ranks them.
func TestMatches(t *testing.T) {
	path, _ := testlist.New(t,
		`INSERT INTO domain_dns_allow VALUES ('ok.ads1.tracker.net', '#')`,
		`INSERT INTO domain_exact VALUES ('ok.ads1.tracker.net', NULL, NULL), ('ads1.tracker.net', NULL, NULL)`,
		`INSERT INTO domain VALUES ('tracker.net', NULL, NULL), ('ads1.tracker.net', NULL, NULL)`,
		`INSERT INTO domain_regex VALUES ('^ad[sz]?[0-9]*\.', NULL, NULL), ('^OK\.', NULL, NULL), ('^nomatch', NULL, NULL)`)
	s := openFiltered(t, path, nil)
	for n, want := range map[string]string{
		"ok.ads1.tracker.net":   "domain_dns_allow ok.ads1.tracker.net, domain_exact ok.ads1.tracker.net, domain ads1.tracker.net, domain tracker.net, domain_regex ^OK\\.",
		"x.ok.ads1.tracker.net": "domain_dns_allow ok.ads1.tracker.net, domain ads1.tracker.net, domain tracker.net",
		"ads1.tracker.net":      "domain_exact ads1.tracker.net, domain ads1.tracker.net, domain tracker.net, domain_regex ^ad[sz]?[0-9]*\\.",
		"unlisted.example":      "",
	} {
		ms, err := s.Matches(context.Background(), n)
		var got []string
		for _, m := range ms {
			got = append(got, m.Table.String()+" "+m.Rule)
		}
		if err != nil || strings.Join(got, ", ") != want {
			t.Errorf("%s: %q, %v; want %q", n, strings.Join(got, ", "), err, want)
		}
	}
}

// A feed's blocks and exceptions are one change: readers see both parts
// at once, and a part that is refused leaves the other unwritten too.
func TestImportAllIsOneChange(t *testing.T) {
	path, db := testlist.New(t)
	w := openWriter(t, path)
	s := openFiltered(t, path, nil)
	ctx := context.Background()
	blocks := store.ImportOptions{Replace: true, MaxRemoved: 0.5}
	exceptions := store.ImportOptions{Replace: true, MaxRemoved: 0.5, Rule: store.Rule{Server: verdict.UsualServers}}
	v0, _ := w.Namespace(ctx)
	sts, err := w.ImportAll(ctx,
		store.ImportPart{Table: verdict.TableDomain, Next: keys("b%d.feed.example", 1, 10), Options: blocks},
		store.ImportPart{Table: verdict.TableDNSAllow, Next: keys("ok%d.b1.feed.example", 1, 4), Options: exceptions})
	if err != nil || len(sts) != 2 || sts[0].Rows != 10 || sts[1].Rows != 4 || !sts[0].Logged || !sts[1].Logged {
		t.Fatalf("%+v, %v", sts, err)
	}
	v1, _ := w.Namespace(ctx)
	if v1.Version != v0.Version+2 {
		t.Errorf("version %d after %d: want a bump by each part", v1.Version, v0.Version)
	}
	waitFor(t, 2*time.Second, func() bool { return s.Namespace() == v1 })
	for name, want := range map[string]verdict.Action{"x.b1.feed.example": verdict.Block, "x.ok2.b1.feed.example": verdict.Forward, "b10.feed.example": verdict.Block} {
		if v := resolve(t, s, name); v.Action != want {
			t.Errorf("%s: %v, want %v", name, v.Action, want)
		}
	}

	// The exceptions part would remove 3 of 4: refused, and the blocks
	// part's new name is not written either.
	_, err = w.ImportAll(ctx,
		store.ImportPart{Table: verdict.TableDomain, Next: keys("b%d.feed.example", 1, 11), Options: blocks},
		store.ImportPart{Table: verdict.TableDNSAllow, Next: keys("ok%d.b1.feed.example", 1, 1), Options: exceptions})
	var n int
	db.QueryRow(`SELECT count(*) FROM domain WHERE Domain = 'b11.feed.example'`).Scan(&n)
	if v, _ := w.Namespace(ctx); !errors.Is(err, store.ErrTooManyRemoved) || n != 0 || v != v1 {
		t.Errorf("refused exceptions: %v; b11 written %d times, list %v (want %v)", err, n, v, v1)
	}
	if _, err := w.ImportAll(ctx, store.ImportPart{Table: verdict.TableDomain, Next: keys("x%d.example", 1, 1)}, store.ImportPart{Table: verdict.TableDomain, Next: keys("y%d.example", 1, 1)}); err == nil {
		t.Error("two parts into one table were not refused")
	}
	// A dry run of both parts changes nothing.
	sts, err = w.ImportAll(ctx,
		store.ImportPart{Table: verdict.TableDomain, Next: keys("b%d.feed.example", 1, 11), Options: store.ImportOptions{DryRun: true}},
		store.ImportPart{Table: verdict.TableDNSAllow, Next: keys("ok%d.b1.feed.example", 5, 5), Options: store.ImportOptions{DryRun: true, Rule: store.Rule{Server: verdict.UsualServers}}})
	db.QueryRow(`SELECT count(*) FROM domain_dns_allow`).Scan(&n)
	if v, _ := w.Namespace(ctx); err != nil || sts[0].Changed != 1 || sts[1].Changed != 1 || n != 4 || v != v1 {
		t.Errorf("dry run: %+v, %v; %d allow rules, list %v (want 4, %v)", sts, err, n, v, v1)
	}
}

// In a forward table a replacing import replaces the rules to its own
// server: a feed's exceptions to dnsmasq's usual servers leave the
// operator's rules to a resolver alone, and the share it may remove is a
// share of its own rules.
func TestReplacingImportKeepsOtherServers(t *testing.T) {
	path, db := testlist.New(t)
	w := openWriter(t, path)
	servers := func() map[string]int {
		t.Helper()
		rows, err := db.Query(`SELECT Server, count(*) FROM domain_dns_allow WHERE Domain LIKE '%.allow.example' GROUP BY Server`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		m := map[string]int{}
		for rows.Next() {
			var s string
			var n int
			rows.Scan(&s, &n)
			m[s] = n
		}
		return m
	}
	usual := store.ImportOptions{Replace: true, MaxRemoved: 0.5, Rule: store.Rule{Server: verdict.UsualServers}}
	resolver := store.ImportOptions{Rule: store.Rule{Server: "9.9.9.9"}}
	if _, err := importRange(t, w, verdict.TableDNSAllow, "r%d.allow.example", 1, 10, resolver); err != nil {
		t.Fatal(err)
	}
	if _, err := importRange(t, w, verdict.TableDNSAllow, "u%d.allow.example", 1, 4, usual); err != nil {
		t.Fatal(err)
	}
	st, err := importRange(t, w, verdict.TableDNSAllow, "u%d.allow.example", 2, 4, usual)
	if got := servers(); err != nil || st.Removed != 1 || got["#"] != 3 || got["9.9.9.9"] != 10 {
		t.Errorf("u1 dropped: %+v, %v; rules by server %v, want 3 to # and 10 to 9.9.9.9", st, err, got)
	}
	// 2 of the 3 rules to "#": too many, though 2 of 13 in the table.
	if _, err := importRange(t, w, verdict.TableDNSAllow, "u%d.allow.example", 4, 4, usual); !errors.Is(err, store.ErrTooManyRemoved) || !strings.Contains(err.Error(), "2 of the 3 names in domain_dns_allow to server #") {
		t.Errorf("2 of 3 removed: %v", err)
	}
	// A feed's exception for a name the operator allowed to a resolver
	// leaves that rule alone, and so does the feed dropping it later.
	if _, err := importRange(t, w, verdict.TableDNSAllow, "r%d.allow.example", 1, 1, store.ImportOptions{Rule: store.Rule{Server: verdict.UsualServers}}); err != nil {
		t.Fatal(err)
	}
	st, err = importRange(t, w, verdict.TableDNSAllow, "u%d.allow.example", 2, 4, usual)
	if got := servers(); err != nil || st.Removed != 0 || got["#"] != 3 || got["9.9.9.9"] != 10 {
		t.Errorf("after a feed took r1 and dropped it: %+v, %v; rules by server %v, want 3 to # and 10 to 9.9.9.9", st, err, got)
	}
	// By hand, the operator may still move it.
	if _, err := w.Add(context.Background(), verdict.TableDNSAllow, []store.Rule{{Key: "r1.allow.example", Server: verdict.UsualServers}}); err != nil || servers()["#"] != 4 {
		t.Errorf("add r1 to #: %v, %v", err, servers())
	}
}

func TestReplacingImport(t *testing.T) {
	path, db := testlist.New(t)
	w := openWriter(t, path)
	ctx := context.Background()
	s := openFiltered(t, path, nil)
	count := func() (n int) {
		t.Helper()
		if err := db.QueryRow(`SELECT count(*) FROM domain`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	replace := store.ImportOptions{Replace: true, MaxRemoved: 0.5}
	if _, err := importRange(t, w, verdict.TableDomain, "feed%d.example", 1, 100, replace); err != nil {
		t.Fatal(err)
	}
	v1, _ := w.Namespace(ctx)
	waitFor(t, 2*time.Second, func() bool { return s.Namespace() == v1 })

	st, err := importRange(t, w, verdict.TableDomain, "feed%d.example", 3, 102, replace)
	if err != nil || st.Rows != 100 || st.Changed != 4 || st.Removed != 2 || !st.Logged {
		t.Fatalf("feed1-2 dropped, feed101-102 added: %+v (%v); want 2 added, 2 removed, logged", st, err)
	}
	waitFor(t, 2*time.Second, func() bool { return s.Namespace().Version == v1.Version+1 })
	v2 := s.Namespace()
	for name, want := range map[string]verdict.Action{"feed1.example": verdict.Pass, "www.feed2.example": verdict.Pass, "feed3.example": verdict.Block, "feed102.example": verdict.Block} {
		if v := resolve(t, s, name); v.Action != want {
			t.Errorf("%s after the replacing import: %v, want %v", name, v.Action, want)
		}
	}
	if !s.StillValid(v1, v2, "feed50.example") || s.StillValid(v1, v2, "feed1.example") {
		t.Error("a verdict the import did not touch was dropped, or a removed name's kept")
	}

	for _, c := range []struct {
		from, to int
		err      error
	}{
		{1, 0, store.ErrEmptyReplace},    // no names
		{3, 40, store.ErrTooManyRemoved}, // 62 of 100 removed
	} {
		if _, err := importRange(t, w, verdict.TableDomain, "feed%d.example", c.from, c.to, replace); !errors.Is(err, c.err) {
			t.Errorf("names %d to %d: %v, want %v", c.from, c.to, err, c.err)
		}
		if ns, _ := w.Namespace(ctx); ns != v2 || count() != 100 {
			t.Errorf("names %d to %d: list %v with %d names, want it unchanged (%v, 100)", c.from, c.to, ns, count(), v2)
		}
	}
	// No names into an empty table: nothing to empty, nothing changes.
	if st, err := importRange(t, w, verdict.TableDNSAllow, "allow%d.example", 1, 0, store.ImportOptions{Replace: true, Rule: store.Rule{Server: verdict.UsualServers}}); err != nil || st.Changed != 0 {
		t.Errorf("no names into an empty table: %+v, %v", st, err)
	}
	if ns, _ := w.Namespace(ctx); ns != v2 {
		t.Errorf("no names into an empty table changed the list: %v, want %v", ns, v2)
	}

	// Too many removed to log: every verdict is dropped, as for a large
	// import, and the names are gone.
	if _, err := importRange(t, w, verdict.TableDomain, "bulk%d.example", 1, 30000, store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return resolve(t, s, "bulk20000.example").Action == verdict.Block })
	st, err = importRange(t, w, verdict.TableDomain, "bulk%d.example", 1, 10000, store.ImportOptions{Replace: true})
	if err != nil || st.Removed != 20100 || st.Logged || count() != 10000 {
		t.Fatalf("bulk10001-30000 and feed3-102 dropped: %+v (%v), %d names left", st, err, count())
	}
	waitFor(t, 2*time.Second, func() bool { return resolve(t, s, "bulk20000.example").Action == verdict.Pass })
	if v := resolve(t, s, "bulk9999.example"); v.Action != verdict.Block {
		t.Errorf("bulk9999.example: %v", v.Action)
	}

	// Patterns: the regex marker, as for any regex import.
	importRange(t, w, verdict.TableRegex, "^re%d\\.", 1, 3, store.ImportOptions{})
	waitFor(t, 2*time.Second, func() bool { return resolve(t, s, "re1.example").Action == verdict.Block })
	st, err = importRange(t, w, verdict.TableRegex, "^re%d\\.", 2, 3, store.ImportOptions{Replace: true})
	if err != nil || st.Removed != 1 || !st.Logged {
		t.Fatalf("a pattern dropped: %+v (%v)", st, err)
	}
	waitFor(t, 2*time.Second, func() bool { return resolve(t, s, "re1.example").Action == verdict.Pass })
	if v := resolve(t, s, "re2.example"); v.Action != verdict.Block {
		t.Errorf("re2.example: %v", v.Action)
	}
}
