package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// Writer changes a blocklist. Every change is one transaction that bumps
// the list version exactly once, so running engines switch to the new
// version as a whole or not at all.
type Writer struct {
	DB   *sql.DB
	Path string
	// Restored are the rule tables whose version triggers this open put
	// back (a tool had dropped them), under a new version that makes
	// every reader drop its cached verdicts.
	Restored []string
}

// OpenWriter opens path read-write. With create, a missing file is created;
// the schema is created or upgraded in place either way (rows are
// normalized only in tables whose triggers it creates: see initSchema).
func OpenWriter(ctx context.Context, path string, create bool) (*Writer, error) {
	return openWriter(ctx, path, create, openWrite)
}

// OpenReading opens path read-only, for the commands that only read
// (stats, export): a user who may read the list but not write it, as
// dnsmasq's own user, can run them. The Writer's changes fail on it. A
// list that lacks some of the schema (made by other tools) is opened as
// OpenWriter does, which adds it, as these commands always did.
func OpenReading(ctx context.Context, path string) (*Writer, error) {
	w, err := openWriter(ctx, path, false, openRead)
	if err != nil {
		return nil, err
	}
	if _, ours, err := countTables(ctx, w.DB, MetaTable, ChangesTable); err != nil || ours < len(RuleTables)+2 {
		w.Close()
		return OpenWriter(ctx, path, false)
	}
	return w, nil
}

// InitWriter is OpenWriter with create, after Init's full upgrade: every
// row of a list made by other tools is normalized, in one pass.
func InitWriter(ctx context.Context, path string) (*Writer, error) {
	return openWriter(ctx, path, true, openInit)
}

// openMode says what openWriter does to the schema.
type openMode int

const (
	openWrite openMode = iota // create or upgrade it
	openInit                  // Init's full upgrade, rows normalized
	openRead                  // nothing: read-only
)

func openWriter(ctx context.Context, path string, create bool, mode openMode) (*Writer, error) {
	if _, err := os.Stat(path); err != nil {
		if !errors.Is(err, os.ErrNotExist) || !create {
			return nil, fmt.Errorf("%w: %s (`blockcachectl init --db FILE` makes a new list)", ErrNotFound, path)
		}
	}
	dsn := "file:" + escapePath(path) + "?_busy_timeout=" + strconv.Itoa(writerBusyMS) + "&_txlock=immediate"
	if mode == openRead {
		dsn = "file:" + escapePath(path) + "?mode=ro&_busy_timeout=" + strconv.Itoa(writerBusyMS)
	}
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, openError(path, err)
	}
	if mode != openInit {
		if err := checkList(ctx, db, path, create); err != nil {
			db.Close()
			return nil, err
		}
	}
	var restored []string
	if mode != openRead {
		if restored, err = initSchema(ctx, db, mode == openInit); err != nil {
			db.Close()
			return nil, openError(path, err)
		}
	}
	return &Writer{DB: db, Path: path, Restored: restored}, nil
}

// checkList refuses a file that holds no list, before the schema is
// written into it: a mistyped --db must not turn another program's
// database into a list, nor `stats` an empty file. An empty file (no
// tables at all) is a new list to the commands that may create one; only
// `init` (InitWriter) makes a list of a database that has other tables.
func checkList(ctx context.Context, db *sql.DB, path string, create bool) error {
	tables, ours, err := countTables(ctx, db, MetaTable)
	switch {
	case err != nil:
		return openError(path, err)
	case ours > 0 || (tables == 0 && create):
		return nil
	}
	return notAList(path)
}

// countTables counts the database's tables, and those of them that are
// the rule tables or one of extra (lower case), from schemaNames.
func countTables(ctx context.Context, db *sql.DB, extra ...string) (tables, ours int, err error) {
	names, _, err := schemaNames(ctx, db)
	if err != nil {
		return 0, 0, err
	}
	for _, n := range extra {
		if names[n] {
			ours++
		}
	}
	for _, in := range ruleTablesIn(names) {
		if in {
			ours++
		}
	}
	return len(names), ours, nil
}

// writerBusyMS is how long a writer waits for another writer's lock.
const writerBusyMS = 10000

// Close closes the database.
func (w *Writer) Close() error { return w.DB.Close() }

// ErrInUse is returned by Offline when another process has the list open.
var ErrInUse = errors.New("another process has the list open (a dnsmasq reading it?)")

// Offline takes the file out of WAL for a bulk write to a list that no
// dnsmasq reads, such as a master that is then published. In WAL a
// transaction keeps every page it writes in the -wal file until it commits
// and then copies them into the list, so a first import of a billion names
// needs twice the list's size on disk and writes it twice. Out of WAL the
// pages are written once, and the rollback journal keeps the old content
// of the pages that existed before, few in a new list. SQLite leaves WAL only while no other connection has
// the file open, which is the check that nothing reads it; a reader that
// opens it later blocks on the import's locks instead of reading around
// them. restore puts the file back in WAL.
func (w *Writer) Offline(ctx context.Context) (restore func(context.Context) error, err error) {
	if err := setJournal(ctx, w.DB, "delete", 0); err != nil {
		return nil, fmt.Errorf("%s: leave WAL: %w", w.Path, err)
	}
	return func(ctx context.Context) error {
		if err := setJournal(ctx, w.DB, "wal", writerBusyMS); err != nil {
			return fmt.Errorf("%s: back to WAL (run `blockcachectl init` when nothing else has it open): %w", w.Path, err)
		}
		return nil
	}, nil
}

// setJournal sets the journal mode, waiting at most busyMS for other
// connections, and leaves the writer's usual busy timeout in place.
func setJournal(ctx context.Context, db *sql.DB, mode string, busyMS int) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", busyMS)); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA busy_timeout = %d", writerBusyMS))
	var got string
	err = conn.QueryRowContext(ctx, "PRAGMA journal_mode = "+mode).Scan(&got)
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked) {
		return ErrInUse
	}
	if err != nil {
		return err
	}
	if !strings.EqualFold(got, mode) {
		return fmt.Errorf("journal mode is %s, not %s (an in-memory or read-only file?)", got, mode)
	}
	return nil
}

// Rule is one row to write; IPv4/IPv6 for block tables, Server for forward tables.
type Rule struct {
	Key        string // Domain, or Pattern for domain_regex
	IPv4, IPv6 string
	Server     string
}

// TableByName maps a table name to its Table.
func TableByName(n string) (verdict.Table, error) {
	for _, t := range RuleTables {
		if verdict.TableNames[t] == n {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown table %q (want one of domain_dns_allow, domain_dns_block, domain_exact, domain, domain_regex)", n)
}

func keyColumn(t verdict.Table) string {
	if t == verdict.TableRegex {
		return "Pattern"
	}
	return "Domain"
}

// upsertSQL builds a multi-row insert of n rows that leaves a row already
// there as given untouched, and with returning returns the keys it
// inserted or changed (its count of changes counts the same rows). A
// feed imported again every day is mostly names already listed; counted as
// changes, they would empty every reader's cache at each import and grow
// the saved filter by the whole feed. With no unique key on the table
// (a foreign list), nothing conflicts and every row is inserted, as INSERT
// OR REPLACE did. One statement per batch keeps the per-row cost of
// database/sql off a 10M-row import. With keepServers, a forward rule to a
// server is left as it is by a rule to the usual servers, which would only
// exempt a name that rule already exempts: a feed's exception does not
// take over the operator's own allow rule to a resolver (and, replaced
// later, delete it).
func upsertSQL(t verdict.Table, n int, returning, keepServers bool) string {
	key := keyColumn(t)
	cols, row := key+", IPv4, IPv6", "(?,?,?)"
	set, differs := "IPv4 = excluded.IPv4, IPv6 = excluded.IPv6", "IPv4 IS NOT excluded.IPv4 OR IPv6 IS NOT excluded.IPv6"
	if t.Forwards() {
		cols, row = "Domain, Server", "(?,?)"
		set, differs = "Server = excluded.Server", "Server IS NOT excluded.Server"
		if keepServers { // a row to "#" is as given, one to a server is kept
			differs = "Server IS NULL OR Server = ''"
		}
	}
	rows := repeated(row, n)
	q := fmt.Sprintf("INSERT INTO %s (%s) VALUES %s ON CONFLICT DO UPDATE SET %s WHERE %s",
		verdict.TableNames[t], cols, rows, set, differs)
	if returning {
		q += " RETURNING " + key
	}
	return q
}

const batchRows = 256

// ImportStats describes one import.
type ImportStats struct {
	Rows       int // names imported, after de-duplication
	Changed    int // names not listed before, listed otherwise, or removed
	Removed    int // names removed because a replacing import did not hold them
	Duplicates int
	// Logged: the change log holds what the import changed, so readers
	// keep their filter (and, but for domain_regex, the verdicts it did
	// not touch), and a saved filter stays usable.
	Logged bool
	// Filter is the filter the import saved again, in its own transaction,
	// because the list had one saved and the import was too large to log;
	// nil otherwise. FilterGrown: the import's names were added to the
	// saved filter; otherwise it was built from every row. FilterTook is
	// the part of the import that took.
	Filter      *SavedFilter
	FilterGrown bool
	FilterTook  time.Duration
}

// ImportOptions says how Import writes.
type ImportOptions struct {
	Rule Rule // the addresses or server every imported name gets; Key unused
	// Replace leaves the table holding exactly the imported names: a
	// feed's names that it no longer lists are removed, in the same
	// transaction. In a forward table, only the rules to the import's
	// server are replaced. An import of no names into a table that has some is
	// refused, so a failed download cannot empty a table; into an empty
	// table it changes nothing (a feed's exceptions, when it has none).
	Replace bool
	// MaxRemoved, between 0 and 1, refuses a replacing import that would
	// remove more than that share of the names the table listed: a feed
	// cut short by a failed download must not unlist most of a list.
	// 0 allows any.
	MaxRemoved float64
	// RemovedAllowance is how many removals pass MaxRemoved whatever
	// their share: in a table of a handful of rules (a feed's
	// exceptions, a hand-made list) a few names dropped are a large
	// share and not a failed download.
	RemovedAllowance int
	// DryRun does all of the import but its commit: the counts and every
	// refusal are as they would be, and the list is left as it was.
	DryRun bool
}

// ErrEmptyReplace is a replacing import of no names.
var ErrEmptyReplace = errors.New("a replacing import of no names would empty the table; nothing was changed")

// ErrTooManyRemoved is a replacing import that would remove more than
// ImportOptions.MaxRemoved allows.
var ErrTooManyRemoved = errors.New("the import would remove more names than allowed; nothing was changed")

// Import writes rules in one transaction. next returns the next key or
// ok=false at the end; it runs inside the transaction, so a failure or a
// cancelled ctx leaves the list exactly as it was. Keys are sorted and
// de-duplicated in chunks before they are written, which turns random
// B-tree inserts into near-sequential ones. Only names not listed before,
// or listed otherwise, are changes; with none, the version stays. The
// version is bumped once; an import that changes up to maxChanged names (a
// feed's update) logs them under that version, so readers keep the
// verdicts it did not touch, and a larger one logs nothing and drops them
// all; if the list has a saved filter, the larger one adds its names to it
// (or, past a quarter of the names it was built for, builds it again) and
// saves it before it commits, so that readers rebuild nothing. An import
// into domain_regex logs the regex marker: readers drop every verdict but
// keep their filter.
func (w *Writer) Import(ctx context.Context, t verdict.Table, next func() (string, bool, error), opts ImportOptions) (ImportStats, error) {
	st, err := w.ImportAll(ctx, ImportPart{Table: t, Next: next, Options: opts})
	return st[0], err
}

// ImportPart is one table's share of ImportAll.
type ImportPart struct {
	Table   verdict.Table
	Next    func() (string, bool, error)
	Options ImportOptions
}

// ImportAll imports into several tables in one transaction, each part as
// Import would: a feed's blocks and its exceptions are one change, which
// readers see whole or not at all, and a part that is refused refuses
// them all. Nothing is committed when any part is a dry run. The stats
// are by part, in order. Each part has a table of its own: a replacing
// part would remove what an earlier part wrote to the same table.
func (w *Writer) ImportAll(ctx context.Context, parts ...ImportPart) ([]ImportStats, error) {
	sts := make([]ImportStats, max(len(parts), 1))
	for i, p := range parts {
		for _, q := range parts[:i] {
			if q.Table == p.Table {
				return sts, fmt.Errorf("import: two parts into %s", verdict.TableNames[p.Table])
			}
		}
		if p.Table.Forwards() {
			if err := verdict.ValidServer(p.Options.Rule.Server); err != nil {
				return sts, fmt.Errorf("%s needs a valid --server: %w", verdict.TableNames[p.Table], err)
			}
		} else if p.Options.Rule.Server != "" {
			return sts, fmt.Errorf("%s takes no server", verdict.TableNames[p.Table])
		}
	}
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return sts, fmt.Errorf("begin import: %w", err)
	}
	defer tx.Rollback()
	for _, s := range []string{`PRAGMA cache_size = -262144`} {
		tx.ExecContext(ctx, s)
	}
	dry := false
	for i, p := range parts {
		if sts[i], err = importPart(ctx, tx, p.Table, p.Next, p.Options); err != nil {
			if len(parts) > 1 {
				err = fmt.Errorf("%s: %w", verdict.TableNames[p.Table], err)
			}
			return sts, err
		}
		dry = dry || p.Options.DryRun
	}
	if dry {
		return sts, nil // the deferred rollback undoes it all
	}
	if err := tx.Commit(); err != nil {
		return sts, fmt.Errorf("commit import: %w", err)
	}
	w.DB.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
	return sts, nil
}

// importPart is one part of ImportAll, in its transaction. Each part bumps
// the version once and logs its changes under it: readers of the commit
// see two versions at once and read the log of both.
func importPart(ctx context.Context, tx *sql.Tx, t verdict.Table, next func() (string, bool, error), opts ImportOptions) (ImportStats, error) {
	var st ImportStats
	tmpl := opts.Rule
	keepServers := tmpl.Server == verdict.UsualServers
	// One version bump for the whole import instead of one per row.
	for _, tr := range TriggerNames(t) {
		if _, err := tx.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+tr); err != nil {
			return st, fmt.Errorf("import: %w", err)
		}
	}
	// Each batch returns the keys it changed only while the import may
	// still be small enough to log them; after that it only counts them.
	// Returning every key made a first import of a large list 40% slower.
	keyed, err := tx.PrepareContext(ctx, upsertSQL(t, batchRows, true, keepServers))
	if err != nil {
		return st, fmt.Errorf("prepare import: %w", err)
	}
	defer keyed.Close()
	counted, err := tx.PrepareContext(ctx, upsertSQL(t, batchRows, false, keepServers))
	if err != nil {
		return st, fmt.Errorf("prepare import: %w", err)
	}
	defer counted.Close()
	var keep func([]string) error // a replacing import's keys, to keep
	listed := 0                   // names in the table before a replacing import
	// A forward table's rules to other servers come from other sources
	// (hand-made allow rules to a resolver, another feed): a replacing
	// import replaces only the rules to its own server.
	scope, scopeArgs := ` WHERE 1`, []any{}
	if t.Forwards() {
		scope, scopeArgs = ` WHERE Server = ?`, []any{tmpl.Server}
	}
	if opts.Replace {
		if keep, err = keepKeys(ctx, tx); err != nil {
			return st, fmt.Errorf("import: %w", err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+verdict.TableNames[t]+scope, scopeArgs...).Scan(&listed); err != nil {
			return st, fmt.Errorf("import: count the names listed: %w", err)
		}
	}
	const chunk = 1 << 22
	keys := make([]string, 0, 1<<16)
	// logged holds the keys changed so far while the import may still be
	// logged, nil once it is too large; a regex import is logged as one
	// marker, however many patterns. grown is then the saved filter, if
	// any, that the import adds its names to.
	logged := []string{}
	var grown *filter
	stopLogging := func() {
		if !opts.DryRun { // which would never write it back
			start := time.Now()
			grown = savedForGrowth(ctx, tx)
			addKeys(grown, logged)
			st.FilterTook += time.Since(start)
		}
		logged = nil
	}
	write := func(batch []string) (int, error) {
		args := make([]any, 0, len(batch)*3)
		for _, k := range batch {
			if t.Forwards() {
				args = append(args, k, tmpl.Server)
			} else {
				args = append(args, k, nullIfEmpty(tmpl.IPv4), nullIfEmpty(tmpl.IPv6))
			}
		}
		full := len(batch) == batchRows
		var err error
		if logged == nil || t == verdict.TableRegex {
			var res sql.Result
			if full {
				res, err = counted.ExecContext(ctx, args...)
			} else {
				res, err = tx.ExecContext(ctx, upsertSQL(t, len(batch), false, keepServers), args...)
			}
			if err != nil {
				return 0, err
			}
			if grown != nil {
				start := time.Now()
				addKeys(grown, batch) // those listed before set bits already set
				st.FilterTook += time.Since(start)
			}
			n, err := res.RowsAffected()
			return int(n), err
		}
		var rows *sql.Rows
		if full {
			rows, err = keyed.QueryContext(ctx, args...)
		} else {
			rows, err = tx.QueryContext(ctx, upsertSQL(t, len(batch), true, keepServers), args...)
		}
		if err != nil {
			return 0, err
		}
		before := len(logged)
		if logged, err = appendKeys(logged, rows); err != nil {
			return 0, err
		}
		n := len(logged) - before
		if len(logged) > maxChanged {
			stopLogging()
		}
		return n, nil
	}
	flush := func() error {
		slices.Sort(keys)
		uniq := slices.Compact(keys)
		st.Duplicates += len(keys) - len(uniq)
		for i := 0; i < len(uniq); i += batchRows {
			batch := uniq[i:min(i+batchRows, len(uniq))]
			n, err := write(batch)
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			st.Changed += n
			st.Rows += len(batch)
			if keep != nil {
				if err := keep(batch); err != nil {
					return fmt.Errorf("import: %w", err)
				}
			}
		}
		keys = keys[:0]
		return nil
	}
	for {
		k, ok, err := next()
		if err != nil {
			return st, err
		}
		if !ok {
			break
		}
		keys = append(keys, k)
		if len(keys) >= chunk {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	if opts.Replace {
		if st.Rows == 0 && listed > 0 {
			return st, ErrEmptyReplace
		}
		// The names removed are changes too: logged while the import still
		// may be, which is the usual case (a feed drops a few names a day).
		key, table := keyColumn(t), verdict.TableNames[t]
		gone := ` FROM ` + table + scope + ` AND ` + key + ` NOT IN (SELECT Key FROM temp.` + keptTable + `)`
		removed := 0
		if logged != nil && t != verdict.TableRegex {
			rows, err := tx.QueryContext(ctx, `SELECT `+key+gone+` LIMIT ?`, append(scopeArgs, maxChanged-len(logged)+1)...)
			var keys []string
			if err == nil {
				keys, err = appendKeys(nil, rows)
			}
			if err != nil {
				return st, fmt.Errorf("import: find the names to remove: %w", err)
			}
			if len(logged)+len(keys) <= maxChanged {
				if removed, err = removeKeys(ctx, tx, t, keys); err != nil {
					return st, fmt.Errorf("import: %w", err)
				}
				logged = append(logged, keys...)
			} else {
				stopLogging()
			}
		}
		if logged == nil || t == verdict.TableRegex {
			res, err := tx.ExecContext(ctx, `DELETE`+gone, scopeArgs...)
			if err != nil {
				return st, fmt.Errorf("import: remove the names it does not hold: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return st, fmt.Errorf("import: %w", err)
			}
			removed = int(n)
		}
		if opts.MaxRemoved > 0 && removed > opts.RemovedAllowance && float64(removed) > opts.MaxRemoved*float64(listed) {
			if t.Forwards() {
				table += " to server " + tmpl.Server
			}
			return st, fmt.Errorf("%w: %d of the %d names in %s (%.0f%%, at most %.0f%% allowed)",
				ErrTooManyRemoved, removed, listed, table, 100*float64(removed)/float64(listed), 100*opts.MaxRemoved)
		}
		st.Removed = removed
		st.Changed += removed
		if _, err := tx.ExecContext(ctx, `DROP TABLE temp.`+keptTable); err != nil {
			return st, fmt.Errorf("import: %w", err)
		}
	}
	if opts.DryRun {
		return st, nil // ImportAll rolls it all back
	}
	stmts := TriggerDDL(t)
	if st.Changed > 0 { // an import of nothing new changes nothing: caches stay
		stmts = append(stmts, writerBump...)
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return st, fmt.Errorf("import: %w", err)
		}
	}
	if st.Logged = logged != nil && st.Changed > 0; st.Logged {
		if t == verdict.TableRegex {
			logged = []string{""} // the regex marker: any name's verdict may have changed
		}
		if err := logChanges(ctx, tx, logged); err != nil {
			return st, fmt.Errorf("import: %w", err)
		}
	} else if st.Changed > 0 {
		start := time.Now()
		if grown != nil {
			// Each name added or changed once: the filter's count of names
			// added. A removed name sets no bit.
			grown.extra.Add(int64(st.Changed - st.Removed))
		}
		if st.Filter, st.FilterGrown, err = resaveFilter(ctx, tx, grown); err != nil {
			return st, fmt.Errorf("import: %w", err)
		}
		st.FilterTook += time.Since(start)
	}
	return st, nil
}

// keptTable holds the keys of a replacing import, in the writer's
// connection's temporary database: SQLite's temporary directory needs
// room for them (SQLITE_TMPDIR; ~30 bytes a name).
const keptTable = "blockcache_import_keys"

// keepKeys creates keptTable, empty, and returns the function that adds a
// batch of keys to it.
func keepKeys(ctx context.Context, tx *sql.Tx) (func([]string) error, error) {
	for _, q := range []string{
		`CREATE TEMP TABLE IF NOT EXISTS ` + keptTable + ` (Key TEXT PRIMARY KEY) WITHOUT ROWID`,
		`DELETE FROM temp.` + keptTable,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("keep the imported keys: %w", err)
		}
	}
	insert := func(n int) string {
		return `INSERT OR IGNORE INTO temp.` + keptTable + ` VALUES ` + repeated("(?)", n)
	}
	full, err := tx.PrepareContext(ctx, insert(batchRows))
	if err != nil {
		return nil, fmt.Errorf("keep the imported keys: %w", err)
	}
	return func(batch []string) error {
		var err error
		if len(batch) == batchRows {
			_, err = full.ExecContext(ctx, keyArgs(batch)...)
		} else {
			_, err = tx.ExecContext(ctx, insert(len(batch)), keyArgs(batch)...)
		}
		return err
	}, nil
}

// removeKeys deletes the rows of keys and reports how many it deleted.
func removeKeys(ctx context.Context, tx *sql.Tx, t verdict.Table, keys []string) (int, error) {
	n := 0
	for i := 0; i < len(keys); i += batchRows {
		batch := keys[i:min(i+batchRows, len(keys))]
		res, err := tx.ExecContext(ctx, `DELETE FROM `+verdict.TableNames[t]+` WHERE `+keyColumn(t)+` IN (`+repeated("?", len(batch))+`)`, keyArgs(batch)...)
		if err != nil {
			return n, fmt.Errorf("remove: %w", err)
		}
		c, err := res.RowsAffected()
		if err != nil {
			return n, fmt.Errorf("remove: %w", err)
		}
		n += int(c)
	}
	return n, nil
}

// repeated joins n copies of s with commas: the placeholders of a
// multi-row statement.
func repeated(s string, n int) string {
	return strings.TrimSuffix(strings.Repeat(s+",", n), ",")
}

// keyArgs passes keys as a statement's arguments.
func keyArgs(keys []string) []any {
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	return args
}

// appendKeys appends the keys an upsert returned and closes its rows.
func appendKeys(keys []string, rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return keys, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// addKeys sets the bits of an import's keys in the saved filter it grows,
// if any. The import counts the names it added once, at its end.
func addKeys(f *filter, keys []string) {
	if f == nil {
		return
	}
	for _, k := range keys {
		f.add(k)
	}
}

// logChanges writes keys to ChangesTable under the current version, as the
// triggers would have, and trims it as they do.
func logChanges(ctx context.Context, tx *sql.Tx, keys []string) error {
	for i := 0; i < len(keys); i += batchRows {
		batch := keys[i:min(i+batchRows, len(keys))]
		q := `INSERT OR IGNORE INTO ` + ChangesTable + ` SELECT ` + currentVersion + `, column1 FROM (VALUES ` + repeated("(?)", len(batch)) + `)`
		if _, err := tx.ExecContext(ctx, q, keyArgs(batch)...); err != nil {
			return fmt.Errorf("log changes: %w", err)
		}
	}
	_, err := tx.ExecContext(ctx, trimChanges)
	return err
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Add inserts rules, or changes them, and reports how many were not
// already listed as given. The triggers bump the version for those only:
// a rule added again as it is changes nothing, and no cache is dropped.
func (w *Writer) Add(ctx context.Context, t verdict.Table, rules []Rule) (int, error) {
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var changed []string
	for _, r := range rules {
		args := []any{r.Key, nullIfEmpty(r.IPv4), nullIfEmpty(r.IPv6)}
		if t.Forwards() {
			if err := verdict.ValidServer(r.Server); err != nil {
				return 0, err
			}
			args = []any{r.Key, r.Server}
		}
		rows, err := tx.QueryContext(ctx, upsertSQL(t, 1, true, false), args...)
		if err == nil {
			changed, err = appendKeys(changed, rows)
		}
		if err != nil {
			return 0, fmt.Errorf("add %q: %w", r.Key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return len(changed), nil
}

// Remove deletes rules by key and reports how many existed.
func (w *Writer) Remove(ctx context.Context, t verdict.Table, keys []string) (int, error) {
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	n := 0
	for _, k := range keys {
		res, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s = ?", verdict.TableNames[t], keyColumn(t)), k)
		if err != nil {
			return n, fmt.Errorf("remove %q: %w", k, err)
		}
		c, _ := res.RowsAffected()
		n += int(c)
	}
	return n, tx.Commit()
}

// Export calls fn for every rule of t in key order.
func (w *Writer) Export(ctx context.Context, t verdict.Table, fn func(Rule) error) error {
	q := fmt.Sprintf("SELECT %s, IPv4, IPv6, NULL FROM %s ORDER BY 1", keyColumn(t), verdict.TableNames[t])
	if t.Forwards() {
		q = fmt.Sprintf("SELECT Domain, NULL, NULL, Server FROM %s ORDER BY 1", verdict.TableNames[t])
	}
	rows, err := w.DB.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("export %s: %w", verdict.TableNames[t], err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var a, b, s sql.NullString
		if err := rows.Scan(&k, &a, &b, &s); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if err := fn(Rule{Key: k, IPv4: a.String, IPv6: b.String, Server: s.String}); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Counts returns the rows per table and the list identity.
func (w *Writer) Counts(ctx context.Context) (map[string]int64, Namespace, error) {
	return countRules(ctx, w.DB)
}

// ServerCount is how many rules of a forward table go to one server.
type ServerCount struct {
	Server string
	Rules  int64
}

// Servers counts a forward table's rules by server, most first: which of
// them are allowlist entries (to "#") and which go to a resolver.
func (w *Writer) Servers(ctx context.Context, t verdict.Table) ([]ServerCount, error) {
	if !t.Forwards() {
		return nil, fmt.Errorf("%s has no servers", verdict.TableNames[t])
	}
	rows, err := w.DB.QueryContext(ctx, `SELECT Server, count(*) FROM `+verdict.TableNames[t]+` GROUP BY Server ORDER BY 2 DESC, 1`)
	if err != nil {
		return nil, fmt.Errorf("count %s by server: %w", verdict.TableNames[t], err)
	}
	defer rows.Close()
	var out []ServerCount
	for rows.Next() {
		var sc ServerCount
		var srv sql.NullString
		if err := rows.Scan(&srv, &sc.Rules); err != nil {
			return nil, fmt.Errorf("count %s by server: %w", verdict.TableNames[t], err)
		}
		sc.Server = srv.String
		out = append(out, sc)
	}
	return out, rows.Err()
}

// ChangeLog describes ChangesTable: its rows and the versions they cover.
func (w *Writer) ChangeLog(ctx context.Context) (rows int64, from, to uint64, err error) {
	var lo, hi sql.NullInt64
	err = w.DB.QueryRowContext(ctx, `SELECT count(*), min(Version), max(Version) FROM `+ChangesTable).Scan(&rows, &lo, &hi)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read %s: %w", ChangesTable, err)
	}
	return rows, uint64(lo.Int64), uint64(hi.Int64), nil
}

func countRules(ctx context.Context, db *sql.DB) (map[string]int64, Namespace, error) {
	out := map[string]int64{}
	for _, t := range RuleTables {
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+verdict.TableNames[t]).Scan(&n); err != nil {
			return nil, Namespace{}, fmt.Errorf("count %s: %w", verdict.TableNames[t], err)
		}
		out[verdict.TableNames[t]] = n
	}
	ns, err := readNamespace(ctx, db)
	return out, ns, err
}

// Namespace reads the list's identity and version. Unlike Counts it does
// not read every row: a count takes seconds at 100M rows.
func (w *Writer) Namespace(ctx context.Context) (Namespace, error) {
	return readNamespace(ctx, w.DB)
}

// Untriggered names a rule table whose version triggers are gone (a
// tool dropped them), or "" when there is none or the list has no
// version at all. Its rows change without a new version, so readers take
// the list as one without versions until a writer's open puts them back.
func (w *Writer) Untriggered(ctx context.Context) (string, error) {
	tables, triggers, err := schemaNames(ctx, w.DB)
	if err != nil || !tables[MetaTable] {
		return "", err
	}
	return untriggered(ruleTablesIn(tables), triggers), nil
}

// Fork gives the list a new identity (list_id) and keeps its rows,
// version, stamps and change log. A restored backup wants one: it is an
// older version of its list, and the versions written after it repeat the
// numbers of the ones written after the backup was taken, with other
// contents. Their stamps (StampsTable) tell the two apart, but a list
// older than the stamps has none, and there the fleet's caches would take
// one for the other. Caches share nothing with the new identity; readers
// switch to it at their next poll, as for any list change.
func (w *Writer) Fork(ctx context.Context) (before, after Namespace, err error) {
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return before, after, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if before, err = readNamespace(ctx, tx); err != nil {
		return before, after, err
	}
	after = before
	err = tx.QueryRowContext(ctx, `UPDATE `+MetaTable+` SET Value = lower(hex(randomblob(8))) WHERE Key = 'list_id' RETURNING Value`).Scan(&after.ListID)
	if err != nil {
		return before, after, fmt.Errorf("write a new list identity: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return before, after, fmt.Errorf("commit: %w", err)
	}
	return before, after, nil
}

func readNamespace(ctx context.Context, db reader) (Namespace, error) {
	var ns Namespace
	var v int64
	err := db.QueryRowContext(ctx, `SELECT (SELECT Value FROM `+MetaTable+` WHERE Key = 'list_id'), (SELECT Value FROM `+MetaTable+` WHERE Key = 'version')`).Scan(&ns.ListID, &v)
	if err != nil {
		return Namespace{}, fmt.Errorf("read the list version: %w", err)
	}
	ns.Version = uint64(v)
	ns.Stamp, err = readStamp(ctx, db, ns.Version)
	return ns, err
}
