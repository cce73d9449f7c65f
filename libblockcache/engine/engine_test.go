package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/engine"
	"github.com/libblockcache/libblockcache/libblockcache/lrutier"
	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

func setup(t *testing.T) (*engine.Engine, *lrutier.Tier, *store.Store, func(...string)) {
	t.Helper()
	path, db := testlist.New(t, testlist.Fixture...)
	st, err := store.Open(context.Background(), store.Options{Path: path, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := lrutier.New(1000)
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(st, l), l, st, func(s ...string) { testlist.Exec(t, db, s...) }
}

func TestTiersAndNegativeCaching(t *testing.T) {
	e, l, st, _ := setup(t)
	ctx := context.Background()
	for _, n := range []string{"A.B.Tracker.NET.", "unlisted.example"} {
		r1, err := e.Lookup(ctx, n)
		if err != nil || r1.Tier != verdict.TierSQLite {
			t.Fatalf("first %s: %+v %v", n, r1, err)
		}
		r2, err := e.Lookup(ctx, n)
		want := r1.Verdict
		want.Rule = "" // caches keep the decision, not the matching rule
		if err != nil || r2.Tier != verdict.TierLRU || r2.Verdict != want {
			t.Fatalf("second %s: %+v %v (first %+v)", n, r2, err, r1)
		}
	}
	if r, _ := e.Lookup(ctx, "a.b.tracker.net"); r.Tier != verdict.TierLRU || r.Verdict.Action != verdict.Block {
		t.Fatalf("case/trailing dot variant not served from the same entry: %+v", r)
	}
	if got := st.Stats().Lookups; got != 2 {
		t.Fatalf("SQLite asked %d times, want 2", got)
	}
	if l.Len() != 2 {
		t.Fatalf("LRU holds %d, want 2", l.Len())
	}
}

func TestListChangeInvalidatesCache(t *testing.T) {
	e, _, _, exec := setup(t)
	ctx := context.Background()
	if r, _ := e.Lookup(ctx, "soon.example"); r.Verdict.Action != verdict.Pass {
		t.Fatal(r)
	}
	if r, _ := e.Lookup(ctx, "soon.example"); r.Tier != verdict.TierLRU {
		t.Fatal("not cached", r)
	}
	exec(`INSERT INTO domain VALUES ('soon.example', NULL, NULL)`)
	deadline := time.Now().Add(2 * time.Second)
	for {
		r, _ := e.Lookup(ctx, "soon.example")
		if r.Verdict.Action == verdict.Block {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stale negative verdict served for 2 s after the list changed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInvalidNames(t *testing.T) {
	e, _, _, _ := setup(t)
	for _, n := range []string{"a..b", ".a", strings.Repeat("x", 300), strings.Repeat("abc.", 70), "bad\x01escape.com", "nul\x00.com", "a.\x01"} {
		r, err := e.Lookup(context.Background(), n)
		if !errors.Is(err, engine.ErrInvalidName) || r.Verdict.Action != verdict.Pass {
			t.Errorf("Lookup(%.20q) = %+v, %v", n, r, err)
		}
	}
	if got := e.Stats().Invalid; got != 7 {
		t.Errorf("invalid counted %d, want 7", got)
	}
	// The root is a name (". NS" is a real query) that no rule can list.
	for _, n := range []string{"", "."} {
		if r, err := e.Lookup(context.Background(), n); err != nil || r.Verdict.Action != verdict.Pass {
			t.Errorf("Lookup(%q) = %+v, %v; want Pass", n, r, err)
		}
	}
	if got := e.Stats().Invalid; got != 7 {
		t.Errorf("the root counted as invalid: %d", got)
	}
}

// A label with bytes host names do not use is still a label: a query for
// a subdomain of a listed domain is blocked whatever its first label holds,
// or an odd label would be a way around the list.
func TestOddBytesAreLookedUp(t *testing.T) {
	e, _, _, _ := setup(t)
	ctx := context.Background()
	for _, n := range []string{"we!rd.tracker.net", "a b.tracker.net", "a\x01/b.tracker.net", "\xc3\xbc.Tracker.NET", "x\x01\x01y.tracker.net"} {
		for range 2 { // from SQLite, then from the LRU
			if r, err := e.Lookup(ctx, n); err != nil || r.Verdict.Action != verdict.Block {
				t.Errorf("Lookup(%q) = %+v, %v; want Block", n, r, err)
			}
		}
	}
	if r, err := e.Lookup(ctx, "tracker\x01/net"); err != nil || r.Verdict.Action != verdict.Pass {
		t.Errorf("one label with an escaped dot is not tracker.net: %+v, %v", r, err)
	}
	if got := e.Stats().Invalid; got != 0 {
		t.Errorf("%d counted invalid", got)
	}
}

func TestFlush(t *testing.T) {
	e, l, _, _ := setup(t)
	e.Lookup(context.Background(), "x.tracker.net")
	e.Flush()
	if l.Len() != 0 {
		t.Fatalf("LRU has %d after flush", l.Len())
	}
	if r, _ := e.Lookup(context.Background(), "x.tracker.net"); r.Tier != verdict.TierSQLite {
		t.Fatalf("after flush answered by %v", r.Tier)
	}
}

// A failing source answers Pass with an error, and nothing is cached.
func TestSourceErrorNotCached(t *testing.T) {
	e, l, st, _ := setup(t)
	st.Close()
	r, err := e.Lookup(context.Background(), "x.tracker.net")
	if err == nil || r.Verdict.Action != verdict.Pass {
		t.Fatalf("closed store: %+v %v", r, err)
	}
	if l.Len() != 0 {
		t.Fatal("failed verdict was cached")
	}
}
