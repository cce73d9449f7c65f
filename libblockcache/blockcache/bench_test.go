package blockcache

import (
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/libblockcache/libblockcache/libblockcache/config"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
)

func benchCache(b *testing.B, lru int) *Cache {
	path, _ := testlist.New(b, testlist.Fixture...)
	return open(b, path, func(cfg *config.Config) { cfg.LRUSize = lru })
}

// BenchmarkLRUHitZipf: Zipf (s=1.01) over 1M cached names, as in the
// issue's target (median under 300 ns through the C ABI).
func BenchmarkLRUHitZipf(b *testing.B) {
	const n = 1 << 20
	c := benchCache(b, n)
	ctx := context.Background()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("u%d.site%d.example", i, i%997)
		c.Lookup(ctx, names[i])
	}
	z := rand.NewZipf(rand.New(rand.NewSource(1)), 1.01, 1, n-1)
	seq := make([]string, 1<<16)
	for i := range seq {
		seq[i] = names[z.Uint64()]
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Lookup(ctx, seq[i&(len(seq)-1)])
	}
}

// smallSet caches 1024 unlisted names, few enough to stay in the CPU's
// caches, and starts the benchmark's clock.
func smallSet(b *testing.B) (*Cache, []string) {
	c := benchCache(b, 1<<20)
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprintf("u%d.site%d.example", i, i%997)
		c.Lookup(context.Background(), names[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	return c, names
}

// BenchmarkLRUHitSmall: the fixed cost of an LRU hit.
func BenchmarkLRUHitSmall(b *testing.B) {
	c, names := smallSet(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		c.Lookup(ctx, names[i&1023])
	}
}

// BenchmarkCNAMEHit: one CNAME check of a reply whose question and target
// are both cached and not listed (most replies with a CNAME), against
// BenchmarkLRUHitSmall's single lookup.
func BenchmarkCNAMEHit(b *testing.B) {
	c, names := smallSet(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if _, blocked := c.CNAME(ctx, names[i&1023], names[(i+1)&1023]); blocked {
			b.Fatal("blocked")
		}
	}
}

// BenchmarkRevalidatedHit: the first lookup of a cached name after a logged
// list change that did not touch it (a few map probes, and the entry moves
// to the new version), against BenchmarkLRUHitSmall. Every 1024 lookups
// the list changes again, off the clock.
func BenchmarkRevalidatedHit(b *testing.B) {
	path, db := testlist.New(b, testlist.Fixture...)
	c := open(b, path, nil)
	ctx := context.Background()
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprintf("u%d.site%d.example", i, i%997)
		c.Lookup(ctx, names[i])
	}
	change := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i&1023 == 0 {
			b.StopTimer()
			change++
			testlist.Exec(b, db, fmt.Sprintf(`INSERT INTO domain VALUES ('feed%d.example', NULL, NULL)`, change))
			if err := c.Store.Refresh(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		c.Lookup(ctx, names[i&1023])
	}
	b.StopTimer()
	if s := c.Stats(); s.LRURevalidated != uint64(b.N) || s.Store.Deltas != uint64(change) {
		b.Fatalf("%d revalidated of %d lookups, %d deltas of %d changes", s.LRURevalidated, b.N, s.Store.Deltas, change)
	}
}
