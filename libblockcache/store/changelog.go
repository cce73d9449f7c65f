package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
)

// querier is a *sql.DB, *sql.Conn or *sql.Tx: the change log is read in
// a snapshot's own read transaction, or outside one.
type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// maxChanged bounds snapshot.changed, which is copied at every change:
// past it, only verdicts of the previous version can be kept.
const maxChanged = 16384

// carry makes next, reached from cur by the logged change delta, share
// cur's filter (grown by delta's names before next is published, so no
// lookup of next can miss one) and, unless the regex rules changed too
// (load then read next's record from the log), the record of what changed.
func (s *Store) carry(cur, next *snapshot, delta []string, regex bool) {
	s.deltas.Add(1)
	next.filterGen = cur.filterGen
	if fl := cur.filter.Load(); fl != nil {
		for _, k := range delta {
			fl.addShared(k) // removed names too: a false positive at worst
		}
		next.filter.Store(fl)
	}
	if regex {
		return
	}
	changed := make(map[string]uint64, len(cur.changed)+len(delta))
	for k, v := range cur.changed {
		changed[k] = v
	}
	next.validFrom = cur.validFrom
	if len(changed)+len(delta) > maxChanged {
		clear(changed)
		next.validFrom = cur.ns.Version
	}
	for _, k := range delta {
		changed[k] = next.ns.Version
	}
	if len(changed) > maxChanged {
		next.validFrom, changed = next.ns.Version, nil
	}
	// The same few names changed over and over keep changed small but
	// not the run of stamps: it is bounded by as many versions.
	if next.ns.Version-next.validFrom > maxChanged {
		next.validFrom = next.ns.Version - maxChanged
	}
	next.changed = changed
	next.stamps = cur.stamps.join(next.validFrom, next.stamps)
}

// StillValid reports whether a verdict cached for name n under version old
// is also version cur's, cur being the version lookups are answered from:
// true when old is a version of cur's own history (its stamp), every
// change since old is logged and none touched a row of n or of a parent
// of n (the only rows n's verdict is computed from; a regex change counts
// as touching everything). The LRU and Valkey tiers ask it
// about verdicts of older versions, so that listing one name does not send
// every cached name back to SQLite, on this node or across the fleet.
func (s *Store) StillValid(old, cur Namespace, n string) bool {
	snap := s.snap.Load()
	if snap.ns != cur || old.ListID != cur.ListID || old.Version < snap.validFrom || old.Version >= cur.Version || old.Stamp != snap.stamps.of(old.Version) {
		return false
	}
	if v, ok := snap.changed[n]; ok && v > old.Version {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] == '.' {
			if v, ok := snap.changed[n[i+1:]]; ok && v > old.Version {
				return false
			}
		}
	}
	return true
}

// readDelta returns the keys changed in the versions after from up to to;
// ok, whether every one of those versions logged its change (a version
// bumped without a log row, or trimmed from the log, could have changed
// anything); and regex, whether one of them changed domain_regex (which
// can change any name's verdict, but no key of the membership filter).
func readDelta(ctx context.Context, q querier, from, to uint64) (keys []string, ok, regex bool, err error) {
	if to < from || to-from > ChangesKept {
		return nil, false, false, nil
	}
	if to == from { // nothing to read, and the table may not exist
		return []string{}, true, false, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT Version, Domain FROM `+ChangesTable+` WHERE Version > ? AND Version <= ?`, int64(from), int64(to))
	if err != nil {
		return nil, false, false, fmt.Errorf("read %s: %w", ChangesTable, err)
	}
	defer rows.Close()
	keys = []string{}
	var versions, last int64
	for rows.Next() {
		var v int64
		var k string
		if err := rows.Scan(&v, &k); err != nil {
			return nil, false, false, fmt.Errorf("read %s: %w", ChangesTable, err)
		}
		if v != last { // rows come in primary key order, by version
			versions, last = versions+1, v
		}
		if k == "" {
			regex = true
			continue
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, false, false, fmt.Errorf("read %s: %w", ChangesTable, err)
	}
	return keys, uint64(versions) == to-from, regex, nil
}

// readHistory returns the keys changed in the longest run of logged
// versions that ends at version to (without a regex change, and within
// maxChanged keys), and the version that run starts after. A verdict
// cached at that version or later, by this process before the list file
// was replaced or by another node of the fleet (Valkey), is still to's
// unless its name or a parent is among the keys, so a process that just
// opened the list can use the fleet's verdicts of the last versions.
func readHistory(ctx context.Context, q querier, to uint64) (changed map[string]uint64, from uint64, err error) {
	const limit = maxChanged + 1
	rows, err := q.QueryContext(ctx, `SELECT Version, Domain FROM `+ChangesTable+` WHERE Version <= ? ORDER BY Version DESC LIMIT ?`, int64(to), limit)
	if err != nil {
		return nil, to, fmt.Errorf("read %s: %w", ChangesTable, err)
	}
	defer rows.Close()
	changed, from = map[string]uint64{}, to
	var group []string
	groupVersion, n := uint64(0), 0
	// take adds the version just read in full, if it continues the run.
	take := func() bool {
		if groupVersion != from || len(changed)+len(group) > maxChanged || slices.Contains(group, "") {
			return false
		}
		for _, k := range group {
			if _, ok := changed[k]; !ok { // versions come newest first
				changed[k] = groupVersion
			}
		}
		from--
		return true
	}
	for rows.Next() {
		var v int64
		var k string
		if err := rows.Scan(&v, &k); err != nil {
			return nil, to, fmt.Errorf("read %s: %w", ChangesTable, err)
		}
		n++
		if uint64(v) != groupVersion {
			if group != nil && !take() {
				return changed, from, nil
			}
			group, groupVersion = group[:0], uint64(v)
		}
		group = append(group, k)
	}
	if err := rows.Err(); err != nil {
		return nil, to, fmt.Errorf("read %s: %w", ChangesTable, err)
	}
	if group != nil && n < limit { // the last version was read in full
		take()
	}
	return changed, from, nil
}
