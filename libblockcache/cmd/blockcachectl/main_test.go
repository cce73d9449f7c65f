package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/valkeytest"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// ctl runs the CLI in-process and returns its exit code and output.
func ctl(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func count(t *testing.T, db, table string) int {
	t.Helper()
	h, err := sql.Open("sqlite3", db)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var n int
	if err := h.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func version(t *testing.T, db string) string {
	t.Helper()
	h, _ := sql.Open("sqlite3", db)
	defer h.Close()
	var v string
	h.QueryRow(`SELECT Value FROM blockcache_meta WHERE Key = 'version'`).Scan(&v)
	return v
}

func journalMode(t *testing.T, db string) string {
	t.Helper()
	h, _ := sql.Open("sqlite3", db)
	defer h.Close()
	var m string
	if err := h.QueryRow(`PRAGMA journal_mode`).Scan(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

const awkward = "\xef\xbb\xbfAds.Example.COM.\r\n" +
	"# comment\r\n" +
	"\t0.0.0.0\ttracker.example  other.example # trailing\n" +
	"127.0.0.1 localhost\n" +
	"||adblock.example^\n" +
	"||opt.example^$third-party\n" +
	"bücher.example\n" +
	"ads.example.com\n" + // duplicate after normalization
	"this-label-is-way-too-long-this-label-is-way-too-long-this-label-is-way-too-long.example\n" +
	"\n"

func TestImportLenientAndStrict(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	code, out, errs := ctl(t, awkward, "import", "--db", db, "--table", "domain", "-")
	if code != 0 {
		t.Fatalf("lenient import: %d %s %s", code, out, errs)
	}
	if n := count(t, db, "domain"); n != 5 {
		t.Fatalf("%d rows, want 5 (ads.example.com tracker other adblock xn--bcher-kva)", n)
	}
	for _, want := range []string{"stdin:6:", "AdBlock rule options", "stdin:9:"} {
		if !strings.Contains(errs, want) {
			t.Errorf("report lacks %q:\n%s", want, errs)
		}
	}
	if !strings.Contains(out, "1 duplicates, 2 lines rejected") {
		t.Errorf("summary: %s", out)
	}
	v := version(t, db)
	code, _, errs = ctl(t, awkward, "import", "--db", db, "--table", "domain_exact", "--strict", "-")
	if code != 1 || !strings.Contains(errs, "nothing written") {
		t.Fatalf("strict import: %d %s", code, errs)
	}
	if count(t, db, "domain_exact") != 0 || version(t, db) != v {
		t.Fatal("a failed strict import changed the list")
	}
	// every command bumps the version
	ctl(t, "", "add", "--db", db, "--table", "domain_exact", "x.example")
	if version(t, db) == v {
		t.Fatal("add did not bump the version")
	}
}

// import --replace: the feed's dropped names go, with the count; a feed
// cut short is refused (exit 1, list unchanged) unless --max-removed
// allows it, or it removes no more than the allowance.
func TestImportReplace(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	// feed lists a<from>.example to a<to>.example, and more.
	feed := func(from, to int, more ...string) string {
		var b strings.Builder
		for i := from; i <= to; i++ {
			fmt.Fprintf(&b, "a%d.example\n", i)
		}
		for _, m := range more {
			b.WriteString(m + "\n")
		}
		return b.String()
	}
	if code, _, errs := ctl(t, feed(1, 300), "import", "--db", db, "--table", "domain", "-"); code != 0 {
		t.Fatal(errs)
	}
	code, out, errs := ctl(t, feed(2, 300, "e.example"), "import", "--replace", "--db", db, "--table", "domain", "-")
	if code != 0 || !strings.Contains(out, "(1 new or changed, 1 removed as not in the files,") || count(t, db, "domain") != 300 {
		t.Fatalf("replace: %d %q %q", code, out, errs)
	}
	v := version(t, db)
	for _, c := range []struct {
		in   string
		args []string
		code int
		err  string
	}{
		{feed(2, 100), []string{"--replace"}, 1, "would remove more names than allowed; nothing was changed: 201 of the 300 names in domain (67%, at most 50% allowed)"},
		{"# a feed of comments only\n", []string{"--replace"}, 1, "a replacing import of no names would empty the table"},
		{"e.example\n", []string{"--replace", "--max-removed", "0"}, 2, "--max-removed 0: want a percentage above 0"},
		{"e.example\n", []string{"--max-removed", "100"}, 2, "--max-removed applies to --replace only"},
	} {
		args := append([]string{"import", "--db", db, "--table", "domain"}, append(c.args, "-")...)
		code, out, errs := ctl(t, c.in, args...)
		if code != c.code || !strings.Contains(errs, c.err) {
			t.Errorf("%.20q %v: exit %d %q %q, want %d and %q", c.in, c.args, code, out, errs, c.code, c.err)
		}
		if version(t, db) != v || count(t, db, "domain") != 300 {
			t.Errorf("%.20q %v changed the list", c.in, c.args)
		}
	}
	// A dry run says what the import would do, or why it is refused, and
	// writes nothing: the triggers the import drops while it runs are back.
	triggers := count(t, db, "sqlite_master WHERE type = 'trigger'")
	code, out, errs = ctl(t, feed(3, 300, "e.example", "f.example"), "import", "--replace", "--dry-run", "--db", db, "--table", "domain", "-")
	if code != 0 || !strings.Contains(out, "dry run, nothing written: would import 300 entries into domain (1 new or changed, 1 removed as not in the files,") {
		t.Errorf("dry run: %d %q %q", code, out, errs)
	}
	code, out, errs = ctl(t, "e.example\n", "import", "--replace", "--dry-run", "--db", db, "--table", "domain", "-")
	if code != 1 || !strings.Contains(errs, "would remove more names than allowed") {
		t.Errorf("refused dry run: %d %q %q", code, out, errs)
	}
	if code, _, errs := ctl(t, "e.example\n", "import", "--dry-run", "--offline", "--db", db, "--table", "domain", "-"); code != 2 || !strings.Contains(errs, "--dry-run and --offline") {
		t.Errorf("--dry-run --offline: %d %q", code, errs)
	}
	if version(t, db) != v || count(t, db, "domain") != 300 || triggers == 0 || count(t, db, "sqlite_master WHERE type = 'trigger'") != triggers {
		t.Fatal("a dry run changed the list")
	}
	if code, out, errs := ctl(t, "e.example\n", "import", "--replace", "--max-removed", "100", "--db", db, "--table", "domain", "-"); code != 0 || !strings.Contains(out, "299 removed") || count(t, db, "domain") != 1 {
		t.Errorf("--max-removed 100: %d %q %q", code, out, errs)
	}
	// In a table of a few names, a few removed are most of it, and allowed.
	if code, _, errs := ctl(t, feed(1, 4), "import", "--replace", "--db", db, "--table", "domain", "-"); code != 0 || count(t, db, "domain") != 4 {
		t.Fatalf("a few names: %d %q", code, errs)
	}
	if code, out, errs := ctl(t, feed(1, 1), "import", "--replace", "--db", db, "--table", "domain", "-"); code != 0 || !strings.Contains(out, "3 removed") || count(t, db, "domain") != 1 {
		t.Errorf("3 of 4 names removed, under the allowance: %d %q %q", code, out, errs)
	}
}

// writeFile writes content to dir/name and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A file that is mostly not list entries (an error page saved as a feed, a
// CSV) is refused as a whole, so that with --replace it cannot silently
// unlist the names it used to bring; a line too long to be an entry is one
// rejected line; the report of a file of bad lines is cut short.
func TestImportRefusesWhatIsNotAList(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "list.db")
	write := func(name, content string) string { return writeFile(t, dir, name, content) }
	big := write("big.txt", "a.example\nb.example\nc.example\nd.example\n")
	small := write("small.txt", "e.example\n")
	if code, _, errs := ctl(t, "", "import", "--replace", "--db", db, "--table", "domain", big, small); code != 0 {
		t.Fatal(errs)
	}
	v := version(t, db)
	page := write("page.txt", "<html>\n<body>Service unavailable</body>\n</html>\ne.example\n")
	csv := write("list.csv", "f.example,ads\ng.example,tracking\n")
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--replace", big, page}, 1, page + ": 3 of its 4 entries rejected, more than --max-rejected 50%"},
		{[]string{csv}, 1, csv + ": 2 of its 2 entries rejected, more than --max-rejected 50%"},
		{[]string{"--max-rejected", "101", csv}, 2, "--max-rejected 101: want a percentage from 0 (none) to 100 (any)"},
		{[]string{"--max-rejected", "0", write("one-bad.txt", "h.example\nbad,name\n")}, 1, "1 of its 2 entries rejected, more than --max-rejected 0%"},
	} {
		args := append([]string{"import", "--db", db, "--table", "domain"}, c.args...)
		code, out, errs := ctl(t, "", args...)
		if code != c.code || !strings.Contains(errs, c.err) {
			t.Errorf("%v: exit %d %q %q, want %d and %q", c.args, code, out, errs, c.code, c.err)
		}
		if c.code == 1 && !strings.Contains(errs, "the list is unchanged") {
			t.Errorf("%v: %q does not say the list is unchanged", c.args, errs)
		}
		if version(t, db) != v || count(t, db, "domain") != 5 {
			t.Fatalf("%v changed the list", c.args)
		}
	}

	long := write("long.txt", "i.example\n"+strings.Repeat("x", 2<<20)+"\nj.example\n")
	code, out, errs := ctl(t, "", "import", "--db", db, "--table", "domain", long)
	if code != 0 || !strings.Contains(out, "imported 2 entries") || !strings.Contains(errs, long+":2: line too long for a list entry") {
		t.Errorf("a long line: exit %d %q %q", code, out, errs)
	}

	var bad strings.Builder
	for i := 0; i < 1500; i++ {
		fmt.Fprintf(&bad, "bad,%d\n", i)
	}
	code, out, errs = ctl(t, bad.String(), "import", "--max-rejected", "100", "--db", db, "--table", "domain", "-")
	if code != 0 || !strings.Contains(out, "1500 lines rejected") || strings.Count(errs, "skipped ") != 1000 || !strings.Contains(errs, "stdin: 500 more rejected lines not shown") {
		t.Errorf("1500 bad lines with --max-rejected 100: exit %d %q, %d lines reported, ends %q", code, out, strings.Count(errs, "skipped "), errs[max(0, len(errs)-200):])
	}
}

// --offline is refused, with the list unchanged, while anything else has
// the list open; alone, it imports and leaves the list in WAL.
// A feed with exceptions is two imports: its blocks into domain, its
// exceptions into domain_dns_allow to dnsmasq's usual servers, which
// outrank the blocks.
func TestImportExceptions(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "list.db")
	feed := writeFile(t, dir, "feed.txt", "||ads.example^\n@@||ok.ads.example^\nserver=/fine.ads.example/#\ntracker.example\n")
	code, out, errs := ctl(t, "", "import", "--db", db, "--table", "domain", feed)
	if code != 0 || !strings.Contains(out, "imported 2 entries into domain") || !strings.Contains(out, "2 exceptions left out: --and-exceptions imports them too") || errs != "" {
		t.Fatalf("blocks: exit %d %q %q", code, out, errs)
	}
	code, out, errs = ctl(t, "", "import", "--replace", "--db", db, "--table", "domain_dns_allow", "--exceptions", feed)
	if code != 0 || !strings.Contains(out, "imported 2 entries into domain_dns_allow") || !strings.Contains(out, "2 blocks left to an import without --exceptions") || errs != "" {
		t.Fatalf("exceptions: exit %d %q %q", code, out, errs)
	}
	code, out, _ = ctl(t, "", "explain", "--db", db, "www.ok.ads.example", "fine.ads.example", "ads.example")
	if code != 0 || strings.Count(out, "verdict: forward") != 2 || strings.Count(out, "server:  # (dnsmasq's usual servers") != 2 || !strings.Contains(out, "verdict: block") {
		t.Errorf("explain: exit %d %q", code, out)
	}
	// explain shows the block an allow rule shadows.
	ctl(t, "", "add", "--db", db, "--table", "domain_regex", `^www\.`)
	code, out, _ = ctl(t, "", "explain", "--db", db, "www.ok.ads.example")
	if want := "  rule:    ok.ads.example\n  shadows: domain ads.example, domain_regex ^www\\.\n"; code != 0 || !strings.Contains(out, want) {
		t.Errorf("explain: exit %d %q, want %q", code, out, want)
	}
	if _, out, _ = ctl(t, "", "explain", "--db", db, "tracker.example"); strings.Contains(out, "shadows:") {
		t.Errorf("a name one rule matches: %q", out)
	}
	ctl(t, "", "rm", "--db", db, "--table", "domain_regex", `^www\.`)

	// The feed drops its exceptions: --replace removes them, and an
	// import of none into a table that has none is no error.
	none := writeFile(t, dir, "none.txt", "||ads.example^\n")
	if code, out, errs := ctl(t, "", "import", "--replace", "--max-removed", "100", "--db", db, "--table", "domain_dns_allow", "--exceptions", feed, none); code != 0 || count(t, db, "domain_dns_allow") != 2 {
		t.Fatalf("again: exit %d %q %q", code, out, errs)
	}
	if code, out, errs := ctl(t, "", "import", "--replace", "--max-removed", "100", "--db", db, "--table", "domain_dns_allow", "--exceptions", none); code != 1 || !strings.Contains(errs, "would empty the table") {
		t.Errorf("no exceptions left, into a table of 2: exit %d %q %q", code, out, errs)
	}
	if code, _, errs := ctl(t, "", "rm", "--db", db, "--table", "domain_dns_allow", "ok.ads.example", "fine.ads.example"); code != 0 {
		t.Fatal(errs)
	}
	v := version(t, db)
	if code, out, errs := ctl(t, "", "import", "--replace", "--db", db, "--table", "domain_dns_allow", "--exceptions", none); code != 0 || !strings.Contains(out, "imported 0 entries") || version(t, db) != v {
		t.Errorf("no exceptions into an empty table: exit %d %q %q, version %s then %s", code, out, errs, v, version(t, db))
	}

	// A server of the operator's choosing, and the tables that take none.
	if code, _, errs := ctl(t, "", "import", "--db", db, "--table", "domain_dns_allow", "--exceptions", "--server", "9.9.9.9", feed); code != 0 {
		t.Fatal(errs)
	}
	if code, out, _ := ctl(t, "", "explain", "--db", db, "ok.ads.example"); !strings.Contains(out, "server:  9.9.9.9\n") {
		t.Errorf("--server 9.9.9.9: exit %d %q", code, out)
	}
	for _, table := range []string{"domain", "domain_dns_block", "domain_regex"} {
		if code, _, errs := ctl(t, "", "import", "--db", db, "--table", table, "--exceptions", feed); code != 2 || !strings.Contains(errs, "--exceptions imports into domain_dns_allow") {
			t.Errorf("--exceptions into %s: exit %d %q", table, code, errs)
		}
	}
	// The other half counts as entries of a list, not as rejected lines.
	mostlyBlocks := writeFile(t, dir, "mostly-blocks.txt", "@@||x.example^\na.example\nb.example\nc.example\nd.example\n<p>\n<p>\n")
	if code, out, errs := ctl(t, "", "import", "--db", db, "--table", "domain_dns_allow", "--exceptions", mostlyBlocks); code != 0 || !strings.Contains(out, "imported 1 entries") {
		t.Errorf("1 exception, 4 blocks, 2 bad lines: exit %d %q %q", code, out, errs)
	}
	// add takes "#" too, and it is domain_dns_allow's default.
	if code, _, errs := ctl(t, "", "add", "--db", db, "--table", "domain_dns_allow", "--server", "#", "hand.ads.example"); code != 0 {
		t.Errorf("add --server '#': exit %d %q", code, errs)
	}
	if code, _, errs := ctl(t, "", "add", "--db", db, "--table", "domain_dns_allow", "hand2.ads.example"); code != 0 {
		t.Errorf("add without --server: exit %d %q", code, errs)
	}
	if code, _, errs := ctl(t, "", "add", "--db", db, "--table", "domain_dns_block", "hand3.ads.example"); code != 2 || !strings.Contains(errs, "--table domain_dns_block needs --server") {
		t.Errorf("domain_dns_block without --server: exit %d %q", code, errs)
	}
	if code, out, _ := ctl(t, "", "explain", "--db", db, "hand2.ads.example"); !strings.Contains(out, "server:  # (") {
		t.Errorf("hand2.ads.example: exit %d %q", code, out)
	}
	// stats says which allow rules are allowlist entries.
	if code, out, _ := ctl(t, "", "stats", "--db", db); !strings.Contains(out, "  domain_dns_allow             5  (to #: 3, to 9.9.9.9: 2)\n") || !strings.Contains(out, "  domain_dns_block             0\n") {
		t.Errorf("stats: exit %d %q", code, out)
	}
}

// explain, stats and export only read: a user who may read the list, and
// not write it, as dnsmasq's own user, can run them. The -wal and -shm
// files are shared by every reader of a live list (here a held
// connection).
func TestReadingCommandsReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run blockcachectl as another user")
	}
	bin := buildCtl(t)
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir), filepath.Dir(bin), filepath.Dir(filepath.Dir(bin))} {
		os.Chmod(d, 0o755) // the test's directories are its user's alone
	}
	db := filepath.Join(dir, "list.db")
	ctl(t, "", "init", "--db", db)
	ctl(t, "", "add", "--db", db, "--table", "domain", "ads.example")
	ctl(t, "", "add", "--db", db, "--table", "domain_dns_allow", "ok.ads.example")
	held := testlist.Open(t, db)
	if _, err := held.Exec(`SELECT count(*) FROM domain`); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{db + "-wal", db + "-shm"} {
		if err := os.Chmod(f, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(db, 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"explain", "--db", db, "www.ok.ads.example"}, "shadows: domain ads.example"},
		{[]string{"stats", "--db", db}, "domain_dns_allow             1  (to #: 1)"},
		{[]string{"export", "--db", db, "--table", "domain"}, "ads.example"},
	} {
		cmd := exec.Command(bin, c.args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s as uid 65534: %v\n%s", c.args[0], err, out)
		}
	}
}

// --and-exceptions: a feed's blocks and exceptions in one transaction,
// from one reading of the files (stdin too). A refused half leaves the
// other unwritten.
func TestImportAndExceptions(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "list.db")
	feed := "||ads.example^\n@@||ok.ads.example^\nserver=/fine.ads.example/#\ntracker.example\n<p>\n"
	code, out, errs := ctl(t, feed, "import", "--replace", "--and-exceptions", "--db", db, "--table", "domain", "-")
	if code != 0 || !strings.Contains(out, "imported 2 entries into domain (2 new or changed, 0 removed as not in the files, 0 duplicates, 1 lines rejected, 0 comments/boilerplate)") ||
		!strings.Contains(out, "imported 2 exceptions into domain_dns_allow, to # (2 new or changed, 0 removed as not in the files, 0 duplicates), in the same transaction") {
		t.Fatalf("exit %d %q %q", code, out, errs)
	}
	if count(t, db, "domain") != 2 || count(t, db, "domain_dns_allow") != 2 {
		t.Fatalf("%d blocks, %d allow rules", count(t, db, "domain"), count(t, db, "domain_dns_allow"))
	}
	v := version(t, db)

	// The feed drops every exception and adds a block: the exceptions
	// half is refused as a download cut short, and the new block is not
	// written either.
	code, out, errs = ctl(t, "||ads.example^\ntracker.example\nnew.example\n", "import", "--replace", "--and-exceptions", "--db", db, "--table", "domain", "-")
	if code != 1 || !strings.Contains(errs, "domain_dns_allow: a replacing import of no names would empty the table") || version(t, db) != v || count(t, db, "domain") != 2 {
		t.Errorf("no exceptions left: exit %d %q %q; version %s (was %s), %d blocks", code, out, errs, version(t, db), v, count(t, db, "domain"))
	}
	// A dry run says what both halves would do.
	code, out, _ = ctl(t, feed+"@@||new-ok.example^\n", "import", "--replace", "--and-exceptions", "--dry-run", "--db", db, "--table", "domain", "-")
	if code != 0 || !strings.Contains(out, "would import 3 exceptions into domain_dns_allow, to # (1 new or changed") || version(t, db) != v {
		t.Errorf("dry run: exit %d %q", code, out)
	}
	// A file of exceptions past the bound is an allowlist: refused, with
	// the way to import it.
	defer func(n int) { maxHeldExceptions = n }(maxHeldExceptions)
	maxHeldExceptions = 2
	code, _, errs = ctl(t, "@@||a.example^\n@@||b.example^\n@@||c.example^\nd.example\n", "import", "--and-exceptions", "--db", db, "--table", "domain", "-")
	if code != 1 || !strings.Contains(errs, "stdin: more than 2 exceptions to hold while the blocks are written; import them apart, with --exceptions --table domain_dns_allow") || version(t, db) != v {
		t.Errorf("past the bound: exit %d %q", code, errs)
	}
	for _, args := range [][]string{
		{"--table", "domain_dns_allow", "--and-exceptions"},
		{"--table", "domain_dns_allow", "--and-exceptions", "--exceptions"},
		{"--table", "domain_regex", "--and-exceptions"},
	} {
		if code, _, errs := ctl(t, "", append(append([]string{"import", "--db", db}, args...), "-")...); code != 2 || !strings.Contains(errs, "--and-exceptions imports the files' blocks into --table") {
			t.Errorf("%v: exit %d %q", args, code, errs)
		}
	}
}

func TestImportOffline(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	if code, _, errs := ctl(t, "a.example\n", "import", "--db", db, "--table", "domain", "-"); code != 0 {
		t.Fatal(errs)
	}
	reader := testlist.Open(t, db)
	if err := reader.Ping(); err != nil {
		t.Fatal(err)
	}
	code, out, errs := ctl(t, "b.example\n", "import", "--offline", "--db", db, "--table", "domain", "-")
	if code != 1 || !strings.Contains(errs, "leave WAL: another process has the list open") || count(t, db, "domain") != 1 {
		t.Errorf("--offline beside a reader: exit %d %q %q, want 1 and nothing imported", code, out, errs)
	}
	reader.Close()
	code, out, errs = ctl(t, "b.example\nc.example\n", "import", "--offline", "--db", db, "--table", "domain", "-")
	if code != 0 || !strings.Contains(out, "imported 2 entries") || count(t, db, "domain") != 3 {
		t.Fatalf("--offline alone: exit %d %q %q", code, out, errs)
	}
	if m := journalMode(t, db); m != "wal" {
		t.Errorf("journal mode after --offline: %q, want wal", m)
	}
}

// scripts/packaging/blockcache-feeds.sh, as its service runs it: the feeds
// (fetched with curl, here from file:// URLs) and the local file replace
// the table; a feed that cannot be fetched changes nothing.
func TestFeedsScript(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl missing: run scripts/apt-setup.sh")
	}
	bin := buildCtl(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "list.db")
	write := func(name, content string) string { return writeFile(t, dir, name, content) }
	a := write("a.txt", "0.0.0.0 one.example\n0.0.0.0 two.example\n")
	b := write("b.txt", "three.example\n")
	local := write("local.txt", "mine.example\n")
	var env []string // more of the script's environment
	runOut := func(feeds ...string) (string, error) {
		cmd := exec.Command("../../../scripts/packaging/blockcache-feeds.sh")
		cmd.Env = append(append(os.Environ(), env...), "CTL="+bin, "DB="+db, "LOCAL="+local, "FEEDS="+strings.Join(feeds, " "))
		out, err := cmd.CombinedOutput()
		t.Logf("%s", out)
		return string(out), err
	}
	run := func(feeds ...string) error {
		_, err := runOut(feeds...)
		return err
	}
	ctl(t, "", "add", "--db", db, "--table", "domain", "old.example", "one.example", "two.example")
	if err := run("file://"+a, "file://"+b); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, "domain"); n != 4 {
		t.Fatalf("%d names after the feeds, want one, two, three and mine (old.example removed)", n)
	}
	v := version(t, db)
	if err := run("file://"+a, "file://"+filepath.Join(dir, "missing.txt")); err == nil {
		t.Error("a feed that cannot be fetched did not fail the script")
	}
	if count(t, db, "domain") != 4 || version(t, db) != v {
		t.Error("a failed fetch changed the list")
	}
	// b's server answers with an error page: three of four names would
	// stay, under --max-removed, but the page is not a list.
	page := write("page.txt", "<html>\n<h1>Quota exceeded</h1>\n</html>\n")
	out, err := runOut("file://"+a, "file://"+page)
	if err == nil || !strings.Contains(out, "feed2.txt: file://"+page) || !strings.Contains(out, "feed2.txt: 3 of its 3 entries rejected") {
		t.Errorf("a feed that is an error page: %v, output %q", err, out)
	}
	if count(t, db, "domain") != 4 || version(t, db) != v {
		t.Error("a feed that is an error page changed the list")
	}
	// DRY_RUN=1 says what the feeds would change, and changes nothing.
	env = []string{"DRY_RUN=1"}
	out, err = runOut("file://" + a)
	if err != nil || !strings.Contains(out, "dry run, nothing written: would import 3 entries into domain (0 new or changed, 1 removed as not in the files,") {
		t.Errorf("DRY_RUN=1: %v, output %q", err, out)
	}
	if count(t, db, "domain") != 4 || version(t, db) != v {
		t.Error("DRY_RUN=1 changed the list")
	}

	// EXCEPTIONS=1: the feeds' exceptions and LOCAL's go to the allow
	// table in the same import, and replace only its rules to "#".
	ctl(t, "", "add", "--db", db, "--table", "domain_dns_allow", "--server", "9.9.9.9", "resolver.example")
	writeFile(t, dir, "local.txt", "mine.example\n@@||mine-ok.example^\n")
	c := write("c.txt", "||ads.example^\n@@||ok.ads.example^\n@@||was-ok.example^\n")
	env = []string{"EXCEPTIONS=1"}
	if err := run("file://"+a, "file://"+c); err != nil {
		t.Fatal(err)
	}
	allowed := func() string {
		t.Helper()
		code, out, _ := ctl(t, "", "export", "--db", db, "--table", "domain_dns_allow")
		if code != 0 {
			t.Fatal(out)
		}
		return strings.Join(strings.Fields(out), " ")
	}
	if got := allowed(); got != "mine-ok.example ok.ads.example resolver.example was-ok.example" || count(t, db, "domain") != 4 {
		t.Errorf("allowed %q, %d blocked; want the exceptions and resolver.example, and one, two, ads and mine", got, count(t, db, "domain"))
	}
	c = write("c.txt", "||ads.example^\n@@||ok.ads.example^\n")
	if err := run("file://"+a, "file://"+c); err != nil {
		t.Fatal(err)
	}
	if got := allowed(); got != "mine-ok.example ok.ads.example resolver.example" {
		t.Errorf("after the feed dropped was-ok.example: allowed %q", got)
	}
	// The blocks' table cannot be the exceptions' too: each import would
	// replace what the other brought.
	env = []string{"EXCEPTIONS=1", "TABLE=domain_dns_allow"}
	if out, err := runOut("file://" + a); err == nil || !strings.Contains(out, "--and-exceptions imports the files' blocks into --table") {
		t.Errorf("EXCEPTIONS=1 TABLE=domain_dns_allow: %v, %q", err, out)
	}
}

func TestExitCodes(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	for _, c := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"frobnicate"}, 2},
		{[]string{"import", "--db", db, "-"}, 2}, // no --table
		{[]string{"import", "--db", db, "--table", "nope", "-"}, 2},                  // unknown table
		{[]string{"add", "--db", db, "--table", "domain_dns_block", "x.example"}, 2}, // no --server
		{[]string{"add", "--db", db, "--table", "domain", "--ipv4", "::1", "x.example"}, 2},
		{[]string{"add", "--db", db, "--table", "domain", "bad name"}, 2},
		{[]string{"rm", "--db", filepath.Join(t.TempDir(), "missing.db"), "--table", "domain", "x.example"}, 1},
		{[]string{"add", "--db", db, "--table", "domain", "x.example"}, 1}, // no such list: init makes one
		{[]string{"import", "--db", db, "--table", "domain", "/nonexistent/list.txt"}, 1},
		{[]string{"publish", "--db", db}, 2}, // no DEST
		{[]string{"fork", "--db", db, "extra"}, 2},
		{[]string{"fork", "--db", filepath.Join(t.TempDir(), "missing.db")}, 1},
		{[]string{"publish", "--db", filepath.Join(t.TempDir(), "missing.db"), filepath.Join(t.TempDir(), "out.db")}, 1},
		{[]string{"stats", "--help"}, 0},
		{[]string{"version"}, 0},
		{[]string{"--version"}, 0},
		{[]string{"--help"}, 0},
	} {
		if code, out, errs := ctl(t, "", c.args...); code != c.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", c.args, code, c.code, out, errs)
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("a failed command created the list")
	}
}

// A name typed in Unicode is explained in the ASCII form clients ask for
// and add stores; without the conversion it would always say pass.
func TestExplainUnicodeName(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	ctl(t, "", "init", "--db", db)
	if code, _, errs := ctl(t, "", "add", "--db", db, "--table", "domain", "Bücher.example"); code != 0 {
		t.Fatal(errs)
	}
	code, out, _ := ctl(t, "", "explain", "--db", db, "www.BÜCHER.example", "www.xn--bcher-kva.example")
	want := "www.xn--bcher-kva.example (www.BÜCHER.example)\n  verdict: block\n"
	if code != 0 || !strings.HasPrefix(out, want) || strings.Count(out, "verdict: block") != 2 {
		t.Errorf("explain of a Unicode name: %d %q, want it to begin %q and block both", code, out, want)
	}
}

// filter reads every name, and says which ones no query can match.
func TestFilterReportsOddNames(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	ctl(t, "", "init", "--db", db)
	ctl(t, "", "add", "--db", db, "--table", "domain", "fine.example")
	if out, err := exec.Command("sqlite3", db, `INSERT INTO domain VALUES ('*.star.example', NULL, NULL)`).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v %s", err, out)
	}
	code, out, errs := ctl(t, "", "filter", "--db", db)
	want := `holds 1 listed name that no query asks for: domain "*.star.example" (a wildcard, where the table covers subdomains without one: ` + "`blockcachectl init`" + ` rewrites it)`
	if code != 0 || !strings.Contains(out, "saved the filter") || !strings.Contains(errs, want) {
		t.Errorf("filter: %d %q %q, want %q on stderr", code, out, errs, want)
	}
	code, out, errs = ctl(t, "", "stats", "--db", db)
	if want := "\nnames:    1 listed name that no query asks for: domain \"*.star.example\""; code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "(found when the filter was saved)\n") {
		t.Errorf("stats: %d %q %q, want %q", code, out, errs, want)
	}
}

// stats says when a tool dropped the version triggers, and init puts
// them back with a new version.
func TestStatsReportsDroppedTriggers(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	ctl(t, "", "init", "--db", db)
	ctl(t, "", "add", "--db", db, "--table", "domain", "ads.example")
	if _, out, _ := ctl(t, "", "stats", "--db", db); strings.Contains(out, "triggers:") {
		t.Errorf("stats of a list with its triggers: %q", out)
	}
	v := version(t, db)
	if out, err := exec.Command("sqlite3", db, `DROP TRIGGER blockcache_domain_del; DELETE FROM domain`).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v %s", err, out)
	}
	want := "\ntriggers: domain has lost its version triggers"
	if code, out, errs := ctl(t, "", "stats", "--db", db); code != 0 || !strings.Contains(out, want) {
		t.Errorf("stats: %d %q %q, want %q", code, out, errs, want)
	}
	if code, out, errs := ctl(t, "", "init", "--db", db); code != 0 || !strings.Contains(out, "domain had lost its version triggers: they are back, under a new version") {
		t.Fatalf("init: %d %q %q", code, out, errs)
	}
	n, _ := strconv.Atoi(v)
	if code, out, _ := ctl(t, "", "stats", "--db", db); code != 0 || strings.Contains(out, "triggers:") || version(t, db) != strconv.Itoa(n+1) {
		t.Errorf("after init: %q, version %s, want %d", out, version(t, db), n+1)
	}
	if _, out, _ := ctl(t, "", "init", "--db", db); strings.Contains(out, "lost") || version(t, db) != strconv.Itoa(n+1) {
		t.Errorf("a second init: %q, version %s", out, version(t, db))
	}
}

// explain answers from SQL and never loads the saved filter: with enough
// names to outlast the load, a loaded filter would say so on stderr.
func TestExplainLeavesTheFilterAlone(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	ctl(t, "", "init", "--db", db)
	ctl(t, "", "add", "--db", db, "--table", "domain", "ads.example")
	if code, _, errs := ctl(t, "", "filter", "--db", db); code != 0 {
		t.Fatal(errs)
	}
	args := []string{"explain", "--db", db}
	for i := range 3000 {
		args = append(args, fmt.Sprintf("n%d.ads.example", i))
	}
	code, out, errs := ctl(t, "", args...)
	if code != 0 || strings.Count(out, "verdict: block") != 3000 || errs != "" {
		t.Errorf("explain: exit %d, %d blocks, stderr %q", code, strings.Count(out, "verdict: block"), errs)
	}
}

func TestExplainExportConf(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "list.db")
	conf := filepath.Join(dir, "dnsmasq.conf")
	os.WriteFile(conf, []byte("port=53\ndb-file="+db+"\ndb-block-ipv4=10.9.9.9\n"), 0o644)
	ctl(t, "", "init", "--conf", conf)
	if code, _, errs := ctl(t, "", "add", "--conf", conf, "--table", "domain", "Tracker.NET"); code != 0 {
		t.Fatal(errs)
	}
	ctl(t, "", "add", "--conf", conf, "--table", "domain_dns_allow", "--server", "9.9.9.9#53", "ok.tracker.net")
	code, out, _ := ctl(t, "", "explain", "--conf", conf, "a.tracker.net", "x.ok.tracker.net", "other.example")
	for _, want := range []string{"verdict: block", "table:   domain", "rule:    tracker.net", "A 10.9.9.9", "verdict: forward", "server:  9.9.9.9#53", "verdict: pass"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = ctl(t, "", "export", "--conf", conf, "--table", "domain")
	if code != 0 || out != "tracker.net\n" {
		t.Errorf("export: %d %q", code, out)
	}
	code, out, _ = ctl(t, "", "stats", "--conf", conf)
	ns := testlist.At(t, testlist.Open(t, db), 3)
	if code != 0 || !strings.Contains(out, "domain_dns_allow             1") || !strings.Contains(out, "changes:  2 logged, versions 2-3 ") || !strings.Contains(out, fmt.Sprintf("list:     %s/3 (stamp %08x)\n", ns.ListID, ns.Stamp)) {
		t.Errorf("stats:\n%s", out)
	}
	code, out, _ = ctl(t, "", "stats", "--no-count", "--conf", conf)
	if code != 0 || strings.Contains(out, "domain_dns_allow") || !strings.Contains(out, "rows not counted") || !strings.Contains(out, "list:     ") || !strings.Contains(out, "changes:  2 logged, versions 2-3 ") {
		t.Errorf("stats --no-count:\n%s", out)
	}
	pub := filepath.Join(dir, "published.db")
	code, out, errs := ctl(t, "", "publish", "--conf", conf, pub)
	if code != 0 || !strings.Contains(out, pub+": published list ") || !strings.Contains(out, ", 2 rules") || count(t, pub, "domain") != 1 {
		t.Errorf("publish: %d %q %q", code, out, errs)
	}
	if code, _, _ := ctl(t, "", "rm", "--conf", conf, "--table", "domain", "tracker.net"); code != 0 || count(t, db, "domain") != 0 {
		t.Error("rm")
	}
	// The published copy is now older than the list: a restored backup.
	code, _, errs = ctl(t, "", "publish", "--db", pub, db)
	if code != 1 || !strings.Contains(errs, "an older copy of the list") || !strings.Contains(errs, "blockcachectl fork --db "+pub) {
		t.Errorf("publish of an older copy: %d %q", code, errs)
	}
	code, out, errs = ctl(t, "", "fork", "--db", pub)
	if code != 0 || !strings.Contains(out, pub+": list ") || !strings.Contains(out, " is now list ") {
		t.Errorf("fork: %d %q %q", code, out, errs)
	}
	if code, out, errs := ctl(t, "", "publish", "--db", pub, db); code != 0 || count(t, db, "domain") != 1 {
		t.Errorf("publish of the forked copy: %d %q %q", code, out, errs)
	}
}

// buildCtl builds the CLI binary for tests that need a separate process.
func buildCtl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "blockcachectl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func bigList(t *testing.T, n int) string { return namesList(t, "big", n) }

// namesList writes a list file of n names, prefix0.example and up.
func namesList(t *testing.T, prefix string, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), prefix+".txt")
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%s%d.example\n", prefix, i)
	}
	os.WriteFile(p, []byte(b.String()), 0o644)
	return p
}

// kill -9 during an import leaves the list as it was, and openable, with
// --offline too; the next blockcachectl command puts an offline list back
// in WAL.
func TestImportKilled(t *testing.T) {
	bin := buildCtl(t)
	names := bigList(t, 3000000)
	for _, offline := range []bool{false, true} {
		t.Run(fmt.Sprintf("offline=%v", offline), func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "list.db")
			ctl(t, "", "init", "--db", db)
			ctl(t, "", "add", "--db", db, "--table", "domain", "before.example")
			v := version(t, db)
			fi, err := os.Stat(db)
			if err != nil {
				t.Fatal(err)
			}
			size := fi.Size()
			args := []string{"import", "--quiet", "--db", db, "--table", "domain"}
			if offline {
				args = append(args, "--offline")
			}
			cmd := exec.Command(bin, append(args, names)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// kill once it is writing: the WAL grows; offline, the file
			// itself grows, or the rollback journal has been there a while
			// (the import's pages may all fit SQLite's cache until the
			// commit)
			deadline := time.Now().Add(30 * time.Second)
			var journal time.Time
			for {
				if fi, err := os.Stat(db + "-wal"); err == nil && fi.Size() > 1<<20 {
					break
				}
				if fi, err := os.Stat(db); err == nil && fi.Size() > size+1<<20 {
					break
				}
				if _, err := os.Stat(db + "-journal"); err == nil && journal.IsZero() {
					journal = time.Now()
				}
				if !journal.IsZero() && time.Since(journal) > 300*time.Millisecond {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("import never started writing")
				}
				time.Sleep(5 * time.Millisecond)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			s, err := store.Open(context.Background(), store.Options{Path: db})
			if err != nil {
				t.Fatalf("a reader after kill -9: %v", err)
			}
			s.Close()
			h, _ := sql.Open("sqlite3", db)
			defer h.Close()
			var ok string
			if err := h.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
				t.Fatalf("integrity_check: %q %v", ok, err)
			}
			h.Close()
			if n := count(t, db, "domain"); n != 1 || version(t, db) != v {
				t.Fatalf("after kill -9: %d rows, version %s (was %s)", n, version(t, db), v)
			}
			if code, _, errs := ctl(t, "", "add", "--db", db, "--table", "domain", "after.example"); code != 0 {
				t.Fatal(errs)
			}
			if m := journalMode(t, db); m != "wal" {
				t.Errorf("journal mode after the next command: %q, want wal", m)
			}
		})
	}
}

// An import runs while an engine answers lookups: no lookup fails, the old
// list answers until the commit, and the new one within 2 s after.
func TestImportWhileLookups(t *testing.T) {
	bin := buildCtl(t)
	db := filepath.Join(t.TempDir(), "list.db")
	ctl(t, "", "init", "--db", db)
	ctl(t, "", "add", "--db", db, "--table", "domain", "before.example")
	s, err := store.Open(context.Background(), store.Options{Path: db, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var lookups, failures atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v, _, err := s.Resolve(context.Background(), "x.before.example")
			lookups.Add(1)
			if err != nil || v.Action != verdict.Block {
				failures.Add(1)
			}
		}
	}()
	out, err := exec.Command(bin, "import", "--quiet", "--db", db, "--table", "domain", bigList(t, 300000)).CombinedOutput()
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	committed := time.Now()
	for {
		v, _, err := s.Resolve(context.Background(), "www.big299999.example")
		if err == nil && v.Action == verdict.Block {
			break
		}
		if time.Since(committed) > 2*time.Second {
			t.Fatal("imported names not blocked 2 s after the commit")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	<-done
	if failures.Load() != 0 || lookups.Load() < 100 {
		t.Fatalf("%d of %d lookups failed during the import", failures.Load(), lookups.Load())
	}
	t.Logf("%d lookups during the import, none failed", lookups.Load())
}

// `filter` saves the filter; stats says whether dnsmasq can use it; an
// import too large for the change log saves it again, so a saved filter
// never goes stale through blockcachectl.
// An import too large to log, into a list whose saved filter can take
// its names, adds them to it; stats and --if-needed count them.
func TestImportGrowsTheSavedFilter(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	names := bigList(t, 100000)
	if code, _, errs := ctl(t, "", "import", "--db", db, "--table", "domain", "--quiet", names); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := ctl(t, "", "filter", "--db", db); code != 0 {
		t.Fatal(errs)
	}
	// The same names in another table: 20,000 keys more for the filter.
	code, out, errs := ctl(t, "", "import", "--db", db, "--table", "domain_exact", "--quiet", bigList(t, 20000))
	if code != 0 || !strings.Contains(out, "added the import's names to the filter saved in the list, as the import is too large for the change log: version 3, 20000 names added since it was built for 100000") {
		t.Fatalf("import: %d %q %q", code, out, errs)
	}
	if code, out, _ := ctl(t, "", "stats", "--db", db); code != 0 || !strings.Contains(out, "filter:   saved at version 3, 0.1 MiB, 20000 names added by imports since it was built (dnsmasq loads it and adds 0 changed names; past 5000 it builds its own)") {
		t.Errorf("stats:\n%s", out)
	}
	// 20,000 of the 25,000 dnsmasq allows: more than half, so saved anew.
	if code, out, errs := ctl(t, "", "filter", "--if-needed", "--db", db); code != 0 || !strings.Contains(out, "saved the filter of list version 3 (120000 names") {
		t.Errorf("filter --if-needed: %d %q %q", code, out, errs)
	}
}

func TestSavedFilterCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	if code, _, errs := ctl(t, "", "import", "--db", db, "--table", "domain", "--quiet", bigList(t, 100)); code != 0 {
		t.Fatal(errs)
	}
	stats := func() string {
		t.Helper()
		code, out, errs := ctl(t, "", "stats", "--db", db)
		if code != 0 {
			t.Fatalf("stats: %d %s", code, errs)
		}
		return out
	}
	if out := stats(); !strings.Contains(out, "filter:   none saved") {
		t.Errorf("stats before saving:\n%s", out)
	}
	code, out, errs := ctl(t, "", "filter", "--db", db)
	if code != 0 || !strings.Contains(out, "saved the filter of list version 2 (100 names") {
		t.Fatalf("filter: %d %q %q", code, out, errs)
	}
	ctl(t, "", "add", "--db", db, "--table", "domain", "c.example")
	if out := stats(); !strings.Contains(out, "filter:   saved at version 2, ") || !strings.Contains(out, "dnsmasq loads it and adds 1 changed names; past 25 it builds its own") {
		t.Errorf("stats after a logged change:\n%s", out)
	}
	code, out, errs = ctl(t, "", "import", "--db", db, "--table", "domain", "--quiet", bigList(t, 20000))
	if code != 0 || !strings.Contains(out, "saved the filter of list version 4 (20001 names, 0.0 MiB) with the import") {
		t.Fatalf("a 20,000-name import did not save the filter again: %d %q %q", code, out, errs)
	}
	if out := stats(); !strings.Contains(out, "filter:   saved at version 4, ") {
		t.Errorf("stats after the import:\n%s", out)
	}
	// Changed behind blockcachectl's back: reported, with the remedy.
	testlist.Exec(t, testlist.Open(t, db), store.BumpVersion)
	if out := stats(); !strings.Contains(out, "filter:   saved, not usable: it is of version 4, and the change log does not cover") || !strings.Contains(out, "`blockcachectl filter` saves it again") {
		t.Errorf("stats after a bare bump:\n%s", out)
	}
	// --if-needed saves an unusable filter, then leaves a current one alone.
	for i, want := range []string{"saved the filter of list version 5 ", "the saved filter of version 5 is current: dnsmasq adds 0 changed names to it (it rebuilds past 5000); not saved"} {
		if code, out, errs := ctl(t, "", "filter", "--if-needed", "--db", db); code != 0 || !strings.Contains(out, want) {
			t.Errorf("filter --if-needed, run %d: %d %q %q; want %q", i+1, code, out, errs, want)
		}
	}
	// The same 20,000 names again change nothing: the filter stays current.
	if code, out, errs := ctl(t, "", "import", "--db", db, "--table", "domain", "--quiet", bigList(t, 20000)); code != 0 || !strings.Contains(out, "(0 new or changed,") || !strings.Contains(out, "the list version is unchanged") {
		t.Fatalf("the same import again: %d %q %q", code, out, errs)
	}
	if code, out, errs := ctl(t, "", "filter", "--if-needed", "--db", db); code != 0 || !strings.Contains(out, "the saved filter of version 5 is current: dnsmasq adds 0 changed names") {
		t.Errorf("filter --if-needed after an import of nothing new: %d %q %q", code, out, errs)
	}
	// 2,600 names logged since: more than half of the 5,000 dnsmasq allows.
	if code, out, errs := ctl(t, "", "import", "--db", db, "--table", "domain", "--quiet", namesList(t, "more", 2600)); code != 0 || strings.Contains(out, "saved the filter") {
		t.Fatalf("a logged import: %d %q %q", code, out, errs)
	}
	if code, out, errs := ctl(t, "", "filter", "--if-needed", "--db", db); code != 0 || !strings.Contains(out, "saved the filter of list version 6 ") {
		t.Errorf("filter --if-needed after 2,600 changed names: %d %q %q", code, out, errs)
	}
	if code, _, _ := ctl(t, "", "filter", "--db", db, "extra"); code != 2 {
		t.Errorf("filter with an argument: exit %d, want 2", code)
	}
}

// `init` upgrades a list made by another tool in place, and on a list it
// made before, still normalizes rows a tool wrote with the triggers
// dropped (a writer's open alone reads no rows).
func TestInitUpgradesAForeignList(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	h := testlist.Open(t, db)
	testlist.Exec(t, h, `CREATE TABLE domain (Domain TEXT PRIMARY KEY, IPv4 TEXT, IPv6 TEXT)`,
		`INSERT INTO domain VALUES ('Ads.Example.', NULL, NULL), ('keep.example', NULL, NULL)`)
	names := func() string {
		t.Helper()
		var n string
		h.QueryRow(`SELECT group_concat(Domain, ' ') FROM (SELECT Domain FROM domain ORDER BY Domain)`).Scan(&n)
		return n
	}
	code, out, errs := ctl(t, "", "init", "--db", db)
	if code != 0 || !strings.Contains(out, "schema ready") || names() != "ads.example keep.example" {
		t.Fatalf("init: %d %q %q; rows %q", code, out, errs, names())
	}
	// The trigger dropped for the write and put back as it was, as such a
	// tool does: a writer's open sees nothing to replace.
	var ddl string
	if err := h.QueryRow(`SELECT sql FROM sqlite_master WHERE name = 'blockcache_domain_norm_ins'`).Scan(&ddl); err != nil {
		t.Fatal(err)
	}
	testlist.Exec(t, h, `DROP TRIGGER blockcache_domain_norm_ins`, `INSERT INTO domain VALUES ('Quiet.Example', NULL, NULL)`, ddl)
	if code, _, errs := ctl(t, "", "add", "--db", db, "--table", "domain", "other.example"); code != 0 || names() != "Quiet.Example ads.example keep.example other.example" {
		t.Errorf("add: %d %q; rows %q (a writer's open read the rows)", code, errs, names())
	}
	if code, _, errs := ctl(t, "", "init", "--db", db); code != 0 || names() != "ads.example keep.example other.example quiet.example" {
		t.Errorf("second init: %d %q; rows %q", code, errs, names())
	}
}

// add reads a wildcard as import does: the name alone, in a table that
// covers subdomains; in domain_exact it is an error.
func TestAddWildcards(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	ctl(t, "", "init", "--db", db)
	if code, out, errs := ctl(t, "", "add", "--db", db, "--table", "domain", "*.a.example", ".b.example"); code != 0 || !strings.Contains(out, "added 2") {
		t.Fatalf("add: %d %q %q", code, out, errs)
	}
	if _, out, _ := ctl(t, "", "export", "--db", db, "--table", "domain"); out != "a.example\nb.example\n" {
		t.Errorf("export: %q", out)
	}
	for _, w := range []string{"*.c.example", ".c.example"} {
		if code, _, errs := ctl(t, "", "add", "--db", db, "--table", "domain_exact", w); code != 2 || !strings.Contains(errs, "not a valid domain name") {
			t.Errorf("add %s to domain_exact: %d %q", w, code, errs)
		}
	}
}

// The commands that talk to Valkey, against a real valkey-server: warm
// reads names from a dnsmasq query log or a plain list (a line too long to
// hold one is skipped, not the end of the file) and writes their verdicts;
// stats and explain report what Valkey holds; each says when it is down.
func TestValkeyCommands(t *testing.T) {
	vk := valkeytest.Start(t)
	db := filepath.Join(t.TempDir(), "list.db")
	ctl(t, "", "init", "--db", db)
	ctl(t, "", "add", "--db", db, "--table", "domain", "ads.example")
	log := "Nov 27 01:02:03 dnsmasq[9]: query[A] www.ads.example from 127.0.0.1\n" +
		"Nov 27 01:02:03 dnsmasq[9]: query[AAAA] www.ads.example from 127.0.0.1\n" +
		"Nov 27 01:02:04 dnsmasq[9]: query[A] Unlisted.Example. from 127.0.0.1\n" +
		"Nov 27 01:02:04 dnsmasq[9]: forwarded unlisted.example to 192.0.2.1\n" +
		strings.Repeat("x", 2<<20) + "\n" +
		"# a comment\n" +
		"plain.example\n" +
		"a..b\n" +
		"last.example"
	set := []string{"--set", "valkey-host=127.0.0.1", "--set", fmt.Sprintf("valkey-port=%d", vk.Port)}
	code, out, errs := ctl(t, log, append(append([]string{"warm", "--db", db}, set...), "-")...)
	if code != 0 || !strings.Contains(out, "warmed 4 names (1 invalid) into valkey") {
		t.Fatalf("warm: exit %d %q %q", code, out, errs)
	}
	if n := vk.Do("DBSIZE"); n != "4" {
		t.Errorf("valkey holds %s keys after warm, want 4 (www.ads, unlisted, plain, last)", n)
	}
	// stats counts this library's keys apart from others'; explain says
	// which names Valkey answers.
	vk.Do("SET", "someone-else", "x")
	code, out, errs = ctl(t, "", append([]string{"stats", "--db", db}, set...)...)
	if want := "  keys:           5 (ours, prefix \"bc:\": 4)\n"; code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "  maxmemory_policy: ") {
		t.Errorf("stats: exit %d %q %q, want %q", code, out, errs, want)
	}
	code, out, errs = ctl(t, "", append(append([]string{"explain", "--db", db}, set...), "www.ads.example", "new.example")...)
	if code != 0 || strings.Count(out, "tier:    valkey (a cached verdict for this list version is there)") != 1 || !strings.Contains(out, "; not cached in valkey yet") {
		t.Errorf("explain: exit %d %q %q", code, out, errs)
	}

	// A rotated, gzipped log.
	rotated := writeFile(t, t.TempDir(), "dnsmasq.log.2.gz", gzipped(t, "Nov 26 23:59:59 dnsmasq[9]: query[A] gz.example from 127.0.0.1\n"))
	if code, out, errs := ctl(t, "", append(append([]string{"warm", "--db", db}, set...), rotated)...); code != 0 || !strings.Contains(out, "warmed 1 names (0 invalid)") || vk.Do("DBSIZE") != "6" {
		t.Errorf("warm from a gzipped log: exit %d %q %q, %s keys", code, out, errs, vk.Do("DBSIZE"))
	}

	down := append(append([]string{}, set[:2]...), "--set", "valkey-port=1")
	code, out, errs = ctl(t, "a.example\n", append(append([]string{"warm", "--db", db}, down...), "-")...)
	if code != 1 || !strings.Contains(errs, "is not reachable") {
		t.Errorf("warm with Valkey down: exit %d %q %q", code, out, errs)
	}
	code, out, _ = ctl(t, "", append([]string{"stats", "--db", db}, down...)...)
	if code != 0 || !strings.Contains(out, "valkey:   [127.0.0.1:1] unreachable") {
		t.Errorf("stats with Valkey down: exit %d %q", code, out)
	}
	code, out, _ = ctl(t, "", append(append([]string{"explain", "--db", db}, down...), "www.ads.example")...)
	if code != 0 || !strings.Contains(out, "verdict: block") || !strings.Contains(out, "; valkey unreachable") {
		t.Errorf("explain with Valkey down: exit %d %q", code, out)
	}
	if code, _, errs := ctl(t, "a.example\n", "warm", "--db", db, "-"); code != 2 || !strings.Contains(errs, "warm needs Valkey") {
		t.Errorf("warm without Valkey: exit %d %q", code, errs)
	}
}

// gzip compresses s, as a feed published as .gz or a rotated log is.
func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil || zw.Close() != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A gzipped list is read as its content, whatever its name; a damaged one
// fails the import with the list unchanged.
func TestImportGzip(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "list.db")
	gz := gzipped(t, "0.0.0.0 a.example\nb.example\n")
	feed := writeFile(t, dir, "feed.txt", gz) // the name does not say
	code, out, errs := ctl(t, "", "import", "--db", db, "--table", "domain", feed)
	if code != 0 || !strings.Contains(out, "imported 2 entries") {
		t.Fatalf("gzipped feed: exit %d %q %q", code, out, errs)
	}
	if code, out, errs := ctl(t, gz, "import", "--db", db, "--table", "domain", "-"); code != 0 || !strings.Contains(out, "imported 2 entries") {
		t.Errorf("gzipped stdin: exit %d %q %q", code, out, errs)
	}
	v := version(t, db)
	for name, c := range map[string]struct{ content, err string }{
		"cut.gz": {gzipped(t, strings.Repeat("c.example\n", 10000))[:200], "gzip: the compressed file ends early"},
		"bad.gz": {"\x1f\x8bnot gzip at all\n", "bad.gz: gzip: invalid header"},
	} {
		code, out, errs := ctl(t, "", "import", "--db", db, "--table", "domain", writeFile(t, dir, name, c.content))
		if code != 1 || !strings.Contains(errs, name) || !strings.Contains(errs, c.err) || !strings.Contains(errs, "the list is unchanged") {
			t.Errorf("%s: exit %d %q %q, want %q", name, code, out, errs, c.err)
		}
		if version(t, db) != v || count(t, db, "domain") != 2 {
			t.Errorf("%s changed the list", name)
		}
	}
}

// add checks a pattern as import does.
func TestAddPatternChecks(t *testing.T) {
	db := filepath.Join(t.TempDir(), "list.db")
	ctl(t, "", "init", "--db", db)
	for p, want := range map[string]string{"^ads;querytype=AAAA": "Pi-hole's ;querytype=AAAA option is not supported", "(bad": "pattern does not compile"} {
		if code, _, errs := ctl(t, "", "add", "--db", db, "--table", "domain_regex", p); code != 2 || !strings.Contains(errs, want) {
			t.Errorf("add %q: exit %d %q, want %q", p, code, errs, want)
		}
	}
	if code, out, errs := ctl(t, "", "add", "--db", db, "--table", "domain_regex", "^(ads|track);?[0-9]"); code != 0 || !strings.Contains(out, "added 1") {
		t.Errorf("a pattern with ';' of its own: exit %d %q %q", code, out, errs)
	}
}
