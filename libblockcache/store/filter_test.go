package store

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func TestFilter(t *testing.T) {
	const n = 100000
	f := mustFilter(t, n)
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
	f := mustFilter(b, n)
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
// filterFormat; this test pins them. (Format 2 changed only the header:
// formats 1 and 2 set the same bits, so this release reads both.)
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
	if s := fmt.Sprint(got); s != want || filterFormat != 2 {
		t.Errorf("format %d sets %s, want %s: bump filterFormat (and update this test) when the layout changes", filterFormat, s, want)
	}
}

// BenchmarkFilterLarge checks names against a filter too large for the
// CPU's caches (64M listed names, 96 MiB), with names that do not repeat
// within the caches either: as at a billion names, each probe is a cache
// miss and a TLB miss. BenchmarkFilterAnySuffix is the same check with
// everything cached.
func BenchmarkFilterLarge(b *testing.B) {
	const n = 1 << 26
	names := make([]string, 1<<20)
	for i := range names {
		names[i] = fmt.Sprintf("u%d.site%d.cdn%d.example", i, i%100, i)
	}
	f := mustFilter(b, n)
	for i := 0; i < n; i++ {
		f.add("d" + strconv.Itoa(i) + ".example")
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.anySuffix(names[i%len(names)])
	}
}

// A filter's blocks live outside Go's heap (mapBlocks): they must be
// unmapped once the filter is dropped, or every rebuild would leak one.
//
// The check is for a mapping with the VmFlags "dd" that MADV_DONTDUMP
// gives the blocks, covering all of them. Once they are unmapped the
// kernel may hand the same addresses to the next mapping (a new thread's
// stack, say), which a check of the address alone took for a leak when
// the machine was busy. Nor can the check ask for the blocks' exact range:
// the kernel merges them with a neighbouring "dd" mapping, the blocks of
// another filter not yet collected (3 runs of 4 failed that way with
// -count=4). Only filters map "dd" memory, and none is made while the
// test waits.
func TestFilterMemoryIsReturned(t *testing.T) {
	// mapping returns the range and the VmFlags of the mapping that holds addr.
	mapping := func(addr uintptr) (lo, hi uintptr, flags string) {
		smaps, err := os.ReadFile("/proc/self/smaps")
		if err != nil {
			t.Skip(err)
		}
		found := false
		for _, l := range strings.Split(string(smaps), "\n") {
			var a, b uintptr
			if _, err := fmt.Sscanf(l, "%x-%x ", &a, &b); err == nil && strings.Count(strings.Fields(l)[0], "-") == 1 {
				found = a <= addr && addr < b
				if found {
					lo, hi = a, b
				}
			} else if v, ok := strings.CutPrefix(l, "VmFlags:"); ok && found {
				return lo, hi, " " + strings.TrimSpace(v) + " "
			}
		}
		return 0, 0, ""
	}
	f := mustFilter(t, 1<<20)
	f.add("kept.example")
	addr := uintptr(unsafe.Pointer(&f.blocks[0]))
	size := uintptr(len(f.blocks)) * 64
	// held reports whether one mapping left out of core dumps covers the blocks.
	held := func() bool {
		lo, hi, flags := mapping(addr)
		return lo <= addr && addr+size <= hi && strings.Contains(flags, " dd ")
	}
	if !held() || !f.mayContain("kept.example") {
		lo, hi, flags := mapping(addr)
		t.Fatalf("the filter's %d bytes of blocks at %#x are not in a mapping left out of core dumps: %#x-%#x flags%s", size, addr, lo, hi, flags)
	}
	f = nil
	for i := 0; i < 500 && held(); i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if held() {
		t.Fatal("a dropped filter's blocks are still mapped")
	}
}

func mustFilter(tb testing.TB, n int64) *filter {
	tb.Helper()
	f, err := newFilter(n)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// A filter the kernel will not map (here 1 PiB) is an error for the build
// to report, not the end of dnsmasq.
func TestFilterTooLargeToMap(t *testing.T) {
	if f, err := makeFilter(1, 1, 1<<44); err == nil || f != nil || !strings.Contains(err.Error(), "map 1073741824 MiB for the filter") {
		t.Fatalf("a 1 PiB filter: %v, %v", f, err)
	}
}
