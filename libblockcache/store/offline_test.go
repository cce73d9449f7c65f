package store_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

func journalMode(t *testing.T, path string) string {
	t.Helper()
	db := testlist.Open(t, path)
	defer db.Close() // open, it would keep the list from leaving WAL
	var m string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func walSize(path string) int64 {
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		return 0
	}
	return fi.Size()
}

// An offline import writes its pages into the list once: no write-ahead
// log holds them until the commit. It is refused while anything else has
// the list open, and leaves the list in WAL for the readers to come.
func TestOfflineImport(t *testing.T) {
	ctx := context.Background()
	path, other := testlist.New(t)
	w := openWriter(t, path)

	start := time.Now()
	if _, err := w.Offline(ctx); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("Offline with another connection open: %v, want ErrInUse", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("the refusal took %v: it waited on the busy timeout", el)
	}
	other.Close()
	if m := journalMode(t, path); m != "wal" {
		t.Fatalf("after the refusal the list is in %s", m)
	}

	restore, err := w.Offline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	importN(t, w, verdict.TableDomain, "off%d.example", 50000)
	if n := walSize(path); n != 0 {
		t.Errorf("the offline import left a %d-byte write-ahead log", n)
	}
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	if m := journalMode(t, path); m != "wal" {
		t.Errorf("after restore the list is in %s, want wal", m)
	}
	s := openFiltered(t, path, nil)
	if v := resolve(t, s, "www.off49999.example"); v.Action != verdict.Block {
		t.Errorf("a name of the offline import: %v", v.Action)
	}

	// The same import in WAL, the default, keeps its pages in the log:
	// what --offline saves.
	path2, other2 := testlist.New(t)
	other2.Close()
	importN(t, openWriter(t, path2), verdict.TableDomain, "off%d.example", 50000)
	fi, err := os.Stat(path2)
	if err != nil {
		t.Fatal(err)
	}
	if n := walSize(path2); n < fi.Size()/2 {
		t.Errorf("the import in WAL left a %d-byte log beside a %d-byte list; the test no longer shows what offline saves", n, fi.Size())
	}
}
