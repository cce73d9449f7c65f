package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// MetaTable holds the list identity and version. The version is bumped by
// triggers on every rule table, so a change made by any writer, including
// a plain sqlite3 shell, is seen by every reader.
const MetaTable = "blockcache_meta"

// SchemaVersion is the layout Init creates.
const SchemaVersion = 1

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

// TriggerNames returns the names of the version triggers of one table, so a
// bulk import can drop them, bump the version once and recreate them inside
// its own transaction.
func TriggerNames(t verdict.Table) []string {
	n := verdict.TableNames[t]
	return []string{"blockcache_" + n + "_ins", "blockcache_" + n + "_upd", "blockcache_" + n + "_del"}
}

// TriggerDDL returns the statements that create the version triggers of t.
func TriggerDDL(t verdict.Table) []string {
	n := verdict.TableNames[t]
	bump := fmt.Sprintf(` ON %s BEGIN UPDATE %s SET Value = Value + 1 WHERE Key = 'version'; END`, n, MetaTable)
	names := TriggerNames(t)
	return []string{
		"CREATE TRIGGER IF NOT EXISTS " + names[0] + " AFTER INSERT" + bump,
		"CREATE TRIGGER IF NOT EXISTS " + names[1] + " AFTER UPDATE" + bump,
		"CREATE TRIGGER IF NOT EXISTS " + names[2] + " AFTER DELETE" + bump,
	}
}

// BumpVersion is the statement a writer that disabled triggers runs once.
const BumpVersion = `UPDATE ` + MetaTable + ` SET Value = Value + 1 WHERE Key = 'version'`

// Init creates the schema, or upgrades a database made by other tools in
// place: missing tables, the meta table and the triggers are added, existing
// rows are kept (names are lower-cased and stripped of a trailing dot so the
// engine's point lookups find them), and the journal becomes WAL so that
// writers never block lookups. It runs in one transaction.
func Init(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `PRAGMA journal_mode=WAL`); err != nil {
		return fmt.Errorf("set WAL journal mode: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin schema transaction: %w", err)
	}
	defer tx.Rollback()
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + MetaTable + ` (Key TEXT PRIMARY KEY, Value) WITHOUT ROWID`,
		`INSERT OR IGNORE INTO ` + MetaTable + ` VALUES ('version', 1), ('list_id', lower(hex(randomblob(8)))), ('schema', ` + fmt.Sprint(SchemaVersion) + `)`,
	}
	for _, t := range RuleTables {
		stmts = append(stmts, `CREATE TABLE IF NOT EXISTS `+verdict.TableNames[t]+` `+tableDDL[t])
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("schema: %s: %w", firstWords(s), err)
		}
	}
	// Triggers first, so that rows rewritten below bump the version, and
	// an Init that changes nothing leaves the version (and every cache
	// keyed on it) alone.
	for _, t := range RuleTables {
		for _, s := range TriggerDDL(t) {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("schema: %s: %w", firstWords(s), err)
			}
		}
	}
	for _, t := range []verdict.Table{verdict.TableDNSAllow, verdict.TableDNSBlock, verdict.TableExact, verdict.TableDomain} {
		if err := normalizeRows(ctx, tx, verdict.TableNames[t]); err != nil {
			return err
		}
	}
	return tx.Commit()
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

func firstWords(s string) string {
	f := strings.Fields(s)
	if len(f) > 6 {
		f = f[:6]
	}
	return strings.Join(f, " ")
}
