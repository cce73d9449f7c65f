package lrutier

import (
	"context"
	"fmt"
	"math/rand"
	"runtime"
	"strings"
	"testing"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/libblockcache/libblockcache/libblockcache/engine"
	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

const benchN = 1 << 20

func benchNames() []string {
	names := make([]string, benchN)
	for i := range names {
		names[i] = fmt.Sprintf("u%d.site%d.cdn%d.example", i%100000, i%1000, i)
	}
	return names
}

func sequence(names []string, zipf bool) []string {
	r := rand.New(rand.NewSource(1))
	z := rand.NewZipf(r, 1.0001, 1, benchN-1)
	seq := make([]string, 1<<20)
	for i := range seq {
		if zipf {
			seq[i] = names[z.Uint64()]
		} else {
			seq[i] = names[r.Intn(benchN)]
		}
	}
	return seq
}

// BenchmarkBareLRU is the floor: golang-lru Get of a small value, and
// Peek, which does not move the entry to the front (what Tier.Get does for
// most hits).
func BenchmarkBareLRU(b *testing.B) {
	for _, op := range []string{"get", "peek"} {
		for _, zipf := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/zipf=%v", op, zipf), func(b *testing.B) {
				c, _ := lru.New[string, uint64](benchN)
				names := benchNames()
				for i, n := range names {
					c.Add(n, uint64(i))
				}
				seq := sequence(names, zipf)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if op == "get" {
						c.Get(seq[i&(len(seq)-1)])
					} else {
						c.Peek(seq[i&(len(seq)-1)])
					}
				}
			})
		}
	}
}

// BenchmarkTierGet is the LRU tier's Get of a verdict with its version.
func BenchmarkTierGet(b *testing.B) {
	for _, zipf := range []bool{true, false} {
		b.Run(fmt.Sprintf("zipf=%v", zipf), func(b *testing.B) {
			t, _ := New(benchN)
			ns := store.Namespace{ListID: "0123456789abcdef", Version: 7}
			names := benchNames()
			for _, n := range names {
				t.Put(engine.Key{NS: ns, Name: n}, verdict.Verdict{})
			}
			seq := sequence(names, zipf)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t.Get(ctx, engine.Key{NS: ns, Name: seq[i&(len(seq)-1)]})
			}
		})
	}
}

// BenchmarkMemoryPerEntry reports the Go heap held per cached verdict with
// 1M entries (names of ~30 bytes, as in bench/harness.c).
func BenchmarkMemoryPerEntry(b *testing.B) {
	names := benchNames()
	ns := store.Namespace{ListID: "0123456789abcdef", Version: 7}
	var before, after runtime.MemStats
	for i := 0; i < b.N; i++ {
		runtime.GC()
		runtime.ReadMemStats(&before)
		t, _ := New(benchN)
		for _, n := range names {
			t.Put(engine.Key{NS: ns, Name: strings.Clone(n)}, verdict.Verdict{Action: verdict.Block, Table: verdict.TableDomain})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/benchN, "bytes/entry")
		runtime.KeepAlive(t)
	}
}

// BenchmarkTierGetWorkingSet is Get in steady state: a full cache of 1M
// entries of which a working set (a quarter) is asked in random order,
// after two passes over it. This is what a busy resolver's cache looks
// like; BenchmarkTierGet instead times the first pass after a fill.
func BenchmarkTierGetWorkingSet(b *testing.B) {
	t, _ := New(benchN)
	ns := store.Namespace{ListID: "0123456789abcdef", Version: 7}
	names := benchNames()
	for _, n := range names {
		t.Put(engine.Key{NS: ns, Name: n}, verdict.Verdict{})
	}
	r := rand.New(rand.NewSource(1))
	work := names[:benchN/4]
	seq := make([]string, 1<<20)
	for i := range seq {
		seq[i] = work[r.Intn(len(work))]
	}
	ctx := context.Background()
	for range 2 {
		for _, n := range work {
			t.Get(ctx, engine.Key{NS: ns, Name: n})
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t.Get(ctx, engine.Key{NS: ns, Name: seq[i&(len(seq)-1)]})
	}
}
