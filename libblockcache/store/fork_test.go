package store_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// listWithBackup makes a list of a.example and a backup of it.
func listWithBackup(t *testing.T) (path string, w *sql.DB, backup string) {
	t.Helper()
	path, w = testlist.New(t, `INSERT INTO domain VALUES ('a.example', NULL, NULL)`)
	backup = filepath.Join(t.TempDir(), "backup.db")
	if _, err := w.Exec(`VACUUM INTO ?`, backup); err != nil {
		t.Fatal(err)
	}
	return path, w, backup
}

// A backup put back in place is an older version of its list: the changes
// after it are numbered as the lost ones were. The reader must not take a
// verdict cached for one of those numbers for the new contents, so it
// gives the list an identity of its own until the file gets one.
func TestOlderCopyIsKeptApart(t *testing.T) {
	ctx := context.Background()
	path, w, backup := listWithBackup(t)
	l := &logs{}
	s := open(t, path, l.logf)
	testlist.Exec(t, w, `INSERT INTO domain VALUES ('b.example', NULL, NULL)`)
	waitFor(t, 2*time.Second, func() bool { return resolve(t, s, "b.example").Action == verdict.Block })
	lost := s.Namespace()
	// Empty the live file's log, as its writers' last close would: a
	// replacement waits for it (TestReplacementWaitsForTheOldWAL).
	testlist.Exec(t, w, `PRAGMA wal_checkpoint(TRUNCATE)`)
	w.Close()

	if err := os.Rename(backup, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return s.Stats().Reopens == 1 })
	restored := s.Namespace()
	if restored.Version >= lost.Version || !strings.HasPrefix(restored.ListID, lost.ListID+"~") {
		t.Fatalf("list %v after the backup replaced %v: want an older version under an identity of its own", restored, lost)
	}
	if line := l.with("went back"); !strings.Contains(line, "blockcachectl fork --db "+path) {
		t.Errorf("no log line says how to fork the list: %q", line)
	}

	// The restored list's next change repeats the lost one's number.
	testlist.Exec(t, testlist.Open(t, path), `INSERT INTO domain VALUES ('c.example', NULL, NULL)`)
	waitFor(t, 2*time.Second, func() bool { return resolve(t, s, "c.example").Action == verdict.Block })
	again := s.Namespace()
	if again.Version != lost.Version || again.ListID != restored.ListID {
		t.Fatalf("list %v after a change to the restored %v", again, restored)
	}
	if again == lost {
		t.Fatal("two contents under one namespace: a verdict cached for b.example would be served again")
	}
	if s.Stats().Deltas == 0 {
		t.Error("the restored list's change was not read from its change log")
	}
	if resolve(t, s, "b.example").Action != verdict.Pass {
		t.Error("b.example is blocked after the restore")
	}
	if s.StillValid(store.Namespace{ListID: lost.ListID, Version: lost.Version - 1}, again, "x.example") {
		t.Error("a verdict of the lost history is still valid")
	}

	// Forked, the file has an identity every reader agrees on.
	before, after, err := openWriter(t, path).Fork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.ListID != lost.ListID || after.ListID == before.ListID || after.Version != before.Version {
		t.Fatalf("Fork: %v -> %v", before, after)
	}
	waitFor(t, 2*time.Second, func() bool { return s.Namespace() == after })
	if fresh := open(t, path, t.Logf); fresh.Namespace() != after {
		t.Errorf("a new reader reads %v, the old one %v", fresh.Namespace(), after)
	}
}

// Publish refuses to put an older copy of a list over a newer one, and
// publishes it once forked.
func TestPublishRefusesAnOlderCopy(t *testing.T) {
	ctx := context.Background()
	master, w, backup := listWithBackup(t)
	testlist.Exec(t, w, `INSERT INTO domain VALUES ('b.example', NULL, NULL)`)
	dst := filepath.Join(t.TempDir(), "list.db")
	if _, _, err := store.Publish(ctx, master, dst); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Publish(ctx, backup, dst); !errors.Is(err, store.ErrOlderCopy) || !strings.Contains(err.Error(), "blockcachectl fork --db "+backup) {
		t.Fatalf("publishing the backup over a newer copy: %v", err)
	}
	if _, _, err := openWriter(t, backup).Fork(ctx); err != nil {
		t.Fatal(err)
	}
	ns, counts, err := store.Publish(ctx, backup, dst)
	if err != nil || counts["domain"] != 1 {
		t.Fatalf("publishing the forked backup: %v %v %v", ns, counts, err)
	}
	// A newer version of the same list publishes as before.
	if _, _, err := store.Publish(ctx, master, filepath.Join(filepath.Dir(dst), "other.db")); err != nil {
		t.Fatal(err)
	}
}

// A list in rollback-journal mode is noted at a start; a published copy
// that replaces the list is in that mode every time and is not.
func TestJournalModeNotedAtStartOnly(t *testing.T) {
	master, _ := testlist.New(t, `INSERT INTO domain VALUES ('a.example', NULL, NULL)`)
	live := filepath.Join(t.TempDir(), "list.db")
	if _, _, err := store.Publish(context.Background(), master, live); err != nil {
		t.Fatal(err)
	}
	l := &logs{}
	s := open(t, live, l.logf)
	if l.with("uses journal_mode=delete") == "" {
		t.Fatal("a list in rollback-journal mode was not noted at the start")
	}
	if _, _, err := store.Publish(context.Background(), master, live); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return s.Stats().Reopens == 1 })
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := strings.Count(strings.Join(l.lines, "\n"), "uses journal_mode"); n != 1 {
		t.Errorf("noted %d times:\n%s", n, strings.Join(l.lines, "\n"))
	}
}

// Two histories of one list, a backup put back in place beside the copy it
// was taken from, number their next changes alike. Their stamps tell them
// apart, so a reader that never saw the list go back (one started on the
// restored file) takes no verdict of the other history for its own, and
// still takes those of the versions both share.
func TestHistoriesHaveStampsOfTheirOwn(t *testing.T) {
	path, w, backup := listWithBackup(t)
	b := testlist.Open(t, backup)
	testlist.Exec(t, w, `INSERT INTO domain VALUES ('lost.example', NULL, NULL)`)
	testlist.Exec(t, b, `INSERT INTO domain VALUES ('kept.example', NULL, NULL)`)
	lost, kept := open(t, path, nil).Namespace(), open(t, backup, nil).Namespace()
	if lost.ListID != kept.ListID || lost.Version != kept.Version {
		t.Fatalf("the two copies are at %v and %v: want one list at one version", lost, kept)
	}
	if lost.Stamp == kept.Stamp || lost.Stamp == 0 {
		t.Fatalf("stamps %d and %d: want two of their own", lost.Stamp, kept.Stamp)
	}
	testlist.Exec(t, b, `INSERT INTO domain VALUES ('later.example', NULL, NULL)`)
	s := open(t, backup, nil)
	cur := s.Namespace()
	if s.StillValid(lost, cur, "x.example") {
		t.Errorf("a verdict cached under %v (the other history) is taken at %v", lost, cur)
	}
	if !s.StillValid(kept, cur, "x.example") {
		t.Errorf("a verdict cached under %v (this history) is not taken at %v", kept, cur)
	}
	if shared := testlist.At(t, b, kept.Version-1); shared != testlist.At(t, w, kept.Version-1) || !s.StillValid(shared, cur, "x.example") {
		t.Errorf("a verdict of %v, before the copies parted, is not taken at %v", shared, cur)
	}
}

// A stamps table the library cannot read (another tool's table of that
// name) costs cached verdicts, not the list: it opens, answers, follows
// changes, and says why verdicts are not shared.
func TestUnreadableStampsKeepTheListAnswering(t *testing.T) {
	path, w := testlist.New(t, `INSERT INTO domain VALUES ('a.example', NULL, NULL)`)
	testlist.Exec(t, w, `DROP TABLE `+store.StampsTable, `CREATE TABLE `+store.StampsTable+` (Version INTEGER PRIMARY KEY, Other)`)
	l := &logs{}
	s := open(t, path, l.logf)
	if ns := s.Namespace(); ns.Stamp != 0 || resolve(t, s, "www.a.example").Action != verdict.Block {
		t.Fatalf("list %v", ns)
	}
	if line := l.with(store.StampsTable); !strings.Contains(line, "read without stamps") {
		t.Errorf("no log line says why: %q", l.text())
	}
	testlist.Exec(t, w, `INSERT INTO domain VALUES ('b.example', NULL, NULL)`)
	waitFor(t, 2*time.Second, func() bool { return resolve(t, s, "b.example").Action == verdict.Block })
}
