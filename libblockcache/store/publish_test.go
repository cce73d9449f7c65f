package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// Publish is the safe way to ship a list: readers switch to the copy as a
// whole, even when dst's own writer left pages in its WAL, and the copy
// needs no -shm beside it.
func TestPublishSwitchesReaders(t *testing.T) {
	dst, live := testlist.New(t, `INSERT INTO domain VALUES ('old.example', NULL, NULL)`)
	testlist.Exec(t, live, `INSERT INTO domain_exact VALUES ('in-wal.example', NULL, NULL)`) // the live file's writer stays open
	s := open(t, dst, t.Logf)
	src, master := testlist.New(t, `INSERT INTO domain VALUES ('new.example', NULL, NULL)`)
	testlist.Exec(t, master, `INSERT INTO domain_regex VALUES ('^pub[0-9]+\.', NULL, NULL)`) // still in the master's WAL
	ns, counts, err := store.Publish(context.Background(), src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if counts["domain"] != 1 || counts["domain_regex"] != 1 || ns.Version == 0 {
		t.Errorf("published %v %v, want the master's list", ns, counts)
	}
	waitFor(t, 2*time.Second, func() bool { return s.Namespace() == ns })
	for n, want := range map[string]verdict.Action{"a.new.example": verdict.Block, "pub7.example": verdict.Block, "a.old.example": verdict.Pass, "in-wal.example": verdict.Pass} {
		if v := resolve(t, s, n); v.Action != want {
			t.Errorf("%s: %v after publishing, want %v", n, v.Action, want)
		}
	}
	if hdr, err := os.ReadFile(dst); err != nil || hdr[18] != 1 || hdr[19] != 1 {
		t.Errorf("the published file is not in rollback-journal mode (%v)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".*publish*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestPublishRefuses(t *testing.T) {
	src, _ := testlist.New(t, `INSERT INTO domain VALUES ('new.example', NULL, NULL)`)
	dir := t.TempDir()
	target, db := testlist.New(t)
	db.Close()
	link := filepath.Join(dir, "current.db")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dst, want string }{
		{link, "is a symlink"},
		{filepath.Join(dir, "missing", "list.db"), "no such file or directory"},
		{src, "over itself"},
	} {
		if _, _, err := store.Publish(context.Background(), src, c.dst); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Publish to %s: %v, want an error mentioning %q", c.dst, err, c.want)
		}
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced (%v)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*publish*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if _, _, err := store.Publish(context.Background(), filepath.Join(dir, "nope.db"), filepath.Join(dir, "out.db")); err == nil {
		t.Error("published a missing source")
	}
}
