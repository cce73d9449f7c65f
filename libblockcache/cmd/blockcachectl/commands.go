package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/blockcache"
	"github.com/libblockcache/libblockcache/libblockcache/engine"
	"github.com/libblockcache/libblockcache/libblockcache/listfile"
	"github.com/libblockcache/libblockcache/libblockcache/name"
	"github.com/libblockcache/libblockcache/libblockcache/ratelog"
	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

func cmdInit(ctx context.Context, c *cli, args []string) error {
	if err := c.parse(args); err != nil {
		return err
	}
	if c.fs.NArg() != 0 {
		return usagef("init takes no arguments")
	}
	// Every row: a writer's open normalizes only tables whose triggers it
	// creates (the triggers normalize what is written after them), and a
	// tool may have written rows with the triggers dropped.
	w, err := store.InitWriter(ctx, c.cfg.DBFile)
	if err != nil {
		return err
	}
	defer w.Close()
	counts, ns, err := w.Counts(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s: schema ready, list %s, %d rules\n", c.cfg.DBFile, ns, total(counts))
	if len(w.Restored) > 0 {
		fmt.Fprintf(c.stdout, "%s had lost its version triggers: they are back, under a new version, so every dnsmasq drops the verdicts it cached before the rows written without them\n", strings.Join(w.Restored, ", "))
	}
	return nil
}

func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// ruleFlags are the flags of import and add.
type ruleFlags struct {
	table, ipv4, ipv6, server string
	exceptions                bool // import only
}

func (r *ruleFlags) register(c *cli) {
	c.fs.StringVar(&r.table, "table", "", "target table: domain_dns_allow, domain_dns_block, domain_exact, domain, domain_regex")
	c.fs.StringVar(&r.ipv4, "ipv4", "", "per-rule sinkhole IPv4 (block tables; default: db-block-ipv4)")
	c.fs.StringVar(&r.ipv6, "ipv6", "", "per-rule sinkhole IPv6 (block tables; default: db-block-ipv6)")
	c.fs.StringVar(&r.server, "server", "", "server \"ip\" or \"ip#port\" (domain_dns_block; domain_dns_allow, where it defaults to \"#\": dnsmasq's usual servers, as in server=/name/#, an allow rule that only exempts names from blocking)")
}

func (r *ruleFlags) check() (verdict.Table, error) {
	if r.table == "" {
		return 0, usagef("--table is required")
	}
	t, err := store.TableByName(r.table)
	if err != nil {
		return 0, usageError{err.Error()}
	}
	if r.exceptions && t != verdict.TableDNSAllow {
		return 0, usagef("--exceptions imports into domain_dns_allow: a list's exceptions exempt names from its blocks")
	}
	if t == verdict.TableDNSAllow && r.server == "" {
		r.server = verdict.UsualServers // an allowlist entry
	}
	forward := t.Forwards()
	if forward && r.server == "" {
		return 0, usagef("--table %s needs --server", r.table)
	}
	if !forward && r.server != "" {
		return 0, usagef("--server only applies to domain_dns_allow and domain_dns_block")
	}
	if forward && (r.ipv4 != "" || r.ipv6 != "") {
		return 0, usagef("--ipv4/--ipv6 do not apply to %s", r.table)
	}
	if r.server != "" {
		if err := verdict.ValidServer(r.server); err != nil {
			return 0, usageError{err.Error()}
		}
	}
	if r.ipv4 != "" {
		if _, err := verdict.ParseIPv4(r.ipv4); err != nil {
			return 0, usagef("--ipv4: %v", err)
		}
	}
	if r.ipv6 != "" {
		if _, err := verdict.ParseIPv6(r.ipv6); err != nil {
			return 0, usagef("--ipv6: %v", err)
		}
	}
	return t, nil
}

// parse parses the flags of a command that writes rules and checks
// them and that arguments were given.
func (r *ruleFlags) parse(c *cli, args []string, none string) (verdict.Table, error) {
	if err := c.parse(args); err != nil {
		return 0, err
	}
	t, err := r.check()
	if err != nil {
		return 0, err
	}
	if c.fs.NArg() == 0 {
		return 0, usagef("%s", none)
	}
	return t, nil
}

// maxHeldExceptions bounds the exceptions --and-exceptions holds in memory
// (~50 bytes each): feeds carry thousands; a file of nothing else is an
// allowlist, imported with --exceptions. A variable only so that a test
// can reach it with a few lines.
var maxHeldExceptions = 1 << 24

// removedAllowance is how many names a replacing import may always remove,
// whatever their share of the table: a feed that drops 3 of its 5
// exceptions did not fail to download, and the daily import must not
// stop on it. A feed cut short removes far more than this from a table
// of any size worth guarding.
const removedAllowance = 100

func cmdImport(ctx context.Context, c *cli, args []string) (err error) {
	var rf ruleFlags
	rf.register(c)
	strict := c.fs.Bool("strict", false, "any rejected line aborts the import with nothing written")
	quiet := c.fs.Bool("quiet", false, "no progress bar even on a terminal")
	replace := c.fs.Bool("replace", false, "the table (of domain_dns_allow and domain_dns_block, the rules to --server) holds exactly the imported names afterwards: names it lists that the files do not are removed (an import of no names is refused, but into an empty one)")
	offline := c.fs.Bool("offline", false, "for a list no dnsmasq reads (a master, or a new file to publish): write it without the write-ahead log, which would hold the import's pages until it commits, so a first import takes the list's size on disk once instead of twice; refused while another process has the list open")
	maxRemoved := c.fs.Float64("max-removed", 50, "with --replace: refuse, changing nothing, to remove more than this percentage of the names the table lists (100: any); removing up to 100 names is always allowed")
	dryRun := c.fs.Bool("dry-run", false, "do all of the import but its commit: print what it would change, or why it is refused, and leave the list as it is")
	andExceptions := c.fs.Bool("and-exceptions", false, "also import the files' exceptions into domain_dns_allow, to dnsmasq's usual servers (#), in the same transaction: one change, so the feeds' new blocks never come without their new exceptions; --replace and --max-removed apply to both (in domain_dns_allow to the rules to #)")
	c.fs.BoolVar(&rf.exceptions, "exceptions", false, "take the files' exceptions (AdBlock @@ rules, RPZ rpz-passthru, dnsmasq server=/name/#) instead of their blocks, into --table domain_dns_allow (--and-exceptions imports both halves at once)")
	maxRejected := c.fs.Float64("max-rejected", 50, "refuse, changing nothing, a file whose rejected entries are more than this percentage of its entries: a page or a file of another format, not a list (100: any)")
	t, err := rf.parse(c, args, "no input files (use - for stdin)")
	if err != nil {
		return err
	}
	if *dryRun && *offline {
		return usagef("--dry-run and --offline: a dry run writes nothing to take offline")
	}
	if *andExceptions && (rf.exceptions || t == verdict.TableDNSAllow || t == verdict.TableRegex) {
		return usagef("--and-exceptions imports the files' blocks into --table (domain, domain_exact or domain_dns_block) and their exceptions into domain_dns_allow")
	}
	if *maxRejected < 0 || *maxRejected > 100 {
		return usagef("--max-rejected %v: want a percentage from 0 (none) to 100 (any)", *maxRejected)
	}
	if *maxRemoved <= 0 || *maxRemoved > 100 {
		return usagef("--max-removed %v: want a percentage above 0, up to 100 (any)", *maxRemoved)
	}
	if !*replace {
		given := false
		c.fs.Visit(func(f *flag.Flag) { given = given || f.Name == "max-removed" })
		if given {
			return usagef("--max-removed applies to --replace only")
		}
	}
	kind := listfile.Domains
	if t == verdict.TableRegex {
		kind = listfile.Patterns
	}
	var sinks []netip.Addr // a hosts line to the import's own address is a block
	for _, a := range []string{rf.ipv4, rf.ipv6} {
		if ip, err := netip.ParseAddr(a); err == nil {
			sinks = append(sinks, ip.Unmap())
		}
	}
	// The inputs first: a missing file must not leave a new, empty list.
	files := c.fs.Args()
	var totalBytes int64
	for _, f := range files {
		if f == "-" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("input: %w", err)
		}
		totalBytes += fi.Size()
	}
	w, err := store.OpenWriter(ctx, c.cfg.DBFile, true)
	if err != nil {
		return err
	}
	defer w.Close()
	if *offline {
		restore, err := w.Offline(ctx)
		if err != nil {
			return err
		}
		defer func() { // after an interrupted import too
			if rerr := restore(context.WithoutCancel(ctx)); rerr != nil && err == nil {
				err = rerr
			}
		}()
	}

	prog := newProgress(c.stderr, totalBytes, *quiet)
	var readers []*listfile.Reader
	var exceptions []string // with --and-exceptions, held until the blocks are written
	var cur *listfile.Reader
	var curFile io.Closer
	var curRead func() int64 // bytes of the current file read, compressed or not
	idx := 0
	var doneBytes int64
	const maxShown = 1000 // rejected lines printed per file; the rest are counted
	shown := 0
	next := func() (string, bool, error) {
		for {
			if ctx.Err() != nil {
				return "", false, ctx.Err()
			}
			if cur == nil {
				if idx == len(files) {
					return "", false, nil
				}
				f := files[idx]
				idx++
				var in io.Reader = c.stdin
				if f != "-" {
					fh, err := os.Open(f)
					if err != nil {
						return "", false, fmt.Errorf("input: %w", err)
					}
					in, curFile = fh, fh
				} else {
					f = "stdin"
				}
				lines, read, err := input(in)
				if err != nil {
					return "", false, fmt.Errorf("input %s: %w", f, err)
				}
				cur, curRead = listfile.NewReader(lines, f, kind), read
				cur.Exact = t == verdict.TableExact
				cur.Exceptions = rf.exceptions
				cur.Sinks = sinks
				if *andExceptions {
					cur.OnOther = func(n string) { exceptions = append(exceptions, n) }
				}
				readers = append(readers, cur)
			}
			e, err := cur.Next()
			if len(exceptions) > maxHeldExceptions {
				return "", false, fmt.Errorf("%s: more than %d exceptions to hold while the blocks are written; import them apart, with --exceptions --table domain_dns_allow", cur.File, maxHeldExceptions)
			}
			for _, p := range cur.TakeProblems() {
				if *strict {
					return "", false, fmt.Errorf("%v (--strict: nothing written)", p)
				}
				if shown++; shown <= maxShown {
					fmt.Fprintf(c.stderr, "skipped %v\n", p)
				}
			}
			if err == io.EOF {
				if shown > maxShown {
					fmt.Fprintf(c.stderr, "%s: %d more rejected lines not shown\n", cur.File, shown-maxShown)
				}
				if err := tooManyRejected(cur, *maxRejected); err != nil {
					return "", false, err
				}
				doneBytes += curRead()
				if curFile != nil {
					curFile.Close()
					curFile = nil
				}
				cur, shown = nil, 0
				continue
			}
			if err != nil {
				return "", false, err
			}
			prog.update(doneBytes + curRead())
			return e, true, nil
		}
	}
	start := time.Now()
	parts := []store.ImportPart{{Table: t, Next: next, Options: store.ImportOptions{
		Rule:    store.Rule{IPv4: rf.ipv4, IPv6: rf.ipv6, Server: rf.server},
		Replace: *replace, MaxRemoved: *maxRemoved / 100, RemovedAllowance: removedAllowance, DryRun: *dryRun,
	}}}
	if *andExceptions {
		i := 0
		parts = append(parts, store.ImportPart{Table: verdict.TableDNSAllow, Next: func() (string, bool, error) {
			if i == len(exceptions) {
				return "", false, nil
			}
			i++
			return exceptions[i-1], true, nil
		}, Options: store.ImportOptions{
			Rule:    store.Rule{Server: verdict.UsualServers},
			Replace: *replace, MaxRemoved: *maxRemoved / 100, RemovedAllowance: removedAllowance, DryRun: *dryRun,
		}})
	}
	sts, err := w.ImportAll(ctx, parts...)
	st := sts[0]
	prog.finish()
	if curFile != nil {
		curFile.Close()
	}
	if err != nil {
		return fmt.Errorf("%w; the list is unchanged", err)
	}
	rejected, skipped, others := 0, 0, 0
	for _, r := range readers {
		rejected += r.Rejected
		skipped += r.Skipped
		others += r.Others
	}
	ns, _ := w.Namespace(ctx)
	el := time.Since(start)
	removed := func(st store.ImportStats) string {
		if !*replace {
			return ""
		}
		return fmt.Sprintf(", %d removed as not in the files", st.Removed)
	}
	verb := "imported"
	if *dryRun {
		verb = "dry run, nothing written: would import"
	}
	left := "" // the other half of the files, for the other import
	switch {
	case *andExceptions:
	case others > 0 && rf.exceptions:
		left = fmt.Sprintf(", %d blocks left to an import without --exceptions", others)
	case others > 0:
		left = fmt.Sprintf(", %d exceptions left out: --and-exceptions imports them too", others)
	}
	fmt.Fprintf(c.stdout, "%s %d entries into %s (%d new or changed%s, %d duplicates, %d lines rejected, %d comments/boilerplate%s) in %.1fs (%.0f/s); list %s\n",
		verb, st.Rows, rf.table, st.Changed-st.Removed, removed(st), st.Duplicates, rejected, skipped, left, el.Seconds(), float64(st.Rows)/el.Seconds(), ns)
	changed := st.Changed
	if *andExceptions {
		ex := sts[1]
		fmt.Fprintf(c.stdout, "%s %d exceptions into domain_dns_allow, to # (%d new or changed%s, %d duplicates), in the same transaction\n",
			verb, ex.Rows, ex.Changed-ex.Removed, removed(ex), ex.Duplicates)
		changed += ex.Changed
	}
	if *dryRun {
		return nil
	}
	if changed == 0 && st.Rows > 0 {
		fmt.Fprintf(c.stdout, "every entry was already listed as given: the list version is unchanged and no cache is dropped\n")
	}
	for _, st := range sts {
		switch sf := st.Filter; {
		case sf != nil && st.FilterGrown:
			fmt.Fprintf(c.stdout, "added the import's names to the filter saved in the list, as the import is too large for the change log: version %d, %d names added since it was built for %d (%.1fs of the import's time)\n", sf.Version, sf.Added, sf.Capacity, st.FilterTook.Seconds())
		case sf != nil:
			fmt.Fprintf(c.stdout, "saved the filter of list version %d (%d names, %.1f MiB) with the import, as it is too large for the change log (%.1fs of the import's time)\n", sf.Version, sf.Capacity, float64(sf.Bytes)/(1<<20), st.FilterTook.Seconds())
		}
	}
	return nil
}

// tooManyRejected refuses a file that is mostly not list entries: an error
// page saved as a feed, or a CSV. Imported, it would add nothing, or with
// --replace remove every name it used to bring, under --max-removed when
// other feeds are larger.
func tooManyRejected(r *listfile.Reader, maxPercent float64) error {
	all := r.Entries + r.Others + r.Rejected
	if r.Rejected == 0 || float64(r.Rejected)*100 <= maxPercent*float64(all) {
		return nil
	}
	return fmt.Errorf("%s: %d of its %d entries rejected, more than --max-rejected %v%%: not a list in a format import reads (one name a line, hosts, AdBlock, dnsmasq address=, RPZ, or regex for domain_regex)?", r.File, r.Rejected, all, maxPercent)
}

func cmdAdd(ctx context.Context, c *cli, args []string) error {
	var rf ruleFlags
	rf.register(c)
	t, err := rf.parse(c, args, "no names given")
	if err != nil {
		return err
	}
	var rules []store.Rule
	for _, a := range c.fs.Args() {
		k, err := normalizeKey(t, a)
		if err != nil {
			return usageError{err.Error()}
		}
		rules = append(rules, store.Rule{Key: k, IPv4: rf.ipv4, IPv6: rf.ipv6, Server: rf.server})
	}
	w, err := store.OpenWriter(ctx, c.cfg.DBFile, false) // a mistyped path must not become a new list of one name
	if err != nil {
		return err
	}
	defer w.Close()
	changed, err := w.Add(ctx, t, rules)
	if err != nil {
		return err
	}
	ns, _ := w.Namespace(ctx)
	fmt.Fprintf(c.stdout, "added %d to %s (%d already listed as given); list %s\n", changed, rf.table, len(rules)-changed, ns)
	return nil
}

func normalizeKey(t verdict.Table, a string) (string, error) {
	if t == verdict.TableRegex {
		if err := listfile.Pattern(a); err != nil {
			return "", fmt.Errorf("%q: %w", a, err)
		}
		return a, nil
	}
	if t != verdict.TableExact {
		a, _ = name.Unwild(a)
	}
	return listfile.Normalize(a)
}

func cmdRm(ctx context.Context, c *cli, args []string) error {
	table := c.fs.String("table", "", "table to remove from")
	if err := c.parse(args); err != nil {
		return err
	}
	t, err := store.TableByName(*table)
	if err != nil {
		return usageError{err.Error()}
	}
	if c.fs.NArg() == 0 {
		return usagef("no names given")
	}
	var keys []string
	for _, a := range c.fs.Args() {
		k, err := normalizeKey(t, a)
		if err != nil {
			return usageError{err.Error()}
		}
		keys = append(keys, k)
	}
	w, err := store.OpenWriter(ctx, c.cfg.DBFile, false)
	if err != nil {
		return err
	}
	defer w.Close()
	n, err := w.Remove(ctx, t, keys)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "removed %d of %d from %s\n", n, len(keys), *table)
	return nil
}

func cmdExport(ctx context.Context, c *cli, args []string) error {
	table := c.fs.String("table", "", "table to export")
	if err := c.parse(args); err != nil {
		return err
	}
	t, err := store.TableByName(*table)
	if err != nil {
		return usageError{err.Error()}
	}
	w, err := store.OpenReading(ctx, c.cfg.DBFile)
	if err != nil {
		return err
	}
	defer w.Close()
	out := bufio.NewWriterSize(c.stdout, 1<<16)
	defer out.Flush()
	return w.Export(ctx, t, func(r store.Rule) error {
		_, err := fmt.Fprintln(out, r.Key)
		return err
	})
}

func cmdPublish(ctx context.Context, c *cli, args []string) error {
	if err := c.parse(args); err != nil {
		return err
	}
	if c.fs.NArg() != 1 {
		return usagef("publish takes one DEST")
	}
	ns, counts, err := store.Publish(ctx, c.cfg.DBFile, c.fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s: published list %s, %d rules\n", c.fs.Arg(0), ns, total(counts))
	return nil
}

// writerFor parses the flags of a command that takes no arguments and
// opens its list for writing.
func (c *cli) writerFor(ctx context.Context, cmd string, args []string) (*store.Writer, error) {
	if err := c.parse(args); err != nil {
		return nil, err
	}
	if c.fs.NArg() != 0 {
		return nil, usagef("%s takes no arguments", cmd)
	}
	return store.OpenWriter(ctx, c.cfg.DBFile, false)
}

func cmdFork(ctx context.Context, c *cli, args []string) error {
	w, err := c.writerFor(ctx, "fork", args)
	if err != nil {
		return err
	}
	defer w.Close()
	before, after, err := w.Fork(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s: list %s is now list %s; no cached verdict of %s is used for it\n", c.cfg.DBFile, before, after, before.ListID)
	return nil
}

func cmdFilter(ctx context.Context, c *cli, args []string) error {
	ifNeeded := c.fs.Bool("if-needed", false, "save only when none is saved, dnsmasq cannot use it, or it holds more than half the added and changed names dnsmasq allows (for a timer: a no-op costs a read of the change log)")
	w, err := c.writerFor(ctx, "filter", args)
	if err != nil {
		return err
	}
	defer w.Close()
	if *ifNeeded {
		sf, saved, err := w.SavedFilter(ctx)
		if err == nil && saved && sf.Unusable == "" && sf.Added+int64(sf.Changed) <= sf.Capacity/8 {
			fmt.Fprintf(c.stdout, "the saved filter of version %d is current: dnsmasq adds %d changed names to it (it rebuilds past %d); not saved\n", sf.Version, sf.Changed, sf.Capacity/4-sf.Added)
			return nil
		}
	}
	start := time.Now()
	sf, err := w.SaveFilter(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "saved the filter of list version %d (%d names, %.1f MiB) in %.1fs\n", sf.Version, sf.Capacity, float64(sf.Bytes)/(1<<20), time.Since(start).Seconds())
	if sf.Odd != "" {
		fmt.Fprintf(c.stderr, "blockcachectl filter: %s holds %s\n", c.cfg.DBFile, sf.Odd)
	}
	return nil
}

// open starts a library instance like dnsmasq's, without the LRU (it is
// per process), without the pacer (no C thread calls in here, so Go's
// scheduler needs no help) and with a quiet log. A person waits on these
// commands, not a query: Valkey reads get a second, not valkey-timeout-ms,
// so that a first read on a new connection of a busy host is not taken
// for a missing key.
func (c *cli) open(ctx context.Context) (*blockcache.Cache, error) {
	cfg := c.cfg
	cfg.LRUSize = 0
	cfg.Yield = 0
	cfg.Valkey.Timeout = max(cfg.Valkey.Timeout, time.Second)
	return blockcache.Open(ctx, cfg, ratelog.New(c.stderr, 3, time.Minute))
}

// shadowed lists the other rules that match name, which the one that
// decided (v's) shadows: "domain ads.example, domain_regex ^ad". An allow
// rule's reason to exist, or the block an operator expected.
func shadowed(ctx context.Context, s *store.Store, name string, v verdict.Verdict) string {
	ms, err := s.Matches(ctx, name)
	if err != nil {
		return "(not known: " + err.Error() + ")"
	}
	var out []string
	for _, m := range ms {
		if m.Table != v.Table || m.Rule != v.Rule {
			out = append(out, m.Table.String()+" "+m.Rule)
		}
	}
	return strings.Join(out, ", ")
}

func cmdExplain(ctx context.Context, c *cli, args []string) error {
	if err := c.parse(args); err != nil {
		return err
	}
	if c.fs.NArg() == 0 {
		return usagef("no names given")
	}
	// The filter only lets unlisted names skip SQL. For the few names
	// asked here, loading it (or, with none saved, building it from every
	// row in the background) is wasted work, and its log line is noise.
	c.cfg.NoFilter = true
	bc, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer bc.Close()
	for _, n := range c.fs.Args() {
		asked, typed := wireName(n), ""
		if asked != n {
			typed = " (" + n + ")"
		}
		a, err := bc.Explain(ctx, asked)
		if err != nil {
			fmt.Fprintf(c.stdout, "%s: %v (dnsmasq resolves it normally)\n", n, err)
			continue
		}
		v := a.Verdict
		fmt.Fprintf(c.stdout, "%s%s\n  verdict: %s\n  list:    %s\n", a.Name, typed, v.Action, a.NS)
		if v.Action != verdict.Pass {
			fmt.Fprintf(c.stdout, "  table:   %s\n  rule:    %s\n", v.Table, v.Rule)
			if out := shadowed(ctx, bc.Store, a.Name, v); out != "" {
				fmt.Fprintf(c.stdout, "  shadows: %s\n", out)
			}
		}
		switch v.Action {
		case verdict.Block:
			fmt.Fprintf(c.stdout, "  answer:  A %s, AAAA %s\n", addrOr(a.IPv4), addrOr(a.IPv6))
		case verdict.Forward:
			srv := v.Server
			if srv == verdict.UsualServers {
				srv += " (dnsmasq's usual servers: exempt from blocking, resolved as usual)"
			}
			fmt.Fprintf(c.stdout, "  server:  %s\n", srv)
		}
		tier := "sqlite (computed now; the LRU is per dnsmasq process)"
		if bc.Valkey != nil {
			if _, ok := bc.Valkey.Get(ctx, engine.Key{NS: a.NS, Name: a.Name}); ok {
				tier = "valkey (a cached verdict for this list version is there)"
			} else if bc.Valkey.CircuitOpen() {
				tier += "; valkey unreachable"
			} else {
				tier += "; not cached in valkey yet"
			}
		}
		fmt.Fprintf(c.stdout, "  tier:    %s\n", tier)
	}
	return nil
}

// wireName is the name a client asks for when an operator types n: an
// internationalized name goes on the wire in its ASCII form, as add and
// import store it, so explaining "bücher.de" means explaining
// "xn--bcher-kva.de". Any other name is explained as typed.
func wireName(n string) string {
	if a, err := name.ASCII(n); err == nil {
		return a
	}
	return n
}

func addrOr(a netip.Addr) string {
	if !a.IsValid() {
		return "none (NXDOMAIN/NODATA)"
	}
	return a.String()
}

// byServer says where a forward table's rules go: "  (to #: 3, to
// 9.9.9.9: 1)", the three largest groups and the count of the rest.
func byServer(ctx context.Context, w *store.Writer, t verdict.Table) (string, error) {
	servers, err := w.Servers(ctx, t)
	if err != nil {
		return "", err
	}
	var parts []string
	var rest int64
	for i, sc := range servers {
		if i < 3 {
			parts = append(parts, fmt.Sprintf("to %s: %d", sc.Server, sc.Rules))
		} else {
			rest += sc.Rules
		}
	}
	if rest > 0 {
		parts = append(parts, fmt.Sprintf("to %d other servers: %d", len(servers)-3, rest))
	}
	return "  (" + strings.Join(parts, ", ") + ")", nil
}

func cmdStats(ctx context.Context, c *cli, args []string) error {
	noCount := c.fs.Bool("no-count", false, "leave out the row counts, which read the whole list (about a minute at a billion names)")
	if err := c.parse(args); err != nil {
		return err
	}
	w, err := store.OpenReading(ctx, c.cfg.DBFile)
	if err != nil {
		return err
	}
	defer w.Close()
	var counts map[string]int64
	var ns store.Namespace
	if *noCount {
		ns, err = w.Namespace(ctx)
	} else {
		counts, ns, err = w.Counts(ctx)
	}
	if err != nil {
		return err
	}
	stamp := fmt.Sprintf("stamp %08x", ns.Stamp)
	if ns.Stamp == 0 {
		stamp = "no stamp: a list older than " + store.StampsTable + ", which a writing blockcachectl adds"
	}
	fmt.Fprintf(c.stdout, "database: %s\nlist:     %s (%s)\n", c.cfg.DBFile, ns, stamp)
	if t, err := w.Untriggered(ctx); err != nil {
		return err
	} else if t != "" {
		fmt.Fprintf(c.stdout, "triggers: %s has lost its version triggers: its rows change without a new version, so dnsmasq reads the list as one without versions (nothing cached across changes or shared); `blockcachectl init` puts them back\n", t)
	}
	if *noCount {
		fmt.Fprintf(c.stdout, "  (rows not counted: --no-count)\n")
	} else {
		for _, t := range store.RuleTables {
			n := counts[verdict.TableNames[t]]
			by := ""
			if n > 0 && t.Forwards() {
				if by, err = byServer(ctx, w, t); err != nil {
					return err
				}
			}
			fmt.Fprintf(c.stdout, "  %-17s %12d%s\n", verdict.TableNames[t], n, by)
		}
	}
	var size int64
	for _, sfx := range []string{"", "-wal", "-shm"} {
		if fi, err := os.Stat(c.cfg.DBFile + sfx); err == nil {
			size += fi.Size()
		}
	}
	fmt.Fprintf(c.stdout, "size:     %.1f MiB (with WAL)\n", float64(size)/(1<<20))
	rows, from, to, err := w.ChangeLog(ctx)
	if err != nil {
		return err
	}
	if rows == 0 {
		fmt.Fprintf(c.stdout, "changes:  none logged (dnsmasq keeps cached verdicts across logged changes)\n")
	} else {
		fmt.Fprintf(c.stdout, "changes:  %d logged, versions %d-%d (dnsmasq keeps cached verdicts across logged changes)\n", rows, from, to)
	}
	sf, saved, err := w.SavedFilter(ctx)
	switch {
	case err != nil:
		fmt.Fprintf(c.stdout, "filter:   saved, but unreadable: %v\n", err)
	case !saved:
		fmt.Fprintf(c.stdout, "filter:   none saved (each dnsmasq start reads every row to build it; `blockcachectl filter` saves it)\n")
	case sf.Unusable == "":
		grown := ""
		if sf.Added > 0 {
			grown = fmt.Sprintf(", %d names added by imports since it was built", sf.Added)
		}
		fmt.Fprintf(c.stdout, "filter:   saved at version %d, %.1f MiB%s (dnsmasq loads it and adds %d changed names; past %d it builds its own)\n", sf.Version, float64(sf.Bytes)/(1<<20), grown, sf.Changed, sf.Capacity/4-sf.Added)
	default:
		fmt.Fprintf(c.stdout, "filter:   saved, not usable: %s (dnsmasq builds its own; `blockcachectl filter` saves it again)\n", sf.Unusable)
	}
	if sf.Odd != "" {
		fmt.Fprintf(c.stdout, "names:    %s (found when the filter was saved)\n", sf.Odd)
	}
	if !c.cfg.Valkey.Enabled() {
		fmt.Fprintf(c.stdout, "valkey:   not configured\n")
		return nil
	}
	c.cfg.NoFilter = true // only Valkey is asked from here on
	bc, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer bc.Close()
	return valkeyStats(ctx, c, bc)
}

func cmdWarm(ctx context.Context, c *cli, args []string) error {
	top := c.fs.Int("top", 0, "only the N most frequent names (0: all)")
	if err := c.parse(args); err != nil {
		return err
	}
	if c.fs.NArg() == 0 {
		return usagef("no input files (use - for stdin)")
	}
	if !c.cfg.Valkey.Enabled() {
		return usagef("warm needs Valkey: set valkey-host (--conf or --set valkey-host=...)")
	}
	counts := map[string]int{}
	for _, f := range c.fs.Args() {
		in := c.stdin
		if f != "-" {
			fh, err := os.Open(f)
			if err != nil {
				return fmt.Errorf("input: %w", err)
			}
			defer fh.Close()
			in = fh
		}
		lines, _, err := input(in)
		if err == nil {
			err = countNames(lines, counts)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if counts[names[i]] != counts[names[j]] {
			return counts[names[i]] > counts[names[j]]
		}
		return names[i] < names[j]
	})
	if *top > 0 && len(names) > *top {
		names = names[:*top]
	}
	bc, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer bc.Close()
	if bc.Valkey.CircuitOpen() {
		return fmt.Errorf("valkey %v is not reachable", c.cfg.Valkey.Addrs())
	}
	stored, invalid, err := bc.Warm(ctx, names)
	if err != nil {
		return err
	}
	s := bc.Valkey.Stats()
	fmt.Fprintf(c.stdout, "warmed %d names (%d invalid) into valkey for list %s; %d written, %d dropped\n",
		stored, invalid, bc.Store.Namespace(), s.Extra["written"], s.Extra["dropped_writes"])
	if s.Extra["dropped_writes"] > 0 || s.Extra["write_errors"] > 0 {
		return fmt.Errorf("%d writes dropped, %d failed", s.Extra["dropped_writes"], s.Extra["write_errors"])
	}
	return nil
}

// queryLog matches dnsmasq's log-queries lines: "query[A] name from addr".
var queryLog = regexp.MustCompile(`query\[[A-Z0-9]+\] (\S+) from `)

// countNames reads a plain list or a dnsmasq query log and counts names.
// A line longer than its buffer holds no name, and is skipped: a log may
// hold anything another program wrote to it.
func countNames(in io.Reader, counts map[string]int) error {
	br := bufio.NewReaderSize(in, 64*1024)
	for {
		raw, err := br.ReadSlice('\n')
		for err == bufio.ErrBufferFull {
			raw = nil
			_, err = br.ReadSlice('\n')
		}
		if err != nil && err != io.EOF {
			return err
		}
		if line := strings.TrimSpace(string(raw)); line != "" && line[0] != '#' {
			if m := queryLog.FindStringSubmatch(line); m != nil {
				counts[strings.ToLower(strings.TrimSuffix(m[1], "."))]++
			} else if !strings.ContainsAny(line, " \t") {
				counts[strings.ToLower(strings.TrimSuffix(line, "."))]++
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}
