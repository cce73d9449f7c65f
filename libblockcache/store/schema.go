package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/libblockcache/libblockcache/libblockcache/name"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// MetaTable holds the list identity and version. The version is bumped by
// triggers on every rule table, so a change made by any writer, including
// a plain sqlite3 shell, is seen by every reader.
const MetaTable = "blockcache_meta"

// SchemaVersion is the layout Init creates. 2 added ChangesTable, 3
// StampsTable.
const SchemaVersion = 3

// ChangesTable logs, for each version bump made by a trigger, the keys of
// the rows it changed, so that a reader can tell which cached verdicts a
// change could not have touched and keep them (Store.StillValid), and can
// add new names to its membership filter instead of rebuilding it: on a
// list of a billion names a rebuild reads every row. A change to
// domain_regex logs the empty key, which no name can match and which means
// "everything". Only the last ChangesKept versions are kept; a reader that
// finds a version without a row (trimmed, bumped by BumpVersion, or written
// by a writer with older triggers) treats the change as touching
// everything, so a missing row can cost a cache, never a wrong verdict.
const ChangesTable = "blockcache_changes"

// ChangesKept is how many versions of changes the triggers keep.
const ChangesKept = 65536

// StampsTable holds a random stamp for each version the triggers (or a
// writer) made, kept as long as ChangesTable keeps its changes. Version
// numbers alone do not name contents: a backup put back in place, or a
// copy edited on its own, numbers its next changes as the other history
// did, with other contents. Caches tag each verdict with its version's
// stamp too, and a reader uses a verdict of version V only when its own
// history has the same stamp at V, so two histories share the verdicts of
// the versions they have in common and no other, even on a node that
// never saw the list go back. A version without a row (a list older than
// this table, a writer with older triggers) has stamp 0, which vouches
// for nothing beyond what the version number did before.
const StampsTable = "blockcache_stamps"

// StampVersion gives the current version its stamp; it follows every
// BumpVersion of the triggers and of the writer.
const StampVersion = `INSERT OR REPLACE INTO ` + StampsTable + ` VALUES (` + currentVersion + `, random() & 4294967295)`

// columns of each rule table, as operators' existing databases have them.
var tableDDL = map[verdict.Table]string{
	verdict.TableDNSAllow: `(Domain TEXT PRIMARY KEY, Server TEXT NOT NULL) WITHOUT ROWID`,
	verdict.TableDNSBlock: `(Domain TEXT PRIMARY KEY, Server TEXT NOT NULL) WITHOUT ROWID`,
	verdict.TableExact:    `(Domain TEXT PRIMARY KEY, IPv4 TEXT, IPv6 TEXT) WITHOUT ROWID`,
	verdict.TableDomain:   `(Domain TEXT PRIMARY KEY, IPv4 TEXT, IPv6 TEXT) WITHOUT ROWID`,
	verdict.TableRegex:    `(Pattern TEXT PRIMARY KEY, IPv4 TEXT, IPv6 TEXT) WITHOUT ROWID`,
}

// RuleTables lists the rule tables in precedence order.
var RuleTables = []verdict.Table{verdict.TableDNSAllow, verdict.TableDNSBlock, verdict.TableExact, verdict.TableDomain, verdict.TableRegex}

// notAList is the error for an SQLite file that holds no list.
func notAList(path string) error {
	n := make([]string, len(RuleTables))
	for i, t := range RuleTables {
		n[i] = verdict.TableNames[t]
	}
	return fmt.Errorf("%w: %s has none of the tables %s (an empty file, or another program's database?); `blockcachectl init --db FILE` makes it a list", ErrNotDatabase, path, strings.Join(n, ", "))
}

// TriggerNames returns the names of the version triggers of one table, so a
// bulk import can drop them, bump the version once and recreate them inside
// its own transaction.
func TriggerNames(t verdict.Table) []string {
	n := verdict.TableNames[t]
	names := []string{"blockcache_" + n + "_ins", "blockcache_" + n + "_upd", "blockcache_" + n + "_del"}
	if t != verdict.TableRegex {
		names = append(names, "blockcache_"+n+"_norm_ins", "blockcache_"+n+"_norm_upd")
	}
	return names
}

// TriggerDDL returns the statements that create the version triggers of t:
// each changed row bumps the version, stamps it (StampsTable) and logs its
// key in ChangesTable. A
// key written in upper case or with a trailing dot (a plain sqlite3
// insert) is rewritten at once to the form lookups ask for, replacing a
// row of that form, as Init would: "Tracker.NET." blocks tracker.net from
// the same commit. Those are triggers of their own with a WHEN clause,
// which costs a row far less than a statement in the version triggers.
func TriggerDDL(t verdict.Table) []string {
	n := verdict.TableNames[t]
	names := TriggerNames(t)
	body := func(logs ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, " ON %s BEGIN %s; %s;", n, BumpVersion, StampVersion)
		for _, l := range logs {
			fmt.Fprintf(&b, " INSERT OR IGNORE INTO %s %s;", ChangesTable, l)
		}
		fmt.Fprintf(&b, " %s; %s; END", trimChanges, trimStamps)
		return b.String()
	}
	key := func(k string) string { return "VALUES (" + currentVersion + ", " + k + ")" }
	ins, del := []string{key("NEW.Domain")}, []string{key("OLD.Domain")}
	// An update logs the new key only when it differs from the old one:
	// an upsert (INSERT ... ON CONFLICT DO UPDATE, as the writer and many
	// operators' scripts do) imposes its own conflict handling on the
	// trigger's statements, so a second row of the same key would fail it
	// instead of being ignored.
	upd := []string{key("OLD.Domain"), "SELECT " + currentVersion + ", NEW.Domain WHERE NEW.Domain IS NOT OLD.Domain"}
	if t == verdict.TableRegex {
		ins, upd, del = []string{key("''")}, []string{key("''")}, []string{key("''")}
	}
	ddl := []string{
		"CREATE TRIGGER " + names[0] + " AFTER INSERT" + body(ins...),
		"CREATE TRIGGER " + names[1] + " AFTER UPDATE" + body(upd...),
		"CREATE TRIGGER " + names[2] + " AFTER DELETE" + body(del...),
	}
	if t != verdict.TableRegex {
		norm := fmt.Sprintf(" ON %[1]s WHEN NEW.Domain <> lower(rtrim(NEW.Domain, '.')) BEGIN"+
			" DELETE FROM %[1]s WHERE Domain = lower(rtrim(NEW.Domain, '.'));"+
			" UPDATE %[1]s SET Domain = lower(rtrim(NEW.Domain, '.')) WHERE Domain = NEW.Domain; END", n)
		ddl = append(ddl, "CREATE TRIGGER "+names[3]+" AFTER INSERT"+norm, "CREATE TRIGGER "+names[4]+" AFTER UPDATE OF Domain"+norm)
	}
	return ddl
}

// currentVersion is the list version as an SQL expression.
const currentVersion = `(SELECT Value FROM ` + MetaTable + ` WHERE Key = 'version')`

// trimChanges keeps the last ChangesKept versions of ChangesTable; the
// triggers run it on every change, and so does an import that logs its own.
var trimChanges = fmt.Sprintf(`DELETE FROM %s WHERE Version <= %s - %d`, ChangesTable, currentVersion, ChangesKept)

// trimStamps keeps StampsTable as long as ChangesTable.
var trimStamps = fmt.Sprintf(`DELETE FROM %s WHERE Version <= %s - %d`, StampsTable, currentVersion, ChangesKept)

// BumpVersion is the statement a writer that disabled triggers runs once,
// followed by StampVersion. It logs no change, so readers drop every
// cached verdict: right for a bulk import, whose rows would swamp the log
// anyway.
const BumpVersion = `UPDATE ` + MetaTable + ` SET Value = Value + 1 WHERE Key = 'version'`

// writerBump is a new version made by a writer rather than by the
// triggers, with its stamp, as the triggers give theirs: once for a whole
// import (which logs its changes itself when they are few), and by an
// Init that finds version triggers gone (logged nowhere, so every reader
// drops its cached verdicts).
var writerBump = []string{BumpVersion, StampVersion, trimStamps}

// Init creates the schema, or upgrades a database made by other tools in
// place: missing tables, the meta table and the triggers are added, existing
// rows are kept (names are lower-cased and stripped of a trailing dot so the
// engine's point lookups find them), and the journal becomes WAL so that
// writers never block lookups. It runs in one transaction.
func Init(ctx context.Context, db *sql.DB) error {
	_, err := initSchema(ctx, db, true)
	return err
}

// initSchema is Init. With all false (every Writer's open) it normalizes
// only the tables whose triggers it just created, since the triggers
// normalize every row written after them: a read of every row is seconds
// at 10M rows and minutes at a billion, too much for `blockcachectl add`
// of one name. It returns the rule tables whose version triggers it put
// back on a list that has a version (a tool had dropped them).
func initSchema(ctx context.Context, db *sql.DB, all bool) (restored []string, err error) {
	if _, err := db.ExecContext(ctx, `PRAGMA journal_mode=WAL`); err != nil {
		return nil, fmt.Errorf("set WAL journal mode: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin schema transaction: %w", err)
	}
	defer tx.Rollback()
	existed, _, err := schemaNames(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + MetaTable + ` (Key TEXT PRIMARY KEY, Value) WITHOUT ROWID`,
		`INSERT OR IGNORE INTO ` + MetaTable + ` VALUES ('version', 1), ('list_id', lower(hex(randomblob(8)))), ('schema', ` + fmt.Sprint(SchemaVersion) + `)`,
		`UPDATE ` + MetaTable + ` SET Value = ` + fmt.Sprint(SchemaVersion) + ` WHERE Key = 'schema' AND Value < ` + fmt.Sprint(SchemaVersion),
		`CREATE TABLE IF NOT EXISTS ` + ChangesTable + ` (Version INTEGER NOT NULL, Domain TEXT NOT NULL, PRIMARY KEY (Version, Domain)) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS ` + StampsTable + ` (Version INTEGER PRIMARY KEY, Stamp INTEGER NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + FilterTable + ` (Part INTEGER PRIMARY KEY, Data BLOB NOT NULL)`,
	}
	for _, t := range RuleTables {
		stmts = append(stmts, `CREATE TABLE IF NOT EXISTS `+verdict.TableNames[t]+` `+tableDDL[t])
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return nil, fmt.Errorf("schema: %s: %w", firstWords(s), err)
		}
	}
	// Triggers first, so that rows rewritten below bump the version, and
	// an Init that changes nothing leaves the version (and every cache
	// keyed on it) alone. Triggers of an older layout (or recreated by an
	// older blockcachectl) are replaced. Only new normalizing triggers
	// (the fourth and fifth) mean rows may have been written unnormalized:
	// a version trigger replaced by a newer text does not make the first
	// write after an upgrade read every row.
	created := map[verdict.Table]bool{}
	for _, t := range RuleTables {
		name := verdict.TableNames[t]
		for i, ddl := range TriggerDDL(t) {
			made, missing, err := ensureTrigger(ctx, tx, TriggerNames(t)[i], ddl)
			if err != nil {
				return nil, err
			}
			created[t] = created[t] || (made && i >= 3)
			if missing && i < 3 && existed[MetaTable] && existed[name] && !slices.Contains(restored, name) {
				restored = append(restored, name)
			}
		}
	}
	if len(restored) > 0 {
		// A version trigger was gone from a table of a list with a
		// version: a tool dropped it, and rows it wrote since changed
		// the list under the version caches hold verdicts of. A new
		// version, unlogged, makes every reader drop them.
		for _, s := range writerBump {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return nil, fmt.Errorf("schema: %s: %w", firstWords(s), err)
			}
		}
	}
	for _, t := range ruleKeyTables {
		if all || created[t] {
			if err := normalizeRows(ctx, tx, verdict.TableNames[t]); err != nil {
				return nil, err
			}
		}
		if all {
			if err := rewriteForeignNames(ctx, tx, t); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return restored, nil
}

// ensureTrigger creates the trigger, or replaces one of that name whose
// text differs, and reports whether it did, and whether there was none.
// SQLite keeps a trigger's CREATE statement as written.
func ensureTrigger(ctx context.Context, tx *sql.Tx, name, ddl string) (made, missing bool, err error) {
	var have string
	err = tx.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?`, name).Scan(&have)
	switch {
	case err == nil && have == ddl:
		return false, false, nil
	case err == nil:
		if _, err := tx.ExecContext(ctx, "DROP TRIGGER "+name); err != nil {
			return false, false, fmt.Errorf("schema: replace trigger %s: %w", name, err)
		}
	case errors.Is(err, sql.ErrNoRows):
		missing = true
	default:
		return false, false, fmt.Errorf("schema: read trigger %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, ddl); err != nil {
		return false, false, fmt.Errorf("schema: %s: %w", firstWords(ddl), err)
	}
	return true, missing, nil
}

// normalizeRows rewrites rows written by tools that kept upper case or a
// trailing dot. Where the normalized name already exists the older row is
// the duplicate and is dropped.
func normalizeRows(ctx context.Context, tx *sql.Tx, table string) error {
	q := fmt.Sprintf(`UPDATE OR REPLACE %s SET Domain = lower(rtrim(Domain, '.')) WHERE Domain <> lower(rtrim(Domain, '.'))`, table)
	if _, err := tx.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("normalize %s: %w", table, err)
	}
	return nil
}

// rewriteForeignNames rewrites names other tools write in a form no query
// asks for, and that the triggers leave alone: a wildcard in a table that
// covers subdomains anyway ("*.ads.example" to "ads.example"; in
// domain_exact "*" is a literal owner name and stays) and a Unicode name
// ("bücher.example" to "xn--bcher-kva.example", as clients ask for it).
// The filter build reports the ones it cannot rewrite. Init only: it reads
// every row.
func rewriteForeignNames(ctx context.Context, tx *sql.Tx, t verdict.Table) error {
	table := verdict.TableNames[t]
	rows, err := tx.QueryContext(ctx, `SELECT Domain FROM `+table+` WHERE Domain GLOB '[*].*' OR Domain GLOB '.*' OR Domain GLOB '*[^ -~]*'`)
	if err != nil {
		return fmt.Errorf("rewrite names of %s: %w", table, err)
	}
	var from, to []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return fmt.Errorf("rewrite names of %s: %w", table, err)
		}
		if n, ok := asAsked(t, d); ok && n != d {
			from, to = append(from, d), append(to, n)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rewrite names of %s: %w", table, err)
	}
	// A row already in the asked form wins: it was written that way on
	// purpose, and may carry its own addresses.
	for i := range from {
		if _, err := tx.ExecContext(ctx, `UPDATE OR IGNORE `+table+` SET Domain = ? WHERE Domain = ?`, to[i], from[i]); err != nil {
			return fmt.Errorf("rewrite %q in %s: %w", from[i], table, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE Domain = ?`, from[i]); err != nil {
			return fmt.Errorf("rewrite %q in %s: %w", from[i], table, err)
		}
	}
	return nil
}

// asAsked is d in the form a query for it is looked up in, for
// rewriteForeignNames; false when it has none.
func asAsked(t verdict.Table, d string) (string, bool) {
	if t != verdict.TableExact {
		for wild := true; wild; {
			d, wild = name.Unwild(d)
		}
	}
	d, err := name.ASCII(d)
	if err != nil {
		return "", false
	}
	n, err := name.Query(d)
	return n, err == nil
}

func firstWords(s string) string {
	f := strings.Fields(s)
	if len(f) > 6 {
		f = f[:6]
	}
	return strings.Join(f, " ")
}
