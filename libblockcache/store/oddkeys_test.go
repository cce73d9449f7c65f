package store

import (
	"fmt"
	"strings"
	"testing"
)

func TestOddKey(t *testing.T) {
	for _, c := range []struct{ tbl, key, why string }{
		{"domain", "ads.example", ""},
		{"domain", "_dmarc.x-y.example", ""},
		{"domain_exact", "*.literal.example", ""}, // a literal wildcard owner is a name
		{"domain", "we!rd.example", ""},           // odd octets come in queries too
		{"domain", "Ads.Example", "upper case"},
		{"domain", "ads.example.", "trailing dot"},
		{"domain", "*.ads.example", "a wildcard"},
		{"domain_dns_allow", "*.ads.example", "a wildcard"},
		{"domain", ".ads.example", "a wildcard"},
		{"domain_exact", ".ads.example", "empty or over-long label"},
		{"domain", "bücher.example", "Unicode"},
		{"domain", "a..example", "empty or over-long label"},
		{"domain", "", "empty name"},
		{"domain", strings.Repeat("a", 64) + ".example", "empty or over-long label"},
	} {
		got := oddKey(c.tbl, c.key)
		if c.why == "" && got != "" || c.why != "" && !strings.Contains(got, c.why) {
			t.Errorf("oddKey(%s, %q) = %q, want %q", c.tbl, c.key, got, c.why)
		}
	}
}

// The one-pass scan of a chunk must send every odd key to the key-by-key
// check, wherever it sits in the chunk, and count nothing in a plain one.
func TestOddKeysChunk(t *testing.T) {
	plain := []string{"a.example", "b-c.example", "_srv._tcp.example", "x1.y2.example"}
	for _, odd := range []string{"Ads.example", "ads.example.", "*.ads.example", "bücher.example", "a..b", ".lead.example", "",
		strings.Repeat("a", 64) + ".example", strings.Repeat("a.", 127) + "aa", "x.\x01!", "\x80", "Z"} {
		for pos := 0; pos <= len(plain); pos++ {
			keys := append(append(append([]string{}, plain[:pos]...), odd), plain[pos:]...)
			var o oddKeys
			o.chunk("domain", []byte(strings.Join(keys, "\x00")))
			if o.n != 1 || !strings.Contains(o.String(), fmt.Sprintf("%q", odd)) {
				t.Errorf("%q at %d: %d odd, %q", odd, pos, o.n, o.String())
			}
		}
	}
	var o oddKeys
	o.chunk("domain", []byte(strings.Join(plain, "\x00")))
	if o.n != 0 || o.String() != "" {
		t.Errorf("plain chunk: %d odd, %q", o.n, o.String())
	}
}

// BenchmarkOddKeysChunk: the check's cost per key of a plain chunk, against
// the ~1 µs per key that reading a list for its filter costs (a billion
// names in 16.8 minutes, bench/RESULTS.md).
func BenchmarkOddKeysChunk(b *testing.B) {
	keys := make([]string, buildChunk)
	for i := range keys {
		keys[i] = fmt.Sprintf("d%d.bench.example", i*7919)
	}
	chunk := []byte(strings.Join(keys, "\x00"))
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var o oddKeys
		o.chunk("domain", chunk)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*buildChunk), "ns/key")
}
