// Package store is the authoritative tier: it answers verdicts from the
// SQLite blocklist, read-only, and keeps track of the list version so that
// every verdict it returns is tagged with the version it was computed from.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/name"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// Namespace identifies one content version of one list. Cache tiers key on
// it, so two nodes share a cached verdict only when they run the same list
// (same list_id, written at `init` and copied with the file) at the same
// version of the same history (Stamp: StampsTable).
type Namespace struct {
	ListID  string
	Version uint64
	Stamp   uint32 // the version's random stamp; 0 when the list has none
}

func (n Namespace) String() string { return fmt.Sprintf("%s/%d", n.ListID, n.Version) }

// Options configures Open.
type Options struct {
	Path         string
	PollInterval time.Duration // how often to look for list changes; default 250ms
	MmapSize     int64         // PRAGMA mmap_size per connection; 0 leaves SQLite's default (off)
	BusyTimeout  time.Duration // bound on a lookup waiting for a writer's lock (rollback-journal DBs only)
	MaxConns     int           // reader connections; default 4
	NoFilter     bool          // do not build the membership filter of listed names
	Logf         func(format string, args ...any)
}

// Stats are the store's counters.
type Stats struct {
	Lookups        uint64
	Errors         uint64
	Reloads        uint64
	RegexPatterns  int
	RegexSkipped   int
	Namespace      Namespace
	HasMeta        bool
	LoadedAt       time.Time
	VersionRetries uint64
	FilterSkips    uint64 // lookups answered without SQL thanks to the filter
	FilterBuilds   uint64 // filters put in use, from the rows or loaded
	FilterLoads    uint64 // of those, loaded from FilterTable instead of read from every row
	FilterBytes    int64  // 0 while no filter is ready for the current version
	Reopens        uint64 // the file at Path was replaced (rename, symlink flip) and opened anew
	// Deltas counts version changes read from the change log: the filter
	// grew by their names, and cached verdicts they did not touch stay.
	Deltas uint64
	// OddNames is how many listed names no query can match, as the last
	// read of every name (or, without the meta table, of the first names)
	// found; 0 when a saved filter was loaded instead.
	OddNames int64
}

// Store reads the blocklist. All methods are safe for concurrent use.
type Store struct {
	opts Options

	snap atomic.Pointer[snapshot]

	refreshMu    sync.Mutex // serializes refresh; guards the fields below
	file         *dbFile    // the file lookups are answered from
	rejected     fileID     // a replacement that failed to open, not retried until it changes
	missing      bool       // Path was gone at the last check (logged once)
	walWait      fileID     // a replacement waiting for the old file's WAL to empty (logged once)
	localVersion uint64     // for databases without the meta table
	localListID  string
	forkOf       string       // a list_id whose version went back (see forkedID)
	forkID       string       // the identity this process gives that list since
	filterGen    uint64       // the current line of versions (snapshot.filterGen)
	building     uint64       // filterGen of the filter build in flight; 0: none
	built        *builtFilter // a finished build waiting for the list to reach its version
	noLogSaid    bool         // the list has no change log (logged once)
	oddSampled   *dbFile      // the file whose first names sampleOdd checked

	lookups, errs, reloads, retries, reopens       atomic.Uint64
	filterSkips, filterBuilds, filterLoads, deltas atomic.Uint64
	oddSaid                                        atomic.Int64  // odd keys the last full read (or sample) found
	savedWarned                                    atomic.Uint64 // 1 + the saved filter's version last reported unusable

	stop   chan struct{}
	done   chan struct{}
	builds sync.WaitGroup // filter builds and closes of replaced files in flight: Close waits for them
}

// snapshot is everything derived from one list version; swapped atomically.
type snapshot struct {
	ns       Namespace
	hasMeta  bool
	hasLog   bool // ChangesTable exists
	stamped  bool // StampsTable exists
	tables   [verdict.TableRegex + 1]bool
	regex    *regexSet
	q        *queries
	loadedAt time.Time
	// untriggered names a rule table whose version triggers are gone:
	// the list has a version, but its rows change without it, and it is
	// read as a list without one (hasMeta false).
	untriggered string
	// filter holds every name of this version (and maybe names removed
	// since it was built: false positives only); nil until one is ready.
	filter atomic.Pointer[filter]
	// filterGen names a line of versions in one file, each reached from
	// the one before by a logged change (ChangesTable). They share one
	// filter, which grows by each change's names, and a filter built at
	// any of them serves a later one once that gap's names are added.
	filterGen uint64
	// Cached verdicts of older versions that are still this version's
	// (StillValid): those of version validFrom or later for which neither
	// the name nor a parent is in changed, the keys changed since
	// validFrom, with a version no older than the one they last changed in.
	validFrom uint64
	changed   map[string]uint64
	// stamps holds the stamp of each version from validFrom on, so that
	// a verdict of an older version is used only if it was cached from
	// this history (StampsTable).
	stamps stampRun
}

// builtFilter is a finished filter build: it holds the names of version.
type builtFilter struct {
	f       *filter
	version uint64
	gen     uint64
	saved   bool // loaded from FilterTable, not read from every row
}

// maxVersionRetries bounds how often one lookup starts again because the
// list changed between reading the snapshot and the rows; then rowsVersion
// answers from the rows alone if it can.
const maxVersionRetries = 3

// ErrNotFound and ErrNotDatabase let callers print a precise message.
var (
	ErrNotFound    = errors.New("database file not found")
	ErrNotDatabase = errors.New("not an SQLite blocklist database")
)

var errClosed = errors.New("blocklist store closed")

// ErrListChanging fails a lookup that a writer kept outrunning when the
// change log cannot show that the regex rules stayed the same meanwhile
// (rowsVersion): the caller passes the name, uncached, rather than answer
// with two list versions.
var ErrListChanging = errors.New("the list kept changing during the lookup")

// Open opens the database read-only and loads its first snapshot. It fails
// with a clear error for a missing, unreadable or non-SQLite file.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.PollInterval <= 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 20 * time.Millisecond
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 4
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	s := &Store{opts: o, stop: make(chan struct{}), done: make(chan struct{})}
	f, err := openFile(ctx, o)
	if err != nil {
		return nil, err
	}
	// Said at a start only: a file that replaces the list is a published
	// copy, in rollback-journal mode and never written, every time.
	if f.journal != "" {
		o.Logf("blockcache: %s uses journal_mode=%s: a writer on this file briefly blocks lookups (fine for a published copy that is never written; `blockcachectl init` switches a live list to WAL)", o.Path, f.journal)
	}
	s.file = f
	b := make([]byte, 8)
	rand.Read(b)
	s.localListID = "local-" + hex.EncodeToString(b)
	if err := s.refresh(ctx, true); err != nil {
		f.close()
		return nil, err
	}
	go s.watch()
	return s, nil
}

// Namespace is the list version lookups are currently answered from.
func (s *Store) Namespace() Namespace { return s.snap.Load().ns }

// Match is one rule that matches a name.
type Match struct {
	Table verdict.Table
	Rule  string // the listed name, or the pattern
}

// Matches returns every rule of the current version that matches n (a
// name as name.Query gives it), in precedence order: the first is the one
// a lookup answers with, the others are outranked. An operator who
// allowed a name, or wonders why a listed one is not blocked, sees both
// sides. For tooling: one query per table and suffix, and every regex
// rule tried.
func (s *Store) Matches(ctx context.Context, n string) ([]Match, error) {
	snap := s.snap.Load()
	sfx := name.Suffixes(n) // longest first, as lookups prefer them
	var out []Match
	for _, t := range RuleTables {
		if !snap.tables[t] {
			continue
		}
		if t == verdict.TableRegex {
			for _, r := range snap.regex.rules {
				if r.re.MatchString(n) {
					out = append(out, Match{Table: t, Rule: r.pattern})
				}
			}
			continue
		}
		keys := sfx
		if t == verdict.TableExact {
			keys = sfx[:1]
		}
		for _, k := range keys {
			var hit int
			err := snap.q.db.QueryRowContext(ctx, `SELECT 1 FROM `+verdict.TableNames[t]+` WHERE Domain = ?`, k).Scan(&hit)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", verdict.TableNames[t], err)
			}
			out = append(out, Match{Table: t, Rule: k})
		}
	}
	return out, nil
}

// watch polls PRAGMA data_version, which changes on this connection exactly
// when another connection committed to the file. It costs microseconds, so
// a short interval keeps list changes visible well inside two seconds.
func (s *Store) watch() {
	defer close(s.done)
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.refresh(ctx, false); err != nil {
				s.errs.Add(1)
				s.opts.Logf("blockcache: checking list version: %v", err)
			}
			cancel()
		}
	}
}

// Refresh re-reads the list now (SIGHUP); unchanged lists are kept.
func (s *Store) Refresh(ctx context.Context) error { return s.refresh(ctx, false) }

func (s *Store) refresh(ctx context.Context, force bool) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	select {
	case <-s.stop:
		return errClosed // no new filter build after Close has waited
	default:
	}
	old := s.file
	if f, err := s.replacement(ctx); err != nil {
		return err
	} else if f != nil {
		s.file, force = f, true
	}
	f := s.file
	fail := func(err error) error {
		if f != old { // keep answering from the old file
			s.rejected, s.file = f.id, old
			f.close()
			return fmt.Errorf("%s was replaced, but the new file cannot be read (still answering from the old one): %w", s.opts.Path, err)
		}
		return err
	}
	var dv int64
	if err := f.poll.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&dv); err != nil {
		return fail(fmt.Errorf("read data_version: %w", err))
	}
	if !force && dv == f.lastDataVersion {
		return nil
	}
	cur := s.snap.Load()
	next, delta, regexChanged, err := s.load(ctx, f, cur)
	if err != nil {
		return fail(err)
	}
	f.lastDataVersion = dv
	if !force && cur != nil && cur.ns == next.ns && cur.tables == next.tables && next.hasMeta {
		return nil // a commit that did not touch the rules (e.g. another table)
	}
	if !next.hasMeta {
		s.localVersion++
		next.ns = Namespace{ListID: s.localListID, Version: s.localVersion}
	}
	if cur != nil && cur.q.db == f.db && cur.tables == next.tables && cur.hasMeta == next.hasMeta {
		next.q = cur.q // same statements still apply
	} else {
		next.q = &queries{db: f.db, tables: next.tables, hasMeta: next.hasMeta}
	}
	for i, p := range next.regex.skipped {
		if cur != nil && next.regex == cur.regex {
			break // logged when it was read
		}
		s.opts.Logf("blockcache: domain_regex pattern %q skipped: %v", p, next.regex.skipErrs[i])
	}
	if next.untriggered != "" && (cur == nil || cur.untriggered == "") {
		s.opts.Logf("blockcache: %s: table %s has lost its version triggers (dropped by a tool?), so its rows change without a new list version: the list is read as one without versions (every change drops every cached verdict, and no verdict is shared through Valkey) until `blockcachectl init --db %s` puts them back", s.opts.Path, next.untriggered, s.opts.Path)
	}
	if next.hasMeta && !next.hasLog && !s.noLogSaid {
		s.noLogSaid = true
		s.opts.Logf("blockcache: %s has no change log (%s), so every list change drops every cached verdict and rebuilds the filter; `blockcachectl init` adds it", s.opts.Path, ChangesTable)
	}
	if delta != nil && f == old && cur.tables == next.tables {
		s.carry(cur, next, delta, regexChanged)
	} else {
		s.filterGen++
		next.filterGen = s.filterGen
		if !next.hasMeta {
			next.validFrom = next.ns.Version
		}
	}
	s.snap.Store(next)
	s.reloads.Add(1)
	if !next.hasMeta && f != s.oddSampled {
		s.oddSampled = f
		s.sampleOdd(ctx, f.db, next.tables)
	}
	if f != old {
		s.reopens.Add(1)
		s.opts.Logf("blockcache: %s was replaced; now answering from the new file (list %s)", s.opts.Path, next.ns)
		// Lookups that took the old snapshot may still be reading the old
		// file: closing its statements waits for them, off this lock.
		s.builds.Add(1)
		go func() {
			defer s.builds.Done()
			cur.q.close()
			old.close()
		}()
	} else if cur != nil && cur.q != next.q {
		cur.q.close()
	}
	if next.hasMeta && !s.opts.NoFilter {
		if fl := next.filter.Load(); (fl == nil || fl.worn()) && s.building != next.filterGen {
			s.startBuild(next)
		}
		s.attach(ctx)
	}
	return nil
}

// forkedID returns the identity that caches key the list listID at
// version v on. It is listID, unless this list's version went back: an
// older copy of the list was put in place (a restored backup, a rollback
// published over a newer file), and the versions after it will now be
// numbered again with other contents. A verdict cached from the other
// history at one of those numbers, in the LRU or in Valkey, would then be
// taken for the new one's. So from then on this process gives the list an
// identity of its own, which no cache holds a verdict for, and says how
// to give the file one (`blockcachectl fork`) so that nodes share cached
// verdicts again. (With StampsTable the stamps would already tell the two
// histories apart; this process's own LRU is keyed apart all the same,
// and a list without the table has nothing else.) The caller holds
// refreshMu.
func (s *Store) forkedID(base *snapshot, listID string, v uint64, stamped bool) string {
	id := listID
	if id != "" && id == s.forkOf {
		id = s.forkID
	}
	if base == nil || !base.hasMeta || base.ns.ListID != id || v >= base.ns.Version {
		return id
	}
	b := make([]byte, 4)
	rand.Read(b)
	s.forkOf, s.forkID = listID, listID+"~"+hex.EncodeToString(b)
	later := "a node that starts later tells the two histories apart by their stamps"
	if !stamped {
		later = "until then a node that starts later can be served verdicts cached from the other history (this list has no " + StampsTable + " table to tell them apart; `blockcachectl init` adds it)"
	}
	s.opts.Logf("blockcache: list %s went back from version %d to %d (an older copy put in place?); the versions after %d will name other contents than the ones verdicts were cached for, so this process now keeps its cached verdicts apart, as list %s. Run `blockcachectl fork --db %s` to give the restored list an identity of its own, and the fleet shares this list's cached verdicts again; %s", listID, base.ns.Version, v, v, s.forkID, s.opts.Path, later)
	return s.forkID
}

// beginRead begins a read transaction that only its Rollback ends, not a
// cancel of ctx. database/sql rolls back a cancelled transaction on a
// goroutine of its own; racing with Close, that left the connection, and
// the list's files, open for good (about one Close in a hundred during a
// filter build, with the CPUs busy). The statements take ctx, so a cancel
// still interrupts them.
func beginRead(ctx context.Context, b interface {
	BeginTx(context.Context, *sql.TxOptions) (*sql.Tx, error)
}) (*sql.Tx, error) {
	return b.BeginTx(context.WithoutCancel(ctx), &sql.TxOptions{ReadOnly: true})
}

// load reads the meta row, the table set and the regex rules in one read
// transaction, so the regex set belongs to exactly the version it is tagged
// with. When base is an older version of the same list in the same file
// and every change since is logged, it also returns the changed keys
// (non-nil, maybe empty), and whether the regex rules changed among them.
func (s *Store) load(ctx context.Context, f *dbFile, base *snapshot) (next *snapshot, delta []string, regexChanged bool, err error) {
	tx, err := beginRead(ctx, f.poll)
	if err != nil {
		return nil, nil, false, fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	next = &snapshot{regex: &regexSet{}, loadedAt: time.Now()}
	names, triggers, err := schemaNames(ctx, tx)
	if err != nil {
		return nil, nil, false, err
	}
	next.tables = ruleTablesIn(names)
	next.hasMeta, next.hasLog, next.stamped = names[MetaTable], names[ChangesTable], names[StampsTable]
	if next.tables == [len(next.tables)]bool{} && !next.hasMeta {
		// An empty file is a valid SQLite database, and so is another
		// program's: answering from either would unlist every name without
		// a word. At a start that is refused; a file replaced by one is
		// rejected and the old list keeps answering.
		return nil, nil, false, notAList(s.opts.Path)
	}
	if next.hasMeta {
		next.untriggered = untriggered(next.tables, triggers)
		// Rows written without the triggers changed the list under the
		// version caches key it on: read it as a list without versions.
		next.hasMeta = next.untriggered == ""
	}
	next.stamped = next.stamped && next.hasMeta
	if next.hasMeta {
		var v int64
		var id sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT (SELECT Value FROM `+MetaTable+` WHERE Key = 'version'), (SELECT Value FROM `+MetaTable+` WHERE Key = 'list_id')`).Scan(&v, &id)
		if err != nil {
			return nil, nil, false, fmt.Errorf("read list version: %w", err)
		}
		next.ns = Namespace{ListID: s.forkedID(base, id.String, uint64(v), next.stamped), Version: uint64(v)}
		if id.String == "" {
			next.ns.ListID = s.localListID
		}
	}
	if next.hasLog && base != nil && base.hasMeta && next.hasMeta && base.q.db == f.db && base.ns.ListID == next.ns.ListID {
		keys, ok, regex, err := readDelta(ctx, tx, base.ns.Version, next.ns.Version)
		if err != nil {
			s.opts.Logf("blockcache: %v (every cached verdict is dropped at this change)", err)
		} else if ok {
			delta, regexChanged = keys, regex
		}
	}
	if delta != nil && !regexChanged && base.tables == next.tables {
		// carry joins these to base's stamps. The run holds next's
		// version even when it is base's (a commit that changed no rule).
		next.stamps = s.loadStamps(ctx, tx, next, min(base.ns.Version+1, next.ns.Version))
		next.regex = base.regex // no regex change in between: compiling them again is the costly part of a change
		return next, delta, regexChanged, nil
	}
	next.validFrom = next.ns.Version
	if next.hasLog && next.hasMeta {
		if next.changed, next.validFrom, err = readHistory(ctx, tx, next.ns.Version); err != nil {
			s.opts.Logf("blockcache: %v (cached verdicts of older versions are not used)", err)
			next.changed, next.validFrom = nil, next.ns.Version
		}
	}
	next.stamps = s.loadStamps(ctx, tx, next, next.validFrom)
	if next.tables[verdict.TableRegex] {
		rows, err := tx.QueryContext(ctx, `SELECT Pattern, IPv4, IPv6 FROM domain_regex ORDER BY Pattern`)
		if err != nil {
			return nil, nil, false, fmt.Errorf("read domain_regex: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var p string
			var v4, v6 sql.NullString
			if err := rows.Scan(&p, &v4, &v6); err != nil {
				return nil, nil, false, fmt.Errorf("read domain_regex: %w", err)
			}
			a4, a6 := s.parseIPs("domain_regex", p, v4.String, v6.String)
			next.regex.addRule(p, a4, a6)
		}
		if err := rows.Err(); err != nil {
			return nil, nil, false, fmt.Errorf("read domain_regex: %w", err)
		}
	}
	return next, delta, regexChanged, nil
}

// schemaNames reads the lower-case names of the list's tables and of its
// triggers.
func schemaNames(ctx context.Context, q querier) (tables, triggers map[string]bool, err error) {
	rows, err := q.QueryContext(ctx, `SELECT type, lower(name) FROM sqlite_master WHERE type IN ('table', 'trigger')`)
	if err != nil {
		return nil, nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	tables, triggers = map[string]bool{}, map[string]bool{}
	for rows.Next() {
		var typ, n string
		if err := rows.Scan(&typ, &n); err != nil {
			return nil, nil, fmt.Errorf("list tables: %w", err)
		}
		if typ == "trigger" {
			triggers[n] = true
		} else {
			tables[n] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list tables: %w", err)
	}
	return tables, triggers, nil
}

// ruleTablesIn says which rule tables are among names.
func ruleTablesIn(names map[string]bool) (in [verdict.TableRegex + 1]bool) {
	for _, t := range RuleTables {
		in[t] = names[verdict.TableNames[t]]
	}
	return in
}

// untriggered returns the first of tables whose version triggers
// (TriggerNames' first three: every release has named them so) are not
// all in triggers, or "".
func untriggered(tables [verdict.TableRegex + 1]bool, triggers map[string]bool) string {
	for _, t := range RuleTables {
		if !tables[t] {
			continue
		}
		for _, n := range TriggerNames(t)[:3] {
			if !triggers[n] {
				return verdict.TableNames[t]
			}
		}
	}
	return ""
}

// loadStamps reads the stamps of next's versions from from on, in next's
// read transaction, and gives next.ns its version's stamp. A table it
// cannot read (another tool's table of that name) costs shared and older
// cached verdicts, not the list: with no stamps, next takes no verdict
// cached under one, and its own carry none.
func (s *Store) loadStamps(ctx context.Context, tx *sql.Tx, next *snapshot, from uint64) stampRun {
	if !next.stamped {
		return stampRun{}
	}
	r, err := readStamps(ctx, tx, from, next.ns.Version)
	if err != nil {
		s.opts.Logf("blockcache: %v (version %d is read without stamps: no verdict cached under one is used)", err, next.ns.Version)
		return stampRun{}
	}
	next.ns.Stamp = r.of(next.ns.Version)
	return r
}

// parseIPs reads a rule's sinkhole addresses; a bad one is logged and
// replaced by the global default rather than failing the whole rule.
func (s *Store) parseIPs(table, rule, v4, v6 string) (a4, a6 netip.Addr) {
	if v4 = strings.TrimSpace(v4); v4 != "" {
		if a, err := verdict.ParseIPv4(v4); err == nil {
			a4 = a
		} else {
			s.opts.Logf("blockcache: %s %q: IPv4 %q is not an IPv4 address; using the default", table, rule, v4)
		}
	}
	if v6 = strings.TrimSpace(v6); v6 != "" {
		if a, err := verdict.ParseIPv6(v6); err == nil {
			a6 = a
		} else {
			s.opts.Logf("blockcache: %s %q: IPv6 %q is not an IPv6 address; using the default", table, rule, v6)
		}
	}
	return a4, a6
}

// Resolve computes the verdict for a normalized name and reports the list
// version it was computed from. The rule tables are read by one SQL
// statement, so all of them come from one database snapshot, and that
// statement also returns the version; if it is newer than the snapshot the
// regex rules came from, the snapshot is refreshed first (or, when a writer
// keeps outrunning the lookup, rowsVersion answers from the rows' version)
// so verdicts of two versions are never mixed.
func (s *Store) Resolve(ctx context.Context, n string) (verdict.Verdict, Namespace, error) {
	s.lookups.Add(1)
	for attempt := 0; ; attempt++ {
		snap := s.snap.Load()
		if f := snap.filter.Load(); f != nil && !f.anySuffix(n) {
			s.filterSkips.Add(1)
			return snap.withRegex(n, verdict.Verdict{}), snap.ns, nil
		}
		v, ver, err := s.queryTables(ctx, snap, n)
		if err != nil && attempt == 0 && errors.Is(err, errReplaced) {
			s.refresh(ctx, false) // switch now rather than at the next poll
		}
		if err != nil && attempt == 0 && s.snap.Load() != snap {
			continue // a refresh closed this snapshot's statements (or file) under us
		}
		if err != nil {
			s.errs.Add(1)
			return verdict.Verdict{}, snap.ns, err
		}
		if snap.hasMeta && ver != snap.ns.Version {
			// The rows are of another version than the snapshot (its
			// regex rules, its tag): never answer with that mix.
			if attempt == maxVersionRetries {
				return s.rowsVersion(ctx, snap, n, v, ver)
			}
			s.retries.Add(1)
			if err := s.refresh(ctx, false); err != nil {
				s.errs.Add(1)
				return verdict.Verdict{}, snap.ns, err
			}
			continue
		}
		return snap.withRegex(n, v), snap.ns, nil
	}
}

// withRegex is v, or the block of the first regex rule matching n when the
// tables let n pass: regex rules come last.
func (snap *snapshot) withRegex(n string, v verdict.Verdict) verdict.Verdict {
	if v.Action != verdict.Pass {
		return v
	}
	if r, ok := snap.regex.match(n); ok {
		return verdict.Verdict{Action: verdict.Block, Table: verdict.TableRegex, IPv4: r.ipv4, IPv6: r.ipv6, Rule: r.pattern}
	}
	return v
}

// rowsVersion answers from rows of version ver, newer than snap, when a
// writer commits faster than lookups can catch up with it: the rows decide
// alone when a table matched (the regex rules come last), and with the
// snapshot's regex rules when the change log shows they did not change in
// between; the answer is tagged ver. Otherwise the lookup fails (pass,
// uncached, counted).
func (s *Store) rowsVersion(ctx context.Context, snap *snapshot, n string, v verdict.Verdict, ver uint64) (verdict.Verdict, Namespace, error) {
	// The answer's namespace. Its stamp is read apart, on this rare path,
	// rather than by every lookup's statement: a version's stamp never
	// changes once committed. Unread, 0 only makes the answer's cached
	// copies useless.
	tagged := func() Namespace {
		ns := Namespace{ListID: snap.ns.ListID, Version: ver}
		if snap.stamped {
			r, _ := readStamps(ctx, snap.q.db, ver, ver)
			ns.Stamp = r.of(ver)
		}
		return ns
	}
	if ver > snap.ns.Version && v.Action != verdict.Pass {
		return v, tagged(), nil
	}
	if ver > snap.ns.Version && snap.hasLog {
		if _, ok, regex, err := readDelta(ctx, snap.q.db, snap.ns.Version, ver); err == nil && ok && !regex {
			return snap.withRegex(n, v), tagged(), nil
		}
	}
	s.errs.Add(1)
	return verdict.Verdict{}, snap.ns, fmt.Errorf("lookup %q: %w (%d attempts; the change log cannot show the regex rules unchanged)", n, ErrListChanging, maxVersionRetries+1)
}

func (s *Store) queryTables(ctx context.Context, snap *snapshot, n string) (verdict.Verdict, uint64, error) {
	var best verdict.Verdict
	sfx := name.Suffixes(n)
	pl, err := snap.q.get(ctx, len(sfx))
	if err != nil || pl.stmt == nil {
		return best, snap.ns.Version, err
	}
	args := make([]any, pl.nargs)
	for i := range args {
		args[i] = sfx[i]
	}
	rows, err := pl.stmt.QueryContext(ctx, args...)
	if err != nil {
		return best, 0, fmt.Errorf("lookup %q: %w", n, err)
	}
	defer rows.Close()
	ver := snap.ns.Version
	for rows.Next() {
		var t int
		var dom, server, v4, v6 sql.NullString
		if err := rows.Scan(&t, &dom, &server, &v4, &v6); err != nil {
			return best, 0, fmt.Errorf("lookup %q: %w", n, err)
		}
		if t == 0 { // the meta row: the version of this very snapshot
			if ver, err = strconv.ParseUint(v4.String, 10, 64); err != nil {
				return best, 0, fmt.Errorf("lookup %q: list version %q: %w", n, v4.String, err)
			}
			continue
		}
		tb := verdict.Table(t)
		if best.Action != verdict.Pass && (tb > best.Table || tb == best.Table && len(dom.String) <= len(best.Rule)) {
			continue
		}
		cand := verdict.Verdict{Table: tb, Rule: dom.String}
		switch tb {
		case verdict.TableDNSAllow, verdict.TableDNSBlock:
			srv := strings.TrimSpace(server.String)
			if err := verdict.ValidServer(srv); err != nil {
				s.opts.Logf("blockcache: %s %q: %v; rule ignored", tb, dom.String, err)
				continue
			}
			cand.Action, cand.Server = verdict.Forward, srv
		default:
			cand.Action = verdict.Block
			cand.IPv4, cand.IPv6 = s.parseIPs(tb.String(), dom.String, v4.String, v6.String)
		}
		best = cand
	}
	if err := rows.Err(); err != nil {
		return best, 0, fmt.Errorf("lookup %q: %w", n, err)
	}
	return best, ver, nil
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	snap := s.snap.Load()
	st := Stats{
		Lookups: s.lookups.Load(), Errors: s.errs.Load(), Reloads: s.reloads.Load(),
		RegexPatterns: len(snap.regex.rules), RegexSkipped: len(snap.regex.skipped),
		Namespace: snap.ns, HasMeta: snap.hasMeta, LoadedAt: snap.loadedAt,
		VersionRetries: s.retries.Load(), FilterSkips: s.filterSkips.Load(), FilterBuilds: s.filterBuilds.Load(),
		FilterLoads: s.filterLoads.Load(),
		Reopens:     s.reopens.Load(), Deltas: s.deltas.Load(), OddNames: s.oddSaid.Load(),
	}
	if f := snap.filter.Load(); f != nil {
		st.FilterBytes = f.bytes()
	}
	return st
}

// Close stops the version watcher and any filter build, then closes the
// database, and returns once no connection holds the file open (a host
// that reopens or removes the file, or a test's temporary directory,
// relies on that).
func (s *Store) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	<-s.done
	s.refreshMu.Lock() // a Refresh in flight may still start a build
	//lint:ignore SA2001 a barrier: wait for it, then builds.Wait sees its build
	s.refreshMu.Unlock()
	s.builds.Wait()
	s.snap.Load().q.close()
	return s.file.close()
}

// queries holds the lookup statement for each suffix count of one table set.
type queries struct {
	db      *sql.DB
	tables  [verdict.TableRegex + 1]bool
	hasMeta bool
	mu      sync.Mutex
	byK     map[int]preparedLookup
}

type preparedLookup struct {
	stmt  *sql.Stmt
	nargs int // SQLite counts parameters up to the highest index used
}

func (q *queries) get(ctx context.Context, k int) (preparedLookup, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if pl, ok := q.byK[k]; ok {
		return pl, nil
	}
	text, nargs := lookupSQL(q.tables, q.hasMeta, k)
	if text == "" {
		return preparedLookup{}, nil
	}
	st, err := q.db.PrepareContext(ctx, text)
	if err != nil {
		return preparedLookup{}, fmt.Errorf("prepare lookup for %d labels: %w", k, err)
	}
	if q.byK == nil {
		q.byK = make(map[int]preparedLookup)
	}
	pl := preparedLookup{stmt: st, nargs: nargs}
	q.byK[k] = pl
	return pl, nil
}

func (q *queries) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, pl := range q.byK {
		pl.stmt.Close()
	}
	q.byK = nil
}

// lookupSQL builds the one statement that probes every present rule table
// for a name of k labels: ?1 is the full name, ?1..?k its suffixes. Every
// probe is its own primary-key point lookup joined by UNION ALL: an IN
// list would make SQLite build an ephemeral index on every execution,
// which costs more than the lookups themselves.
func lookupSQL(tables [verdict.TableRegex + 1]bool, hasMeta bool, k int) (text string, nargs int) {
	var parts []string
	each := func(sel, table string) {
		for i := 1; i <= k; i++ {
			parts = append(parts, fmt.Sprintf("%s FROM %s WHERE Domain = ?%d", sel, table, i))
		}
	}
	if tables[verdict.TableDNSAllow] {
		each("SELECT 1, Domain, Server, NULL, NULL", "domain_dns_allow")
	}
	if tables[verdict.TableDNSBlock] {
		each("SELECT 2, Domain, Server, NULL, NULL", "domain_dns_block")
	}
	if tables[verdict.TableExact] {
		parts = append(parts, "SELECT 3, Domain, NULL, IPv4, IPv6 FROM domain_exact WHERE Domain = ?1")
	}
	if tables[verdict.TableDomain] {
		each("SELECT 4, Domain, NULL, IPv4, IPv6", "domain")
	}
	if len(parts) == 0 && !hasMeta {
		return "", 0
	}
	if hasMeta {
		parts = append(parts, "SELECT 0, NULL, NULL, CAST(Value AS TEXT), NULL FROM "+MetaTable+" WHERE Key = 'version'")
	}
	nargs = 0
	if tables[verdict.TableExact] {
		nargs = 1
	}
	if tables[verdict.TableDNSAllow] || tables[verdict.TableDNSBlock] || tables[verdict.TableDomain] {
		nargs = k
	}
	return strings.Join(parts, " UNION ALL "), nargs
}
