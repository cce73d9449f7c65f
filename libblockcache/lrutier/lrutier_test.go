package lrutier

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/libblockcache/libblockcache/libblockcache/engine"
	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

var v1 = store.Namespace{ListID: "list", Version: 1}

func TestRoundTripKeepsTheDecisionNotTheRule(t *testing.T) {
	tier, err := New(16)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]verdict.Verdict{
		"pass.example":  {Action: verdict.Pass},
		"block.example": {Action: verdict.Block, Table: verdict.TableDomain, Rule: "block.example"},
		"ips.example": {Action: verdict.Block, Table: verdict.TableExact,
			IPv4: netip.MustParseAddr("192.0.2.7"), IPv6: netip.MustParseAddr("2001:db8::7"), Rule: "ips.example"},
		"fwd.example": {Action: verdict.Forward, Table: verdict.TableDNSBlock, Server: "192.0.2.53#5353", Rule: "example"},
	}
	for name, v := range cases {
		tier.Put(engine.Key{NS: v1, Name: name}, v)
	}
	for name, v := range cases {
		got, ok := tier.Get(context.Background(), engine.Key{NS: v1, Name: name})
		if !ok {
			t.Fatalf("%s: miss right after Put", name)
		}
		want := v
		want.Rule = ""
		if got != want {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	if s := tier.Stats(); s.Hits != uint64(len(cases)) || s.Misses != 0 || s.Tier != verdict.TierLRU {
		t.Errorf("stats %+v, want %d hits and no misses", s, len(cases))
	}
}

// A verdict of another list version must never answer: that is what keeps
// two list versions from mixing.
func TestOtherListVersionIsAMiss(t *testing.T) {
	tier, _ := New(16)
	tier.Put(engine.Key{NS: v1, Name: "a.example"}, verdict.Verdict{Action: verdict.Block, Table: verdict.TableDomain})
	for _, ns := range []store.Namespace{{ListID: "list", Version: 2}, {ListID: "other", Version: 1}} {
		if v, ok := tier.Get(context.Background(), engine.Key{NS: ns, Name: "a.example"}); ok {
			t.Errorf("namespace %v answered %+v from %v", ns, v, v1)
		}
	}
	s := tier.Stats()
	if s.Misses != 2 || s.Extra["stale"] != 2 || s.Hits != 0 {
		t.Errorf("stats %+v, want 2 stale misses", s)
	}
	// The new version's verdict replaces the old one in place.
	v2 := store.Namespace{ListID: "list", Version: 2}
	tier.Put(engine.Key{NS: v2, Name: "a.example"}, verdict.Verdict{Action: verdict.Pass})
	if v, ok := tier.Get(context.Background(), engine.Key{NS: v2, Name: "a.example"}); !ok || v.Action != verdict.Pass {
		t.Errorf("after the new version's Put: %+v %v", v, ok)
	}
	if tier.Len() != 1 {
		t.Errorf("Len %d, want 1", tier.Len())
	}
}

// An entry of an older version answers only when the source vouches for
// it, and then moves to the asked version: the source is not asked again.
func TestRevalidatedEntryMovesToTheNewVersion(t *testing.T) {
	tier, _ := New(16)
	v2 := store.Namespace{ListID: "list", Version: 2}
	var asked []string
	tier.Revalidate(func(old, cur store.Namespace, name string) bool {
		if old != v1 || cur != v2 {
			t.Errorf("asked about %v -> %v", old, cur)
		}
		asked = append(asked, name)
		return name == "kept.example"
	})
	block := verdict.Verdict{Action: verdict.Block, Table: verdict.TableDomain}
	tier.Put(engine.Key{NS: v1, Name: "kept.example"}, block)
	tier.Put(engine.Key{NS: v1, Name: "changed.example"}, block)
	for range 2 {
		if v, ok := tier.Get(context.Background(), engine.Key{NS: v2, Name: "kept.example"}); !ok || v.Action != verdict.Block {
			t.Fatalf("vouched-for entry: %+v %v", v, ok)
		}
		if v, ok := tier.Get(context.Background(), engine.Key{NS: v2, Name: "changed.example"}); ok {
			t.Fatalf("entry the source did not vouch for answered %+v", v)
		}
	}
	if want := []string{"kept.example", "changed.example", "changed.example"}; fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Errorf("asked %q, want %q", asked, want)
	}
	s := tier.Stats()
	if s.Hits != 2 || s.Misses != 2 || s.Extra["revalidated"] != 1 || s.Extra["stale"] != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestBoundedWithEvictionsCounted(t *testing.T) {
	tier, _ := New(100)
	for i := range 250 {
		tier.Put(engine.Key{NS: v1, Name: fmt.Sprintf("n%d.example", i)}, verdict.Verdict{})
	}
	if tier.Len() != 100 {
		t.Errorf("Len %d, want 100", tier.Len())
	}
	if e := tier.Stats().Extra["evictions"]; e != 150 {
		t.Errorf("%d evictions, want 150", e)
	}
	// least recently used first: the oldest are gone, the newest stay
	if _, ok := tier.Get(context.Background(), engine.Key{NS: v1, Name: "n0.example"}); ok {
		t.Error("the oldest entry survived")
	}
	if _, ok := tier.Get(context.Background(), engine.Key{NS: v1, Name: "n249.example"}); !ok {
		t.Error("the newest entry is gone")
	}
}

// A hit moves its entry to the front only once it may be in the back half
// (see Tier). What must hold: a name asked again before size/2 other names
// are inserted stays however many names pass through, and a name not asked
// is evicted after size insertions, as in a strict LRU.
func TestHitsKeepANameThatIsAskedOften(t *testing.T) {
	const size = 1000
	tier, _ := New(size)
	ctx := context.Background()
	hot := engine.Key{NS: v1, Name: "hot.example"}
	tier.Put(hot, verdict.Verdict{Action: verdict.Block, Table: verdict.TableDomain})
	for i := range 20 * size {
		if i%(size/2-1) == 0 {
			if _, ok := tier.Get(ctx, hot); !ok {
				t.Fatalf("the name asked every %d insertions was evicted after %d", size/2-1, i)
			}
		}
		tier.Put(engine.Key{NS: v1, Name: fmt.Sprintf("n%d.example", i)}, verdict.Verdict{})
	}
	// Asked every size/2-1 insertions, the name drifts past size/2 on
	// every second ask at most.
	p, hits := tier.Stats().Extra["promotions"], tier.Stats().Hits
	if p == 0 || p > (hits+1)/2 {
		t.Errorf("%d promotions for %d hits: want some, and at most one for every other hit", p, hits)
	}

	cold := engine.Key{NS: v1, Name: "cold.example"}
	tier.Put(cold, verdict.Verdict{})
	for i := range size - 1 {
		tier.Put(engine.Key{NS: v1, Name: fmt.Sprintf("m%d.example", i)}, verdict.Verdict{})
	}
	if !tier.c.Contains(cold.Name) {
		t.Fatal("a name was evicted before size insertions had passed it")
	}
	tier.Put(engine.Key{NS: v1, Name: "last.example"}, verdict.Verdict{})
	if tier.c.Contains(cold.Name) {
		t.Error("a name never asked outlived size insertions")
	}
}

func TestFlushEmpties(t *testing.T) {
	tier, _ := New(10)
	tier.Put(engine.Key{NS: v1, Name: "a.example"}, verdict.Verdict{Action: verdict.Block, Table: verdict.TableDomain})
	tier.Flush()
	if _, ok := tier.Get(context.Background(), engine.Key{NS: v1, Name: "a.example"}); ok || tier.Len() != 0 {
		t.Errorf("after Flush: hit %v, Len %d", ok, tier.Len())
	}
}

// A reload drops the whole cache; counted as evictions, it would look like
// a cache far too small to whoever sizes db-lru-size by their rate.
func TestFlushIsNotEviction(t *testing.T) {
	tier, _ := New(10)
	for i := range 12 {
		tier.Put(engine.Key{NS: v1, Name: fmt.Sprintf("n%d.example", i)}, verdict.Verdict{})
	}
	tier.Flush()
	tier.Put(engine.Key{NS: v1, Name: "after.example"}, verdict.Verdict{})
	x := tier.Stats().Extra
	if x["evictions"] != 2 || x["flushed"] != 10 || x["entries"] != 1 {
		t.Errorf("evictions %d flushed %d entries %d, want 2, 10 and 1", x["evictions"], x["flushed"], x["entries"])
	}
}

func TestSizeMustBePositive(t *testing.T) {
	for _, n := range []int{0, -1} {
		if _, err := New(n); err == nil {
			t.Errorf("New(%d) succeeded", n)
		}
	}
}

// A name comes from dnsmasq as a view of its query buffer, which the next
// query overwrites (engine.Lookup's contract: a tier copies a name before
// it keeps it). A hit that writes its entry back (a revalidation, a move
// to the front) while another thread has evicted the entry adds it anew:
// with the view as the key, the cache then held a key whose bytes changed
// under it, and later lookups of other names could find it and be given
// its verdict. The entry is removed here from inside stillValid, which
// runs between the hit's read and its write-back, as an eviction by
// dnsmasq's TCP thread would.
func TestWriteBackNeverKeepsTheCallersBytes(t *testing.T) {
	tier, err := New(16)
	if err != nil {
		t.Fatal(err)
	}
	v2 := store.Namespace{ListID: v1.ListID, Version: 2}
	tier.Put(engine.Key{NS: v1, Name: "www.one.example"}, verdict.Verdict{Action: verdict.Block, Table: verdict.TableDomain})
	tier.Revalidate(func(old, cur store.Namespace, name string) bool {
		tier.c.Remove(name)
		return true
	})
	buf := []byte("www.one.example")
	view := unsafe.String(&buf[0], len(buf))
	if v, ok := tier.Get(context.Background(), engine.Key{NS: v2, Name: view}); !ok || v.Action != verdict.Block {
		t.Fatalf("revalidated hit: %v %v", v, ok)
	}
	copy(buf, "www.two.example") // the next query
	if keys := tier.c.Keys(); len(keys) != 1 || keys[0] != "www.one.example" {
		t.Fatalf("the cache's keys became %q after the caller's buffer changed", keys)
	}
	if _, ok := tier.Get(context.Background(), engine.Key{NS: v2, Name: "www.two.example"}); ok {
		t.Fatal("www.two.example was given www.one.example's verdict")
	}
	if _, ok := tier.Get(context.Background(), engine.Key{NS: v2, Name: "www.one.example"}); !ok {
		t.Fatal("www.one.example is no longer found")
	}
}
