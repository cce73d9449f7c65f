package store

import (
	"fmt"
	"testing"
)

func TestFilter(t *testing.T) {
	const n = 100000
	f := newFilter(n)
	for i := 0; i < n; i++ {
		f.add(fmt.Sprintf("d%d.example", i))
	}
	for i := 0; i < n; i++ {
		if !f.mayContain(fmt.Sprintf("d%d.example", i)) {
			t.Fatalf("false negative for d%d.example", i)
		}
	}
	fp := 0
	for i := 0; i < n; i++ {
		if f.mayContain(fmt.Sprintf("u%d.other", i)) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.02 {
		t.Fatalf("false positive rate %.3f", rate)
	}
	t.Logf("false positives %.3f%%, %d bytes for %d keys", 100*float64(fp)/n, f.bytes(), n)
}

// BenchmarkFilterAnySuffix is the filter's share of a lookup that misses
// the LRU: every suffix of a four-label unlisted name is checked.
func BenchmarkFilterAnySuffix(b *testing.B) {
	const n = 1 << 20
	f := newFilter(n)
	for i := 0; i < n; i++ {
		f.add(fmt.Sprintf("d%d.example", i))
	}
	names := make([]string, 4096)
	for i := range names {
		names[i] = fmt.Sprintf("u%d.site%d.cdn%d.example", i, i%100, i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.anySuffix(names[i%len(names)])
	}
}
