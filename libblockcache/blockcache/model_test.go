package blockcache

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/config"
	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/valkeytest"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// Every verdict, not only block or pass, must be the one its list version
// gives by the README's rules, whichever tier answers: a writer changes
// rows of every table at random (inserts, deletes, renames, updates of
// addresses and servers, names written in upper case, bad addresses and
// servers, regex rules, bare version bumps, imports as blockcachectl makes
// them) over a small tree of names where rules of one table shadow
// another's on parents and children, and records each committed version's
// rows. Readers ask names of the tree and names below it, in any case,
// while the list changes. Each answer is then checked against a plain model
// of the precedence rules, run on the rows of the version the answer is
// tagged with. The nodes answer from an LRU, from a Valkey that two of them
// share, or from both, and read the list the writer changes or a copy of it
// published now and then; one of them is flushed (SIGHUP) now and then.
func TestEveryVerdictIsItsVersions(t *testing.T) {
	poll := func(cfg *config.Config) { cfg.PollInterval = 5 * time.Millisecond }
	withValkey := func(port int) func(*config.Config) {
		return func(cfg *config.Config) {
			cfg.Valkey.Host, cfg.Valkey.Port, cfg.Valkey.Timeout = "127.0.0.1", port, 50*time.Millisecond
		}
	}
	t.Run("lru", func(t *testing.T) {
		path, db := testlist.New(t)
		modelRun(t, 1, modelList{path: path, db: db}, open(t, path, poll),
			open(t, path, func(cfg *config.Config) { poll(cfg); cfg.NoFilter = true }),
			open(t, path, func(cfg *config.Config) { poll(cfg); cfg.LRUSize = 16 })) // evicts all the time
	})
	t.Run("valkey", func(t *testing.T) {
		srv := valkeytest.Start(t)
		path, db := testlist.New(t)
		node := func() *Cache {
			return open(t, path, func(cfg *config.Config) { poll(cfg); cfg.LRUSize = 0; withValkey(srv.Port)(cfg) })
		}
		modelRun(t, 2, modelList{path: path, db: db}, node(), node())
	})
	t.Run("valkey-cluster", func(t *testing.T) {
		cl := valkeytest.StartCluster(t)
		path, db := testlist.New(t)
		node := func() *Cache {
			return open(t, path, func(cfg *config.Config) {
				poll(cfg)
				cfg.LRUSize, cfg.Valkey.Timeout = 0, 50*time.Millisecond
				cfg.Valkey.Cluster = strings.Split(cl.Seeds(), ",")
			})
		}
		modelRun(t, 5, modelList{path: path, db: db}, node(), node())
	})
	t.Run("lru+valkey", func(t *testing.T) {
		srv := valkeytest.Start(t)
		path, db := testlist.New(t)
		node := func() *Cache { return open(t, path, func(cfg *config.Config) { poll(cfg); withValkey(srv.Port)(cfg) }) }
		modelRun(t, 3, modelList{path: path, db: db}, node(), node())
	})
	// The list is changed in a staging copy and published over the file
	// the nodes read now and then: every change reaches them as a file
	// replaced, many versions at once.
	t.Run("published", func(t *testing.T) {
		srv := valkeytest.Start(t)
		path, db := testlist.New(t)
		live := filepath.Join(t.TempDir(), "live.db")
		if _, _, err := store.Publish(context.Background(), path, live); err != nil {
			t.Fatal(err)
		}
		node := func() *Cache { return open(t, live, func(cfg *config.Config) { poll(cfg); withValkey(srv.Port)(cfg) }) }
		modelRun(t, 4, modelList{path: path, db: db, publishTo: live}, node(), node())
	})
}

// modelList is the list a model run changes.
type modelList struct {
	path      string
	db        *sql.DB
	publishTo string // when set, path is published over it now and then
}

// modelRule is one row as the model reads it: addresses and server as
// written, so that the model, not the library, decides what a bad one
// means.
type modelRule struct{ v4, v6, server sql.NullString }

// modelRows is the rows of one version: by table, then by name or pattern.
type modelRows [verdict.TableRegex + 1]map[string]modelRule

func (l modelRows) clone() modelRows {
	var c modelRows
	for t := range l {
		c[t] = make(map[string]modelRule, len(l[t]))
		for k, r := range l[t] {
			c[t][k] = r
		}
	}
	return c
}

func (l modelRows) equal(o modelRows) bool {
	for t := range l {
		if !maps.Equal(l[t], o[t]) {
			return false
		}
	}
	return true
}

// readRows reads every row of the list and its version, in one
// transaction.
func readRows(t *testing.T, db *sql.DB) (modelRows, uint64) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var v uint64
	if err := tx.QueryRow(`SELECT Value FROM ` + store.MetaTable + ` WHERE Key = 'version'`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	var l modelRows
	for tb := verdict.TableDNSAllow; tb <= verdict.TableRegex; tb++ {
		l[tb] = map[string]modelRule{}
		q := `SELECT Domain, IPv4, IPv6, NULL FROM ` + verdict.TableNames[tb]
		switch {
		case tb.Forwards():
			q = `SELECT Domain, NULL, NULL, Server FROM ` + verdict.TableNames[tb]
		case tb == verdict.TableRegex:
			q = `SELECT Pattern, IPv4, IPv6, NULL FROM domain_regex`
		}
		rows, err := tx.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k string
			var r modelRule
			if err := rows.Scan(&k, &r.v4, &r.v6, &r.server); err != nil {
				t.Fatal(err)
			}
			l[tb][k] = r
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return l, v
}

// decide is the README's precedence, written for clarity rather than
// speed: the first table with a usable rule wins, in the order dns_allow,
// dns_block, exact, domain, regex; within a suffix table the longest
// matching suffix; among regex rules the first pattern in the table's
// order.
func (l modelRows) decide(n string) verdict.Verdict {
	suffixes := []string{n}
	for i := range len(n) {
		if n[i] == '.' {
			suffixes = append(suffixes, n[i+1:])
		}
	}
	ip := func(s sql.NullString, want4 bool) netip.Addr {
		a, err := netip.ParseAddr(strings.TrimSpace(s.String))
		if err != nil || a.Is4() != want4 || a.Is4In6() {
			return netip.Addr{} // NULL, empty or bad: the global sinkhole
		}
		return a
	}
	block := func(t verdict.Table, r modelRule) verdict.Verdict {
		return verdict.Verdict{Action: verdict.Block, Table: t, IPv4: ip(r.v4, true), IPv6: ip(r.v6, false)}
	}
	for _, t := range []verdict.Table{verdict.TableDNSAllow, verdict.TableDNSBlock} {
		for _, s := range suffixes { // longest first
			if r, ok := l[t][s]; ok && verdict.ValidServer(strings.TrimSpace(r.server.String)) == nil {
				return verdict.Verdict{Action: verdict.Forward, Table: t, Server: strings.TrimSpace(r.server.String)}
			}
		}
	}
	if r, ok := l[verdict.TableExact][n]; ok {
		return block(verdict.TableExact, r)
	}
	for _, s := range suffixes {
		if r, ok := l[verdict.TableDomain][s]; ok {
			return block(verdict.TableDomain, r)
		}
	}
	patterns := make([]string, 0, len(l[verdict.TableRegex]))
	for p := range l[verdict.TableRegex] {
		patterns = append(patterns, p)
	}
	slices.Sort(patterns)
	for _, p := range patterns {
		if p != strings.ToLower(p) {
			p2 := "(?i)" + p
			if regexp.MustCompile(p2).MatchString(n) {
				return block(verdict.TableRegex, l[verdict.TableRegex][p])
			}
			continue
		}
		if regexp.MustCompile(p).MatchString(n) {
			return block(verdict.TableRegex, l[verdict.TableRegex][p])
		}
	}
	return verdict.Verdict{}
}

func modelRun(t *testing.T, seed uint64, ml modelList, nodes ...*Cache) {
	ctx := context.Background()
	db := ml.db
	w, err := store.OpenWriter(ctx, ml.path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The tree: example and test, and every name of up to three labels
	// a or b under them: 30 names whose rules cover each other.
	var tree []string
	var grow func(n string, depth int)
	grow = func(n string, depth int) {
		tree = append(tree, n)
		if depth < 3 {
			grow("a."+n, depth+1)
			grow("b."+n, depth+1)
		}
	}
	grow("example", 0)
	grow("test", 0)
	var deep []string
	for _, n := range tree {
		if strings.Count(n, ".") >= 2 {
			deep = append(deep, n)
		}
	}
	patterns := []string{`^a\.`, `^B\.A\.`, `b\.test$`, `^x\.b`}
	v4s := []sql.NullString{{}, {Valid: true}, {String: "10.0.0.1", Valid: true}, {String: "10.0.0.2", Valid: true}, {String: "bogus", Valid: true}, {String: "fd00::1", Valid: true}}
	v6s := []sql.NullString{{}, {String: "fd00::1", Valid: true}, {String: "10.0.0.1", Valid: true}}
	servers := []string{"#", "9.9.9.9", "1.1.1.3#5353", " 192.0.2.53 ", "not a server"}

	list := modelRows{}
	for tb := range list {
		list[tb] = map[string]modelRule{}
	}
	var mu sync.Mutex
	truth := map[uint64]modelRows{}
	// record notes the rows of the version just committed. After a
	// change made with SQL the file must hold what the model does (the
	// triggers store names as lookups ask for them); after an import the
	// model takes the file's rows, whatever the import's rules made them.
	record := func(imported bool) {
		got, v := readRows(t, db)
		if imported {
			list = got
		} else if !got.equal(list) {
			t.Fatalf("version %d holds %v, want %v", v, got, list)
		}
		mu.Lock()
		truth[v] = list.clone()
		mu.Unlock()
	}
	record(false)

	type seen struct {
		name, asked string
		version     uint64
		got         verdict.Verdict
		tier        verdict.Tier
	}
	var seenMu sync.Mutex
	var all []seen
	failed := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// A writer's t.Fatal must not leave readers asking closed caches.
	stopReaders := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopReaders()
	for g := range 2 * len(nodes) {
		c := nodes[g%len(nodes)]
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 2))
			var mine []seen
			fails := 0
			defer func() { seenMu.Lock(); all = append(all, mine...); failed += fails; seenMu.Unlock() }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := tree[r.IntN(len(tree))]
				if r.IntN(3) == 0 {
					n = "x." + n // never a row itself: only suffixes and patterns decide it
				}
				asked := n
				switch r.IntN(4) {
				case 0:
					asked = strings.ToUpper(n)
				case 1:
					asked = n + "."
				}
				a, err := c.Lookup(ctx, asked)
				if errors.Is(err, store.ErrListChanging) {
					fails++ // a counted fallback, not an answer
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", asked, err)
					return
				}
				mine = append(mine, seen{n, asked, a.NS.Version, a.Verdict, a.Tier})
				if len(mine)%64 == 0 {
					// Leave the writer and the pollers some CPU; this
					// also bounds the test's memory on a fast machine.
					time.Sleep(100 * time.Microsecond)
				}
			}
		}(uint64(g))
	}

	r := rand.New(rand.NewPCG(seed, 11))
	ruleTables := []verdict.Table{verdict.TableDNSAllow, verdict.TableDNSBlock, verdict.TableExact, verdict.TableDomain}
	exec := func(tx *sql.Tx, q string, args ...any) {
		if _, err := tx.Exec(q, args...); err != nil {
			t.Fatalf("%s %v: %v", q, args, err)
		}
	}
	// change makes one random change to a row of table tb, in tx and in
	// the model.
	change := func(tx *sql.Tx, tb verdict.Table) {
		table := verdict.TableNames[tb]
		key := "Domain"
		keys := tree
		if tb == verdict.TableRegex {
			key, keys = "Pattern", patterns
		}
		k := keys[r.IntN(len(keys))]
		if tb != verdict.TableRegex && r.IntN(6) != 0 {
			k = deep[r.IntN(len(deep))] // rules on the roots would shadow most of the tree
		}
		old, ok := list[tb][k]
		row := modelRule{v4: v4s[r.IntN(len(v4s))], v6: v6s[r.IntN(len(v6s))]}
		if tb.Forwards() {
			row = modelRule{server: sql.NullString{String: servers[r.IntN(len(servers))], Valid: true}}
		}
		to := keys[r.IntN(len(keys))]
		if _, taken := list[tb][to]; ok && !taken && r.IntN(4) == 0 {
			// A rename changes two names' verdicts in one row.
			exec(tx, `UPDATE `+table+` SET `+key+` = ? WHERE `+key+` = ?`, to, k)
			delete(list[tb], k)
			list[tb][to] = old
			return
		}
		switch {
		case ok && r.IntN(3) != 0:
			exec(tx, `DELETE FROM `+table+` WHERE `+key+` = ?`, k)
			delete(list[tb], k)
		case ok && tb.Forwards():
			exec(tx, `UPDATE `+table+` SET Server = ? WHERE Domain = ?`, row.server, k)
			list[tb][k] = row
		case ok && r.IntN(2) == 0:
			exec(tx, `UPDATE `+table+` SET IPv4 = ? WHERE `+key+` = ?`, row.v4, k)
			old.v4 = row.v4
			list[tb][k] = old
		case ok:
			exec(tx, `UPDATE `+table+` SET IPv6 = ? WHERE `+key+` = ?`, row.v6, k)
			old.v6 = row.v6
			list[tb][k] = old
		case tb.Forwards() && r.IntN(6) != 0, r.IntN(3) != 0:
			// Inserted less often than deleted: a sparse list leaves
			// names to every table, and forward rules, which shadow all
			// the others, sparser still.
		default:
			written := k
			if tb != verdict.TableRegex && r.IntN(3) == 0 {
				written = strings.ToUpper(k) + "." // the triggers store it as lookups ask
			}
			if tb.Forwards() {
				exec(tx, `INSERT INTO `+table+` VALUES (?, ?)`, written, row.server)
			} else {
				exec(tx, `INSERT INTO `+table+` VALUES (?, ?, ?)`, written, row.v4, row.v6)
			}
			list[tb][k] = row
		}
	}
	// importSome imports a few names into a table as `blockcachectl
	// import` does (its triggers dropped, one bump, its own log rows),
	// replacing the table's names or adding to them.
	importSome := func(tb verdict.Table) {
		keys := deep
		var rule store.Rule
		switch {
		case tb == verdict.TableRegex:
			keys = patterns
			rule.IPv4 = []string{"", "10.0.0.3"}[r.IntN(2)]
		case tb.Forwards():
			rule.Server = []string{"#", "9.9.9.9", "1.1.1.3#5353"}[r.IntN(3)]
		default:
			rule.IPv4, rule.IPv6 = []string{"", "10.0.0.3"}[r.IntN(2)], []string{"", "fd00::3"}[r.IntN(2)]
		}
		var feed []string
		for range 1 + r.IntN(6) {
			feed = append(feed, keys[r.IntN(len(keys))])
		}
		next := func() (string, bool, error) {
			if len(feed) == 0 {
				return "", false, nil
			}
			k := feed[0]
			feed = feed[1:]
			return k, true, nil
		}
		if _, err := w.Import(ctx, tb, next, store.ImportOptions{Rule: rule, Replace: r.IntN(2) == 0}); err != nil {
			t.Fatalf("import into %v: %v", tb, err)
		}
	}
	allTables := append(ruleTables, verdict.TableRegex)
	imports, publishes, flushes := 0, 0, 0
	for step := 0; step < 300; step++ {
		k := r.IntN(25)
		if k <= 2 {
			importSome(allTables[r.IntN(len(allTables))])
			imports++
			record(true)
		} else {
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case k == 3:
				exec(tx, store.BumpVersion)
			case k <= 6:
				change(tx, verdict.TableRegex)
			default:
				for range 1 + r.IntN(4) {
					change(tx, ruleTables[r.IntN(len(ruleTables))])
				}
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			record(false)
		}
		if ml.publishTo != "" && r.IntN(5) == 0 {
			if _, _, err := store.Publish(ctx, ml.path, ml.publishTo); err != nil {
				t.Fatal(err)
			}
			publishes++
		}
		if r.IntN(20) == 0 { // dnsmasq's SIGHUP, while readers ask
			if err := nodes[0].Flush(ctx); err != nil {
				t.Fatal(err)
			}
			flushes++
		}
		time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
	}
	time.Sleep(50 * time.Millisecond)
	stopReaders()

	wrong, byTier, byTable := 0, map[verdict.Tier]int{}, map[verdict.Table]int{}
	for _, s := range all {
		l, ok := truth[s.version]
		if !ok {
			t.Fatalf("answer tagged with version %d, which no commit made", s.version)
		}
		want := l.decide(s.name)
		got := s.got
		got.Rule = ""
		if got != want {
			if wrong++; wrong <= 5 {
				t.Errorf("%q at version %d from %v: %+v, want %+v", s.asked, s.version, s.tier, got, want)
			}
		}
		byTier[s.tier]++
		byTable[want.Table]++
	}
	var revalidated, deltas, reopens uint64
	for _, c := range nodes {
		st := c.Stats()
		revalidated += st.LRURevalidated + st.ValkeyRevalidated
		deltas += st.Store.Deltas
		reopens += st.Store.Reopens
	}
	t.Logf("%d answers (%v; by table %v), %d wrong, %d lookups failed (list changing); %d versions (%d imports, %d publishes, %d flushes), %d read as deltas, %d files reopened, %d revalidated",
		len(all), byTier, byTable, wrong, failed, len(truth), imports, publishes, flushes, deltas, reopens, revalidated)
	if revalidated == 0 || byTier[verdict.TierLRU]+byTier[verdict.TierValkey] == 0 {
		t.Error("the run did not exercise revalidation")
	}
	if ml.publishTo == "" && deltas == 0 || ml.publishTo != "" && reopens == 0 {
		t.Error("the run did not exercise the changes it makes")
	}
	for tb := verdict.TableNone; tb <= verdict.TableRegex; tb++ {
		if byTable[tb] == 0 {
			t.Errorf("no answer came from %v: the run did not exercise it", tb)
		}
	}
}
