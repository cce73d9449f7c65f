package listfile

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func readAll(t *testing.T, in string, kind Kind, exact bool) ([]string, *Reader) {
	t.Helper()
	r := NewReader(strings.NewReader(in), "list.txt", kind)
	r.Exact = exact
	var out []string
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out, r
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
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
		long + "\n" +
		huge + "\n" +
		"two words\n" +
		"bad_host!.example\n"
	got, r := readAll(t, in, Domains, false)
	want := "example.com spaced.example ads.example tracker.example adblock.example xn--bcher-kva.de wild.example"
	if strings.Join(got, " ") != want {
		t.Errorf("entries:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	lines := map[int]error{}
	for _, p := range r.Problems {
		lines[p.Line] = p.Err
	}
	for line, want := range map[int]error{10: ErrAdblockOption, 11: ErrAdblockRule, 16: ErrName, 17: ErrName, 18: ErrName, 19: ErrName} {
		if !errors.Is(lines[line], want) {
			t.Errorf("line %d: problem %v, want %v (all: %v)", line, lines[line], want, r.Problems)
		}
	}
	if len(r.Problems) != 6 {
		t.Errorf("%d problems, want 6: %v", len(r.Problems), r.Problems)
	}
	if s := r.Problems[0].Error(); !strings.HasPrefix(s, "list.txt:10:") {
		t.Errorf("problem text %q lacks file:line", s)
	}
}

func TestExactRejectsWildcard(t *testing.T) {
	_, r := readAll(t, "*.x.example\n", Domains, true)
	if len(r.Problems) != 1 || !errors.Is(r.Problems[0].Err, ErrWildcard) {
		t.Fatalf("%v", r.Problems)
	}
}

func TestPatterns(t *testing.T) {
	got, r := readAll(t, "^ads?\\.\n/track(er)?\\./\n# c\n(unclosed\n", Patterns, false)
	if strings.Join(got, " ") != `^ads?\. track(er)?\.` {
		t.Errorf("patterns %q", got)
	}
	if len(r.Problems) != 1 || r.Problems[0].Line != 4 || !errors.Is(r.Problems[0].Err, ErrPattern) {
		t.Errorf("problems %v", r.Problems)
	}
}
