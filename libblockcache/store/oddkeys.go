package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/libblockcache/libblockcache/libblockcache/name"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// oddKeys counts the listed names that no query can match, found while
// every key is read for the filter (the only full read of the list a
// reader makes). A list written by another tool may hold "Ads.Example",
// "ads.example." or "*.ads.example"; lookups ask for "ads.example", so
// such a row silently blocks nothing. The operator hears of it instead.
type oddKeys struct {
	n        int64
	examples []string // at most maxOddExamples, `table "key" (why)`
}

const maxOddExamples = 3

// keyClass sorts bytes for chunk's scan: plain (0), a separator between
// labels or keys (1), or a byte that makes a key worth a closer look (2):
// upper case, non-ASCII, '*' and dnsmasq's escape.
var keyClass = func() (t [256]uint8) {
	t['.'], t[0] = 1, 1
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = 2
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] = 2
	}
	t['*'], t[name.Escape] = 2, 2
	return t
}()

// chunk checks keys, NUL-separated as addTable reads them, of table tbl.
// It is on the path of every key of a filter build: one pass over the
// bytes, a table load and a compare for most of them, finds nothing in a
// list of plain lower-case names (~25 ns a key, BenchmarkOddKeysChunk;
// 5% of a build from every row, bench/RESULTS.md). Only a chunk where it
// finds something is checked key by key.
func (o *oddKeys) chunk(tbl string, keys []byte) {
	sep, start := -1, 0 // the last separator; the current key's first byte
	for i := 0; i < len(keys); i++ {
		switch keyClass[keys[i]] {
		case 0:
			continue
		case 2:
			o.slow(tbl, keys)
			return
		}
		// An empty label (a leading, doubled or trailing dot, an empty
		// key) or a long one, or a long key.
		if n := i - sep - 1; n == 0 || n > name.MaxLabel || keys[i] == 0 && i-start > name.MaxLen {
			o.slow(tbl, keys)
			return
		}
		if keys[i] == 0 {
			start = i + 1
		}
		sep = i
	}
	if n := len(keys) - sep - 1; n == 0 || n > name.MaxLabel || len(keys)-start > name.MaxLen {
		o.slow(tbl, keys)
	}
}

func (o *oddKeys) slow(tbl string, keys []byte) {
	for _, k := range strings.Split(string(keys), "\x00") {
		if why := oddKey(tbl, k); why != "" {
			o.n++
			if len(o.examples) < maxOddExamples {
				o.examples = append(o.examples, fmt.Sprintf("%s %q (%s)", tbl, k, why))
			}
		}
	}
}

// oddKey says why no query can match key in tbl, or "" when one can.
func oddKey(tbl, key string) string {
	if _, wild := name.Unwild(key); wild && tbl != verdict.TableNames[verdict.TableExact] {
		return "a wildcard, where the table covers subdomains without one: `blockcachectl init` rewrites it"
	}
	q, err := name.Query(key)
	switch {
	case err != nil:
		return err.Error()
	case q != key:
		return "upper case or a trailing dot: `blockcachectl init` rewrites it"
	}
	for i := 0; i < len(key); i++ {
		if key[i] >= 0x80 {
			return "Unicode, where clients ask for its xn-- form: `blockcachectl init` rewrites it"
		}
	}
	return ""
}

// String is the log line's text; "" when every key can match.
func (o *oddKeys) String() string {
	if o == nil || o.n == 0 {
		return ""
	}
	if o.n == 1 {
		return "1 listed name that no query asks for: " + o.examples[0]
	}
	return fmt.Sprintf("%d listed names that no query asks for, e.g. %s", o.n, strings.Join(o.examples, ", "))
}

// oddSample is how many names of each table sampleOdd checks.
const oddSample = 4096

// sampleOdd checks the first names of each table of a list without the
// meta table. Such a list gets no filter, so no full read, and it comes
// from another tool, which writes every name in its own form (a trailing
// dot, upper case): its first names show it.
func (s *Store) sampleOdd(ctx context.Context, db querier, tables [verdict.TableRegex + 1]bool) {
	var odd oddKeys
	for _, t := range ruleKeyTables {
		if !tables[t] {
			continue
		}
		rows, err := db.QueryContext(ctx, "SELECT Domain FROM "+verdict.TableNames[t]+" LIMIT ?", oddSample)
		if err != nil {
			return // lookups of the table fail and are counted
		}
		var d sql.RawBytes
		for rows.Next() && rows.Scan(&d) == nil {
			odd.chunk(verdict.TableNames[t], d)
		}
		rows.Close()
	}
	s.oddSaid.Store(odd.n)
	if o := odd.String(); o != "" {
		s.opts.Logf("blockcache: %s holds %s (among the first %d names of each table)", s.opts.Path, o, oddSample)
	}
}
