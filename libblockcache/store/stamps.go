package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// stampRun holds the stamps (StampsTable) of the versions first,
// first+1, ...: 0 where a version has none.
type stampRun struct {
	first uint64
	s     []uint32
}

// of returns version v's stamp, 0 when v is outside the run.
func (r stampRun) of(v uint64) uint32 {
	if v < r.first || v-r.first >= uint64(len(r.s)) {
		return 0
	}
	return r.s[v-r.first]
}

// end is the version after the run's last.
func (r stampRun) end() uint64 { return r.first + uint64(len(r.s)) }

// join returns the stamps of versions from up to d's last: r's, then d's
// from d.first on (d starts at most one past r's last). It copies:
// snapshots share runs, and an older snapshot's run must not change under
// a lookup.
func (r stampRun) join(from uint64, d stampRun) stampRun {
	out := stampRun{first: from, s: make([]uint32, 0, d.end()-min(from, d.end()))}
	for v := from; v < d.end(); v++ {
		if v < d.first {
			out.s = append(out.s, r.of(v))
		} else {
			out.s = append(out.s, d.of(v))
		}
	}
	return out
}

// readStamp reads version v's stamp: 0 when it has none, or the list has
// no StampsTable (older than it, and opened read-only).
func readStamp(ctx context.Context, q reader, v uint64) (uint32, error) {
	if ok, err := hasTable(ctx, q, StampsTable); err != nil || !ok {
		return 0, err
	}
	var st int64
	err := q.QueryRowContext(ctx, `SELECT Stamp FROM `+StampsTable+` WHERE Version = ?`, int64(v)).Scan(&st)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read the stamp of version %d: %w", v, err)
	}
	return uint32(st), nil
}

// hasTable reports whether q's list has the table name, which a list made
// by an older release may lack.
func hasTable(ctx context.Context, q reader, name string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, name).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look for table %s: %w", name, err)
	}
	return n > 0, nil
}

// readStamps reads the stamps of versions from to to, both included.
func readStamps(ctx context.Context, q querier, from, to uint64) (stampRun, error) {
	r := stampRun{first: from}
	if to < from {
		return r, nil
	}
	r.s = make([]uint32, to-from+1)
	rows, err := q.QueryContext(ctx, `SELECT Version, Stamp FROM `+StampsTable+` WHERE Version >= ? AND Version <= ?`, int64(from), int64(to))
	if err != nil {
		return r, fmt.Errorf("read %s: %w", StampsTable, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v, st int64
		if err := rows.Scan(&v, &st); err != nil {
			return r, fmt.Errorf("read %s: %w", StampsTable, err)
		}
		r.s[uint64(v)-from] = uint32(st)
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("read %s: %w", StampsTable, err)
	}
	return r, nil
}
