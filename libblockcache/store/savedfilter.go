package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// FilterTable holds a membership filter saved by Writer.SaveFilter. A
// process that opens the list loads it and adds the names the change log
// shows were changed since, instead of reading every row: at a billion
// names that is a read of ~1.5 GB against ~10 minutes of CPU per node and
// per restart, during which unlisted names would go to SQL.
const FilterTable = "blockcache_filter"

// Row 0 of FilterTable is a header; rows 1..n hold the blocks in order,
// filterPartBlocks to a row (1 MiB), little-endian. Format 2 added to the
// header how many names imports added since the build (format 1, read
// as none, had no such field); the blocks are laid out as in format 1.
//
// Row oddPart, when there, is the build's report of listed names no query
// can match ("N\nreport"). A process that loads the filter reads no name,
// so without it such names would be reported only where the filter was
// saved. Releases before it read rows 0 and up only, and their saves
// delete it along with the rest.
const (
	filterMagic      = "bcfilter"
	filterFormat     = 2
	filterHeaderLen  = 56
	filterPartBlocks = 16384
	oddPart          = -1
)

// SavedFilter describes the filter saved in a list.
type SavedFilter struct {
	Version  uint64 // the list version whose names it holds
	Capacity int64  // names it was sized for
	Bytes    int64
	// Unusable says why readers of the list's current version cannot use
	// it and build their own; "" when they load it.
	Unusable string
	// Odd tells of listed names that no query asks for, found while
	// SaveFilter read every key ("" when there are none).
	Odd string
	// Added is how many names imports added to it since it was built
	// (an import too large to log grows it instead of rebuilding it), and
	// Changed how many readers add to it from the change log. Past
	// Capacity/4 together, readers build their own instead.
	Added   int64
	Changed int
}

// ruleKeyTables are the tables whose keys the filter holds: every table
// with a key a name or its parents can be looked up by.
var ruleKeyTables = []verdict.Table{verdict.TableDNSAllow, verdict.TableDNSBlock, verdict.TableExact, verdict.TableDomain}

// reader is a *sql.Tx, or a *sql.Conn in a transaction: a filter is read
// inside one read transaction, the store's or the writer's. (A *sql.DB
// also serves, for a report that may mix versions.)
type reader interface {
	querier
	QueryRowContext(context.Context, string, ...any) *sql.Row
	PrepareContext(context.Context, string) (*sql.Stmt, error)
}

// listVersion reads the list version in q's transaction.
func listVersion(ctx context.Context, q reader) (uint64, error) {
	var v int64
	if err := q.QueryRowContext(ctx, `SELECT Value FROM `+MetaTable+` WHERE Key = 'version'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read the list version: %w", err)
	}
	return uint64(v), nil
}

// readFilter builds a filter from every key of tables in q's transaction.
// It returns a nil filter and no error when current reports the build
// overtaken.
func readFilter(ctx context.Context, q reader, tables []verdict.Table, odd *oddKeys, current func() bool) (*filter, error) {
	var n int64
	counts := map[string]int64{}
	for _, t := range tables {
		var c int64
		if err := q.QueryRowContext(ctx, "SELECT count(*) FROM "+verdict.TableNames[t]).Scan(&c); err != nil {
			return nil, fmt.Errorf("count %s: %w", verdict.TableNames[t], err)
		}
		n += c
		counts[verdict.TableNames[t]] = c
	}
	f, err := newFilter(n)
	if err != nil {
		return nil, err
	}
	for tbl, c := range counts {
		if n, err := addTable(ctx, q, tbl, c, f, odd, current); err != nil || n < 0 {
			return nil, err // n < 0: overtaken
		}
	}
	return f, nil
}

// savedShape is what the header of a saved filter says.
type savedShape struct {
	version, seed   uint64
	capacity, added int64
	blocks          int
}

func (sh *savedShape) info() SavedFilter {
	return SavedFilter{Version: sh.version, Capacity: sh.capacity, Added: sh.added, Bytes: int64(sh.blocks) * 64}
}

// savedHeader reads the header of the filter saved in q's list. A list
// without FilterTable, or with none saved, gives nil and no error; a
// header this release cannot read gives an error.
func savedHeader(ctx context.Context, q reader) (*savedShape, error) {
	if ok, err := hasTable(ctx, q, FilterTable); err != nil || !ok {
		return nil, err
	}
	var head []byte
	switch err := q.QueryRowContext(ctx, `SELECT Data FROM `+FilterTable+` WHERE Part = 0`).Scan(&head); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read the saved filter: %w", err)
	}
	return parseFilterHeader(head)
}

// loadSaved reads the filter whose header savedHeader read. The size of
// its parts is checked first: a damaged header must not make the process
// allocate what it says.
func loadSaved(ctx context.Context, q reader, sh *savedShape) (*filter, error) {
	var stored int64
	if err := q.QueryRowContext(ctx, `SELECT coalesce(sum(length(Data)), 0) FROM `+FilterTable+` WHERE Part > 0`).Scan(&stored); err != nil {
		return nil, fmt.Errorf("read the saved filter: %w", err)
	}
	if stored != int64(sh.blocks)*64 {
		return nil, fmt.Errorf("the saved filter is damaged: its parts hold %d bytes, its header says %d", stored, int64(sh.blocks)*64)
	}
	f, err := makeFilter(sh.seed, sh.capacity, int64(sh.blocks))
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT Part, Data FROM `+FilterTable+` WHERE Part > 0 ORDER BY Part`)
	if err != nil {
		return nil, fmt.Errorf("read the saved filter: %w", err)
	}
	defer rows.Close()
	next := 0 // the first block the next part holds
	for rows.Next() {
		var part int64
		var data sql.RawBytes
		if err := rows.Scan(&part, &data); err != nil {
			return nil, fmt.Errorf("read the saved filter: %w", err)
		}
		want := min(filterPartBlocks, len(f.blocks)-next)
		if part != int64(next/filterPartBlocks+1) || want <= 0 || len(data) != want*64 {
			return nil, fmt.Errorf("the saved filter is damaged at part %d (%d bytes)", part, len(data))
		}
		for i := range want {
			for w := range 8 {
				f.blocks[next+i][w] = binary.LittleEndian.Uint64(data[i*64+w*8:])
			}
		}
		next += want
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the saved filter: %w", err)
	}
	if next != len(f.blocks) {
		return nil, fmt.Errorf("the saved filter is damaged: %d of its %d blocks are there", next, len(f.blocks))
	}
	return f, nil
}

func filterHeader(f *filter, version uint64) []byte {
	h := make([]byte, filterHeaderLen)
	copy(h, filterMagic)
	binary.LittleEndian.PutUint64(h[8:], filterFormat)
	binary.LittleEndian.PutUint64(h[16:], version)
	binary.LittleEndian.PutUint64(h[24:], f.seed)
	binary.LittleEndian.PutUint64(h[32:], uint64(f.capacity))
	binary.LittleEndian.PutUint64(h[40:], uint64(len(f.blocks)))
	binary.LittleEndian.PutUint64(h[48:], uint64(f.extra.Load()))
	return h
}

func parseFilterHeader(h []byte) (*savedShape, error) {
	if len(h) < 48 || string(h[:8]) != filterMagic {
		return nil, errors.New("the saved filter's header is not one this release wrote")
	}
	var added uint64
	switch format := binary.LittleEndian.Uint64(h[8:]); {
	case format == 1 && len(h) == 48:
	case format == filterFormat && len(h) == filterHeaderLen:
		added = binary.LittleEndian.Uint64(h[48:])
	case format == 1 || format == filterFormat:
		return nil, fmt.Errorf("the saved filter's header is damaged (%d bytes for format %d)", len(h), format)
	default:
		return nil, fmt.Errorf("the saved filter has format %d; this release reads 1 and %d (`blockcachectl filter` saves it again)", format, filterFormat)
	}
	capacity, blocks := binary.LittleEndian.Uint64(h[32:]), binary.LittleEndian.Uint64(h[40:])
	if capacity == 0 || blocks < 2 || blocks > 1<<40/64 || blocks != (capacity*bitsPerKey+511)/512 && blocks != 2 || added > 1<<62 {
		return nil, fmt.Errorf("the saved filter's header is damaged (%d names in %d blocks, %d added)", capacity, blocks, added)
	}
	return &savedShape{version: binary.LittleEndian.Uint64(h[16:]), seed: binary.LittleEndian.Uint64(h[24:]), capacity: int64(capacity), added: int64(added), blocks: int(blocks)}, nil
}

// SaveFilter builds the membership filter of the list's current version
// and saves it in FilterTable, replacing the one saved before, so that
// processes opening the list load it instead of reading every row. The
// build reads a snapshot of the list without blocking its writers; the
// filter is tagged with that version, and readers add what the change
// log shows changed since, while the log covers every version since it
// was saved (Import saves it again itself when it cannot log its names).
func (w *Writer) SaveFilter(ctx context.Context) (SavedFilter, error) {
	conn, err := w.DB.Conn(ctx)
	if err != nil {
		return SavedFilter{}, fmt.Errorf("save the filter: %w", err)
	}
	defer conn.Close()
	// A deferred transaction: the writer's own transactions are
	// IMMEDIATE, which would hold the write lock for the whole build.
	if _, err := conn.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
		return SavedFilter{}, fmt.Errorf("save the filter: %w", err)
	}
	var odd oddKeys
	f, v, err := readAll(ctx, conn, &odd)
	if _, rerr := conn.ExecContext(context.Background(), `ROLLBACK`); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return SavedFilter{}, fmt.Errorf("save the filter: %w", err)
	}
	conn.Close() // the writer's one connection, for the write below
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return SavedFilter{}, fmt.Errorf("save the filter: %w", err)
	}
	defer tx.Rollback()
	if old, err := savedHeader(ctx, tx); err == nil && old != nil && old.version > v {
		return old.info(), nil // saved meanwhile by another writer, of a later version
	}
	if err := writeFilter(ctx, tx, f, v, &odd); err != nil {
		return SavedFilter{}, fmt.Errorf("save the filter: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return SavedFilter{}, fmt.Errorf("save the filter: %w", err)
	}
	return SavedFilter{Version: v, Capacity: f.capacity, Bytes: f.bytes(), Odd: odd.String()}, nil
}

// readAll builds the filter of q's list version from every key, for a
// writer (which has every rule table).
func readAll(ctx context.Context, q reader, odd *oddKeys) (*filter, uint64, error) {
	v, err := listVersion(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	f, err := readFilter(ctx, q, ruleKeyTables, odd, func() bool { return ctx.Err() == nil })
	if err == nil && f == nil {
		err = ctx.Err() // overtaken: only a cancelled ctx stops it
	}
	return f, v, err
}

// writeFilter replaces the saved filter with f, of version v, in tx, and
// its report of odd names with odd's; a nil odd (a filter grown by an
// import, whose names were not all read) keeps the report saved before.
func writeFilter(ctx context.Context, tx *sql.Tx, f *filter, v uint64, odd *oddKeys) error {
	which := `` // every row
	if odd == nil {
		which = ` WHERE Part >= 0`
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+FilterTable+which); err != nil {
		return err
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO `+FilterTable+` (Part, Data) VALUES (?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	if odd != nil && odd.n > 0 {
		if _, err := ins.ExecContext(ctx, oddPart, []byte(fmt.Sprintf("%d\n%s", odd.n, odd))); err != nil {
			return err
		}
	}
	if _, err := ins.ExecContext(ctx, 0, filterHeader(f, v)); err != nil {
		return err
	}
	buf := make([]byte, filterPartBlocks*64)
	for part, next := 1, 0; next < len(f.blocks); part++ {
		n := min(filterPartBlocks, len(f.blocks)-next)
		for i := range n {
			for w := range 8 {
				binary.LittleEndian.PutUint64(buf[i*64+w*8:], f.blocks[next+i][w])
			}
		}
		if _, err := ins.ExecContext(ctx, part, buf[:n*64]); err != nil {
			return err
		}
		next += n
	}
	return nil
}

// resaveFilter saves the filter of tx's list version again, inside tx,
// when the list has a saved one: for a change the change log cannot
// carry, so that readers find the new version and a filter they can use
// in the same commit, instead of each building its own from every row.
// grown, when not nil, is the saved filter with the change's names added
// (savedForGrowth); it is written unless so many names were added that
// its false positives have risen, and then the filter is built from every
// row; grew says which. It returns nil when none was saved, or the saved
// one cannot be read (readers say why, and `blockcachectl filter`
// replaces it).
func resaveFilter(ctx context.Context, tx *sql.Tx, grown *filter) (sf *SavedFilter, grew bool, err error) {
	if sh, err := savedHeader(ctx, tx); sh == nil || err != nil {
		return nil, false, nil
	}
	v, err := listVersion(ctx, tx)
	f, grew := grown, grown != nil && !grown.worn()
	var odd *oddKeys
	if err == nil && !grew {
		odd = &oddKeys{}
		f, v, err = readAll(ctx, tx, odd)
	}
	if err == nil {
		err = writeFilter(ctx, tx, f, v, odd)
	}
	if err != nil {
		return nil, false, fmt.Errorf("save the filter again: %w", err)
	}
	return &SavedFilter{Version: v, Capacity: f.capacity, Added: f.extra.Load(), Bytes: f.bytes()}, grew, nil
}

// savedForGrowth returns the filter saved in tx's list, brought to tx's
// version, for an import too large to log to add its names to: loading it
// costs a read of the filter, where building it again reads every row
// (65 s at 100M names, minutes at a billion) with the write lock held. It
// returns nil when none is saved or it is not usable.
func savedForGrowth(ctx context.Context, tx *sql.Tx) *filter {
	sh, err := savedHeader(ctx, tx)
	if sh == nil || err != nil {
		return nil
	}
	v, err := listVersion(ctx, tx)
	if err != nil {
		return nil
	}
	f, _, _ := loadCaughtUp(ctx, tx, sh, v)
	return f
}

// loadCaughtUp loads the saved filter sh describes and adds the names the
// change log shows were changed since, up to version v; or says why it
// cannot. It returns how many names it added.
func loadCaughtUp(ctx context.Context, q reader, sh *savedShape, v uint64) (*filter, int, string) {
	keys, why := catchUp(ctx, q, sh, v)
	if why != "" {
		return nil, 0, why
	}
	f, err := loadSaved(ctx, q, sh)
	if err != nil {
		return nil, 0, err.Error()
	}
	for _, k := range keys {
		f.add(k)
	}
	f.extra.Store(sh.added + int64(len(keys)))
	return f, len(keys), ""
}

// SavedFilter describes the filter saved in the list; ok is false when
// none is.
func (w *Writer) SavedFilter(ctx context.Context) (SavedFilter, bool, error) {
	sh, err := savedHeader(ctx, w.DB)
	if err != nil || sh == nil {
		return SavedFilter{}, false, err
	}
	v, err := listVersion(ctx, w.DB)
	if err != nil {
		return SavedFilter{}, false, err
	}
	info := sh.info()
	var keys []string
	keys, info.Unusable = catchUp(ctx, w.DB, sh, v)
	info.Changed = len(keys)
	// The report is advice: a damaged one does not make the filter
	// unusable, and dnsmasq logs it.
	_, info.Odd, _ = savedOdd(ctx, w.DB)
	return info, true, nil
}

// savedOdd reads the report of odd names saved with the filter: none
// when the build found none, or a release before the report saved it.
func savedOdd(ctx context.Context, q reader) (n int64, report string, err error) {
	var b []byte
	switch err := q.QueryRowContext(ctx, `SELECT Data FROM `+FilterTable+` WHERE Part = ?`, oddPart).Scan(&b); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, "", nil
	case err != nil:
		return 0, "", fmt.Errorf("read the saved filter's report: %w", err)
	}
	count, report, ok := strings.Cut(string(b), "\n")
	if n, err = strconv.ParseInt(count, 10, 64); !ok || err != nil || n <= 0 {
		return 0, "", fmt.Errorf("the saved filter's report of odd names is damaged: %q", b[:min(len(b), 40)])
	}
	return n, report, nil
}

// catchUp returns the keys changed since the saved filter's version, up to
// version v, that it needs added to hold v's names; or why it cannot be
// brought to v.
func catchUp(ctx context.Context, q reader, sh *savedShape, v uint64) (keys []string, why string) {
	saved := sh.version
	if saved > v {
		return nil, fmt.Sprintf("it is of version %d, newer than the list's %d", saved, v)
	}
	keys, ok, _, err := readDelta(ctx, q, saved, v)
	switch {
	case err != nil:
		return nil, err.Error()
	case !ok:
		return nil, fmt.Sprintf("it is of version %d, and the change log does not cover every version since (now %d)", saved, v)
	case int64(len(keys))+sh.added > sh.capacity/4:
		if sh.added > 0 {
			return nil, fmt.Sprintf("%d names changed since its version %d and %d were added to it before, too many for its %d", len(keys), saved, sh.added, sh.capacity)
		}
		return nil, fmt.Sprintf("%d names changed since its version %d, too many for its %d", len(keys), saved, sh.capacity)
	}
	return keys, ""
}
