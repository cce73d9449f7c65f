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

// The bits a key sets are part of the format of a saved filter: a release
// that set other bits would read an older saved filter as missing listed
// names, and let them pass. A change to probe, add or the hash must bump
// filterFormat; this test pins them.
func TestFilterLayoutIsPinned(t *testing.T) {
	f := &filter{seed: 0x5eed, blocks: make([][8]uint64, 1000), capacity: 1}
	f.add("tracker.example")
	var got []string
	for i, b := range f.blocks {
		for w, word := range b {
			if word != 0 {
				got = append(got, fmt.Sprintf("%d/%d/%#x", i, w, word))
			}
		}
	}
	want := "[966/0/0x4000002000000000 966/1/0x2080000 966/2/0x8000000000000 966/3/0x100 966/4/0x100 966/7/0x200000000000]"
	if s := fmt.Sprint(got); s != want || filterFormat != 1 {
		t.Errorf("format %d sets %s, want %s: bump filterFormat (and update this test) when the layout changes", filterFormat, s, want)
	}
}
