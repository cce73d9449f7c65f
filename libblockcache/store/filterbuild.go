package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// buildChunk is how many keys one statement of addTable returns.
const buildChunk = 16384

// addTable adds every key of tbl to f. Keys come in chunks, each one row
// holding them NUL-separated: one call through cgo and database/sql per
// chunk instead of per key. (A key holding a NUL byte is split wrongly, but
// no query name can match it: dnsmasq escapes a NUL in a label.) It
// returns the keys added, or -1 when current says the build was overtaken.
// It stops with an error rather than read more than count keys, the
// table's rows in tx: keys that compare out of key order would loop.
func addTable(ctx context.Context, tx reader, tbl string, count int64, f *filter, odd *oddKeys, current func() bool) (int, error) {
	q := `SELECT group_concat(Domain, char(0)), max(Domain), count(*) FROM (SELECT Domain FROM ` + tbl + ` WHERE Domain > ? ORDER BY Domain LIMIT ` + fmt.Sprint(buildChunk) + `)`
	if ok, err := indexed(ctx, tx, q); err != nil || !ok {
		if err != nil {
			return 0, err
		}
		return addRows(ctx, tx, tbl, f, odd, current)
	}
	stmt, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	added := 0
	var last any = ""
	for {
		var blob []byte
		var maxKey any // bound back as it came: a BLOB key sorts after every TEXT one
		var n int
		if err := stmt.QueryRowContext(ctx, last).Scan(&blob, &maxKey, &n); err != nil {
			return added, err
		}
		if n > 0 {
			odd.chunk(tbl, blob)
		}
		for rest := blob; n > 0; {
			i := bytes.IndexByte(rest, 0)
			if i < 0 {
				f.add(string(rest))
				break
			}
			f.add(string(rest[:i]))
			rest = rest[i+1:]
		}
		added += n
		if n < buildChunk {
			return added, nil
		}
		if !current() {
			return -1, nil
		}
		if int64(added) > count {
			return added, fmt.Errorf("%s: read %d keys of %d: they do not advance in key order past %q", tbl, added, count, maxKey)
		}
		last = maxKey
	}
}

// indexed reports whether q reads its table in key order from an index.
// A table made by another tool without a key on Domain would be sorted
// again for every chunk.
func indexed(ctx context.Context, tx reader, q string) (bool, error) {
	rows, err := tx.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, "")
	if err != nil {
		return false, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return false, err
	}
	vals := make([]any, len(cols))
	for i := range vals {
		vals[i] = new(sql.RawBytes)
	}
	for rows.Next() {
		if err := rows.Scan(vals...); err != nil {
			return false, err
		}
		if detail := string(*vals[len(vals)-1].(*sql.RawBytes)); strings.Contains(detail, "TEMP B-TREE") {
			return false, nil
		}
	}
	return true, rows.Err()
}

// addRows is addTable one row at a time, for a table without a key.
func addRows(ctx context.Context, tx reader, tbl string, f *filter, odd *oddKeys, current func() bool) (int, error) {
	rows, err := tx.QueryContext(ctx, "SELECT Domain FROM "+tbl)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	added := 0
	var d sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&d); err != nil {
			return added, err
		}
		odd.chunk(tbl, d)
		f.add(string(d))
		if added++; added%buildChunk == 0 && !current() {
			return -1, nil
		}
	}
	return added, rows.Err()
}

// startBuild starts a filter build for snap's line of versions; the caller
// holds refreshMu.
func (s *Store) startBuild(snap *snapshot) {
	s.building = snap.filterGen
	s.builds.Add(1)
	go func() {
		defer s.builds.Done()
		s.buildFilter(snap)
	}()
}

// attach gives the current snapshot a finished build, once the list has
// reached the build's version: the names changed in between are added
// first. The caller holds refreshMu.
func (s *Store) attach(ctx context.Context) {
	b, cur := s.built, s.snap.Load()
	if b == nil || b.version > cur.ns.Version && b.gen == cur.filterGen {
		return // none, or the next refresh will reach its version
	}
	s.built = nil
	if b.gen != cur.filterGen {
		return
	}
	keys, ok, _, err := readDelta(ctx, cur.q.db, b.version, cur.ns.Version)
	if err != nil || !ok {
		if err != nil {
			s.opts.Logf("blockcache: building the filter of listed names: %v (lookups use SQL)", err)
		}
		s.startBuild(cur) // the gap is no longer in the log
		return
	}
	for _, k := range keys {
		b.f.addShared(k)
	}
	cur.filter.Store(b.f)
	s.filterBuilds.Add(1)
	if b.saved {
		s.filterLoads.Add(1)
	}
}

// buildFilter builds a membership filter for snap's line of versions in
// the background; lookups use SQL (or the line's older, worn filter) until
// it is ready. It reads every rule in one transaction and notes the
// version it read, and attach adds the changes made since. A build
// overtaken by a change that was not logged stops.
func (s *Store) buildFilter(snap *snapshot) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	current := func() bool { return s.snap.Load().filterGen == snap.filterGen }
	var built *builtFilter
	err := func() error {
		tx, err := beginRead(ctx, snap.q.db)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		v, err := listVersion(ctx, tx)
		if err != nil {
			return err
		}
		if v < snap.ns.Version {
			return fmt.Errorf("list version went back from %d to %d", snap.ns.Version, v)
		}
		start := time.Now()
		f := s.useSaved(ctx, tx, v)
		saved := f != nil
		if !saved {
			var tables []verdict.Table
			for _, t := range ruleKeyTables {
				if snap.tables[t] {
					tables = append(tables, t)
				}
			}
			var odd oddKeys
			if f, err = readFilter(ctx, tx, tables, &odd, current); f == nil || err != nil {
				return err // nil, nil: overtaken
			}
			if prev := s.oddSaid.Swap(odd.n); odd.n > 0 && prev != odd.n {
				s.opts.Logf("blockcache: %s holds %s", s.opts.Path, odd.String())
			}
			if d := time.Since(start); d > 10*time.Second {
				s.opts.Logf("blockcache: the filter of %d listed names took %v to build from every row; `blockcachectl filter` saves it in the list, so that the next start loads it", f.capacity, d.Round(time.Second))
			}
		}
		built = &builtFilter{f: f, version: v, gen: snap.filterGen, saved: saved}
		return nil
	}()
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	if s.building == snap.filterGen {
		s.building = 0
	}
	select {
	case <-s.stop:
		return
	default:
	}
	if err != nil && current() {
		s.opts.Logf("blockcache: building the filter of listed names: %v (lookups use SQL)", err)
	}
	if built != nil && current() {
		s.built = built
		actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.attach(actx)
	}
}

// useSaved returns the filter saved in the list, brought up to version v
// (the version of tx) with the names the change log shows were changed
// since, or nil when there is none, it cannot be read, or the log does not
// cover the versions since it was saved. Each reason but the first is
// logged, once per saved version: the build that follows reads every row.
func (s *Store) useSaved(ctx context.Context, tx reader, v uint64) *filter {
	start := time.Now()
	sh, err := savedHeader(ctx, tx)
	if sh == nil && err == nil {
		return nil
	}
	var f *filter
	changed := 0
	why := ""
	if err != nil {
		sh, why = &savedShape{}, err.Error()
	} else {
		f, changed, why = loadCaughtUp(ctx, tx, sh, v)
	}
	if why != "" {
		if ctx.Err() != nil {
			return nil // the store is closing: the filter is fine, this build is not wanted
		}
		if s.savedWarned.Swap(sh.version+1) == sh.version+1 {
			return nil // said at an earlier build
		}
		s.opts.Logf("blockcache: the filter saved in the list is not used (%s); building one from every row, lookups use SQL until it is ready; `blockcachectl filter` saves it again", why)
		return nil
	}
	took := time.Since(start).Round(time.Millisecond)
	if took == 0 { // a small list: "0s" would read as not timed
		took = time.Since(start).Round(time.Microsecond)
	}
	s.opts.Logf("blockcache: loaded the filter saved in the list at version %d (%d names, %d KiB) and %d names changed since, in %v", sh.version, f.capacity, f.bytes()>>10, changed, took)
	n, report, err := savedOdd(ctx, tx)
	if err != nil {
		s.opts.Logf("blockcache: %v", err)
	}
	if prev := s.oddSaid.Swap(n); n > 0 && prev != n {
		s.opts.Logf("blockcache: %s holds %s (found when the filter was saved)", s.opts.Path, report)
	}
	return f
}
