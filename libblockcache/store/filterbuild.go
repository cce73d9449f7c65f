package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

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
		tx, err := snap.q.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		var v int64
		if err := tx.QueryRowContext(ctx, `SELECT Value FROM `+MetaTable+` WHERE Key = 'version'`).Scan(&v); err != nil {
			return err
		}
		if uint64(v) < snap.ns.Version {
			return fmt.Errorf("list version went back from %d to %d", snap.ns.Version, v)
		}
		var n int64
		tables := []string{}
		for _, t := range []verdict.Table{verdict.TableDNSAllow, verdict.TableDNSBlock, verdict.TableExact, verdict.TableDomain} {
			if !snap.tables[t] {
				continue
			}
			var c int64
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+verdict.TableNames[t]).Scan(&c); err != nil {
				return err
			}
			n += c
			tables = append(tables, verdict.TableNames[t])
		}
		f := newFilter(n)
		added := 0
		for _, tbl := range tables {
			rows, err := tx.QueryContext(ctx, "SELECT Domain FROM "+tbl)
			if err != nil {
				return err
			}
			var d sql.RawBytes
			for rows.Next() {
				if err := rows.Scan(&d); err != nil {
					rows.Close()
					return err
				}
				f.add(string(d))
				if added++; added&0xffff == 0 && !current() {
					rows.Close()
					return nil // overtaken
				}
			}
			if err := rows.Close(); err != nil {
				return err
			}
		}
		built = &builtFilter{f: f, version: uint64(v), gen: snap.filterGen}
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
