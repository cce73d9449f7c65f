package listfile

import (
	"errors"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/libblockcache/libblockcache/libblockcache/name"
)

// readAll reads a whole list and checks the reader's counts against what it
// returned.
func readAll(t *testing.T, in string, kind Kind, exact bool) ([]string, []Problem) {
	t.Helper()
	r := NewReader(strings.NewReader(in), "list.txt", kind)
	r.Exact = exact
	return readFrom(t, r)
}

func readFrom(t *testing.T, r *Reader) ([]string, []Problem) {
	t.Helper()
	var out []string
	var problems []Problem
	for {
		e, err := r.Next()
		problems = append(problems, r.TakeProblems()...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if r.Entries != len(out) || r.Rejected != len(problems) {
		t.Errorf("reader counted %d entries and %d rejected lines, returned %d and %d", r.Entries, r.Rejected, len(out), len(problems))
	}
	return out, problems
}

// expectRead reads a list into a table that covers subdomains and checks
// the entries it returns and, by line, why each rejected line was.
func expectRead(t *testing.T, in, entries string, rejected map[int]error) []Problem {
	t.Helper()
	got, problems := readAll(t, in, Domains, false)
	if strings.Join(got, " ") != entries {
		t.Errorf("entries:\n got %s\nwant %s", strings.Join(got, " "), entries)
	}
	checkProblems(t, problems, rejected)
	return problems
}

func TestFormats(t *testing.T) {
	long := strings.Repeat("a", 64) + ".com"
	huge := strings.Repeat("abcdefghi.", 26) + "com"
	in := "\xef\xbb\xbfExample.COM.\r\n" +
		"# comment\n" +
		"\n" +
		"\t  spaced.example  \t\n" +
		"0.0.0.0 ads.example tracker.example # trailing\n" +
		"127.0.0.1\tlocalhost\n" +
		"::1 ip6-localhost ip6-loopback\n" +
		"255.255.255.255 broadcasthost\n" +
		"||adblock.example^\n" +
		"||opts.example^$third-party\n" +
		"@@||allowed.example^\n" +
		"! adblock comment\n" +
		"[Adblock Plus 2.0]\n" +
		"bücher.de\n" +
		"*.wild.example\n" +
		".dot.example\n" +
		"..dots.example\n" +
		long + "\n" +
		huge + "\n" +
		"two words\n" +
		"bad_host!.example\n"
	got, problems := readAll(t, in, Domains, false)
	want := "example.com spaced.example ads.example tracker.example adblock.example xn--bcher-kva.de wild.example dot.example"
	if strings.Join(got, " ") != want {
		t.Errorf("entries:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	lines := map[int]error{}
	for _, p := range problems {
		lines[p.Line] = p.Err
	}
	for line, want := range map[int]error{10: ErrAdblockOption, 17: ErrName, 18: ErrName, 19: ErrName, 20: ErrName, 21: ErrName} {
		if !errors.Is(lines[line], want) {
			t.Errorf("line %d: problem %v, want %v (all: %v)", line, lines[line], want, problems)
		}
	}
	if len(problems) != 6 { // line 11's exception is for another import
		t.Fatalf("%d problems, want 6: %v", len(problems), problems)
	}
	if s := problems[0].Error(); !strings.HasPrefix(s, "list.txt:10:") {
		t.Errorf("problem text %q lacks file:line", s)
	}
}

// AdBlock rules that act on a site's pages name the site, and must not
// block it; a '#' after a space is still a comment.
func TestCosmeticRulesAreNotDomains(t *testing.T) {
	in := "example.com##.ad-banner\n" +
		"news.example,blog.example#@#.sponsor\n" +
		"shop.example#?#div:-abp-has(.ad)\n" +
		"video.example##+js(set-constant, ads, false)\n" +
		"style.example#$#body { margin: 0 }\n" +
		"script.example#%#window.ads = 1\n" +
		"exc.example#@$?#.x\n" +
		"ads.example ## a comment\n" +
		"0.0.0.0 tracker.example\t#\ta comment\n" +
		"plain.example#comment\n"
	got, problems := readAll(t, in, Domains, false)
	if strings.Join(got, " ") != "ads.example tracker.example plain.example" {
		t.Errorf("entries %q", got)
	}
	if len(problems) != 7 {
		t.Fatalf("problems %v", problems)
	}
	for i, p := range problems {
		if p.Line != i+1 || !errors.Is(p.Err, ErrAdblockRule) {
			t.Errorf("problem %d: %v", i, p)
		}
	}
}

// Blocklists made for stock dnsmasq, and hosts files: what blocks is read,
// what forwards or redirects is refused with its reason.
func TestDnsmasqLinesAndRedirects(t *testing.T) {
	in := "address=/a.example/0.0.0.0\n" +
		"address=/b.example/c.example/::\n" +
		"address=/d.example/\n" +
		"address=/e.example/#\n" +
		"local=/f.example/\n" +
		"server=/g.example/\n" +
		"address=/*.h.example/127.0.0.1\n" +
		"address=/portal.example/10.0.0.1\n" +
		"server=/corp.example/10.0.0.53\n" +
		"server=/up.example/#\n" +
		"address=/#/0.0.0.0\n" +
		"address=/0.0.0.0\n" +
		"10.1.2.3 nas.lan\n" +
		"255.255.255.255 broadcasthost\n" +
		"::1 i.example\n" +
		"127.0.0.1 j.example\n" +
		"127.0.1.1 myhost\n" +
		"::ffff:0.0.0.0 k.example\n"
	expectRead(t, in, "a.example b.example c.example d.example e.example f.example g.example h.example i.example j.example k.example",
		map[int]error{8: ErrRedirect, 9: ErrDnsmasqLine, 11: ErrDnsmasqLine, 12: ErrDnsmasqLine, 13: ErrRedirect, 17: ErrRedirect})
	// The import's own --ipv4/--ipv6: a block page's address.
	r := NewReader(strings.NewReader("10.0.0.1 l.example\naddress=/m.example/fd00::1\n10.0.0.2 n.example\n"), "list.txt", Domains)
	r.Sinks = []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}
	var names []string
	for e, err := r.Next(); err == nil; e, err = r.Next() {
		names = append(names, e)
	}
	if p := r.TakeProblems(); strings.Join(names, " ") != "l.example m.example" || len(p) != 1 || !errors.Is(p[0].Err, ErrRedirect) {
		t.Errorf("with sinks 10.0.0.1 and fd00::1: %q, %v", names, p)
	}
	_, problems := readAll(t, "address=/k.example/0.0.0.0\n", Domains, true)
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), "covers subdomains; import it into domain") {
		t.Errorf("address= into domain_exact: %v", problems)
	}
}

// A feed's blocks and its exceptions go to two tables: a read takes one
// half and counts the other (handing it to OnOther when set), and both
// reads reject what is neither.
func TestExceptions(t *testing.T) {
	in := "||ads.example^\n" +
		"@@||good.ads.example^\n" +
		"@@||also.example^$important\n" +
		"@@||path.example/x\n" +
		"0.0.0.0 hosts.example\n" +
		"plain.example\n" +
		"address=/dm.example/0.0.0.0\n" +
		"server=/ok.dm.example/ok2.example/#\n" +
		"server=/corp.example/10.0.0.53\n" +
		"rpz.example CNAME .\n" +
		"pass.rpz.example CNAME rpz-passthru.\n" +
		"*.wild.example CNAME rpz-passthru.\n" +
		"<html>\n" +
		"example.com##.banner\n" +
		"@@||bad..example^\n"
	blocks := "ads.example hosts.example plain.example dm.example rpz.example"
	exceptions := "good.ads.example also.example ok.dm.example ok2.example pass.rpz.example wild.example"
	neither := map[int]error{4: ErrAdblockRule, 9: ErrDnsmasqLine, 13: ErrName, 14: ErrAdblockRule, 15: ErrName}
	for _, c := range []struct {
		exceptions   bool
		want, others string
	}{{false, blocks, exceptions}, {true, exceptions, blocks}} {
		r := NewReader(strings.NewReader(in), "feed.txt", Domains)
		r.Exceptions = c.exceptions
		got, problems := readFrom(t, r)
		if strings.Join(got, " ") != c.want {
			t.Errorf("exceptions %v: got %q, want %q", c.exceptions, got, c.want)
		}
		checkProblems(t, problems, neither)
		if want := len(strings.Fields(c.others)); r.Others != want {
			t.Errorf("exceptions %v: %d others counted, want %d", c.exceptions, r.Others, want)
		}
	}
	// OnOther hands the other half over as it goes.
	var others []string
	r := NewReader(strings.NewReader(in), "feed.txt", Domains)
	r.OnOther = func(n string) { others = append(others, n) }
	if got, _ := readFrom(t, r); strings.Join(got, " ") != blocks || strings.Join(others, " ") != exceptions {
		t.Errorf("OnOther: read %q, handed over %q", got, others)
	}
}

func checkProblems(t *testing.T, problems []Problem, want map[int]error) {
	t.Helper()
	if len(problems) != len(want) {
		t.Errorf("%d lines rejected, want %d: %v", len(problems), len(want), problems)
	}
	for _, p := range problems {
		if !errors.Is(p.Err, want[p.Line]) {
			t.Errorf("line %d: %v, want %v", p.Line, p.Err, want[p.Line])
		}
	}
}

// Options that keep a rule whole are read; the others are not DNS blocks.
func TestAdblockOptions(t *testing.T) {
	in := "||a.example^$important\n||b.example^$all\n||c.example^$important,all\n" +
		"||d.example^$third-party\n||e.example^$important,badfilter\n||f.example^$\n||g.example^$client=10.0.0.1\n"
	got, problems := readAll(t, in, Domains, false)
	if strings.Join(got, " ") != "a.example b.example c.example" || len(problems) != 4 {
		t.Fatalf("entries %q, problems %v", got, problems)
	}
	for _, p := range problems {
		if !errors.Is(p.Err, ErrAdblockOption) {
			t.Errorf("line %d: %v", p.Line, p.Err)
		}
	}
}

func TestExactRejectsWildcard(t *testing.T) {
	_, problems := readAll(t, "*.x.example\n.y.example\n", Domains, true)
	if len(problems) != 2 || !errors.Is(problems[0].Err, ErrWildcard) || !errors.Is(problems[1].Err, ErrWildcard) {
		t.Fatalf("%v", problems)
	}
}

func TestPatterns(t *testing.T) {
	in := "^ads?\\.\n/track(er)?\\./\n# c\n(unclosed\n" +
		"^ad\\.;querytype=AAAA\n(\\.|^)tele;invert\n^x\\.;reply=nxdomain\n^(a;b)$\n"
	got, problems := readAll(t, in, Patterns, false)
	if strings.Join(got, " ") != `^ads?\. track(er)?\. ^(a;b)$` {
		t.Errorf("patterns %q", got)
	}
	if len(problems) != 4 {
		t.Fatalf("problems %v", problems)
	}
	for i, line := range []int{4, 5, 6, 7} {
		if problems[i].Line != line || !errors.Is(problems[i].Err, ErrPattern) || line > 4 && !strings.Contains(problems[i].Error(), "Pi-hole's") {
			t.Errorf("line %d: %v", line, problems[i])
		}
	}
}

// A line too long to be an entry is one rejected line, not the end of the
// import: before, the scanner's "token too long" aborted the whole file.
func TestLongLines(t *testing.T) {
	huge := strings.Repeat("a", MaxLine+1)
	long := strings.Repeat("b", 100*1024) // longer than the read buffer, within MaxLine
	in := "first.example\n" + huge + "\n" + "after.example\n" + long + "\n" + huge + huge + "\n" + "x.example\n" + huge
	got, problems := readAll(t, in, Domains, false)
	if strings.Join(got, " ") != "first.example after.example x.example" {
		t.Errorf("entries %q", got)
	}
	want := []struct {
		line int
		err  error
	}{{2, ErrLineTooLong}, {4, ErrName}, {5, ErrLineTooLong}, {7, ErrLineTooLong}}
	if len(problems) != len(want) {
		t.Fatalf("problems %v", problems)
	}
	for i, w := range want {
		if p := problems[i]; p.Line != w.line || !errors.Is(p.Err, w.err) || len(p.Text) > 80 {
			t.Errorf("problem %d: line %d %v (%d bytes of text), want line %d %v", i, p.Line, p.Err, len(p.Text), w.line, w.err)
		}
	}
}

// Whatever a file holds, the reader returns only names in the stored form
// (or patterns that compile), counts what it returned and rejected, and
// keeps reading.
func FuzzReader(f *testing.F) {
	for _, s := range []string{"a.example\nb.example", "0.0.0.0 a.example b.example # c\r\n", "||x.example^\n@@||y^\n",
		"\xef\xbb\xbf*.w.example\n", "bücher.de\n\n#\n", "x.example##.ad\ny.example #c\n", "address=/a/b/0.0.0.0\nserver=/c/\nserver=/e/f/#\n10.0.0.1 d\n", "$ORIGIN z.\n@ SOA a. b. (\n1 )\nx CNAME .\n*.y 1h IN A 0.0.0.0\nw.z. CNAME rpz-passthru.\n", "a b\n\x00\n", strings.Repeat("z", 300) + "\nq.example"} {
		f.Add(s, false)
	}
	f.Add("^ads\\.\n/x(y/\n(", true)
	f.Fuzz(func(t *testing.T, in string, patterns bool) {
		if patterns {
			fuzzRead(t, in, Patterns, false)
			return
		}
		// The two halves of a list: what one import takes, the other
		// counts and skips.
		b := fuzzRead(t, in, Domains, false)
		e := fuzzRead(t, in, Domains, true)
		if b.Entries != e.Others || e.Entries != b.Others || b.Rejected != e.Rejected || b.Skipped != e.Skipped {
			t.Fatalf("blocks import: %d entries, %d others, %d rejected, %d skipped; exceptions import: %d, %d, %d, %d",
				b.Entries, b.Others, b.Rejected, b.Skipped, e.Entries, e.Others, e.Rejected, e.Skipped)
		}
	})
}

func fuzzRead(t *testing.T, in string, kind Kind, exceptions bool) *Reader {
	r := NewReader(strings.NewReader(in), "fuzz", kind)
	r.Exceptions = exceptions
	entries, rejected := 0, 0
	for {
		e, err := r.Next()
		for _, p := range r.TakeProblems() {
			rejected++
			if p.Line < 1 || p.Err == nil || len(p.Text) > 80 {
				t.Fatalf("problem %+v", p)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		entries++
		if kind == Patterns {
			if _, err := regexp.Compile(e); err != nil {
				t.Fatalf("pattern %q does not compile", e)
			}
		} else if n, err := name.Normalize(e); err != nil || n != e || strings.Contains(e, "*") {
			t.Fatalf("entry %q is not a stored name (%q, %v)", e, n, err)
		}
	}
	if entries != r.Entries || rejected != r.Rejected {
		t.Fatalf("counted %d entries and %d rejected, returned %d and %d", r.Entries, r.Rejected, entries, rejected)
	}
	return r
}
