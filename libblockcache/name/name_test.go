package name

import (
	"errors"
	"strings"
	"testing"
)

// nameCase is one input and what a function must give for it: want, or an
// error that is err.
type nameCase struct {
	in, want string
	err      error
}

func checkCases(t *testing.T, fname string, f func(string) (string, error), cases []nameCase) {
	t.Helper()
	for _, c := range cases {
		got, err := f(c.in)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s(%q) err = %v, want %v", fname, c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s(%q) = %q, %v; want %q", fname, c.in, got, err, c.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	checkCases(t, "Normalize", Normalize, []nameCase{
		{"example.com", "example.com", nil},
		{"Example.COM.", "example.com", nil},
		{"a", "a", nil},
		{"_dmarc.x.org", "_dmarc.x.org", nil},
		{"", "", ErrEmpty},
		{".", "", ErrEmpty},
		{"a..b", "", ErrLabel},
		{".a", "", ErrLabel},
		{"a b.com", "", ErrBadChars},
		{"a\x00b", "", ErrBadChars},
		{long63 + ".com", long63 + ".com", nil},
		{long63 + "a.com", "", ErrLabel},
		{strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 126) + "a", nil},
		{strings.Repeat("a.", 127) + "aa", "", ErrTooLong},
		{strings.Repeat("x", 300), "", ErrLabel},
		{strings.Repeat("abc.", 75), "", ErrTooLong},
		{"we!rd.example", "", ErrBadChars},
		{"a\x01/b.example", "", ErrBadChars}, // an escaped dot is fine in a query, not in a list
	})
}

// Query takes names as dnsmasq hands them over: any octet, with NUL, '.'
// and the escape byte escaped (see Escape).
func TestQuery(t *testing.T) {
	esc := func(n int) string { return strings.Repeat("\x01\x01", n) } // n escaped NULs
	checkCases(t, "Query", Query, []nameCase{
		{"We!rd.Tracker.NET.", "we!rd.tracker.net", nil},
		{"a b.example", "a b.example", nil},
		{"\xc3\xbc\xC3.example", "\xc3\xbc\xc3.example", nil}, // only ASCII letters fold
		{"a\x01/b.example", "a\x01/b.example", nil},           // "a.b" is one label
		{"a\x01\x02.example", "a\x01\x02.example", nil},       // an escaped escape
		{esc(63) + ".example", esc(63) + ".example", nil},     // 63 octets, 126 bytes
		{esc(64) + ".example", "", ErrLabel},
		{strings.Repeat(esc(60)+".", 4) + "a", strings.Repeat(esc(60)+".", 4) + "a", nil}, // 246 octets, 487 bytes
		{strings.Repeat(esc(63)+".", 4) + "a", "", ErrTooLong},                            // 257 octets
		{"a\x01", "", ErrEscape},
		{"a\x01b.example", "", ErrEscape},
		{"a\x00b", "", ErrBadChars},
		{"a..b", "", ErrLabel},
		{"", "", ErrEmpty},
	})
	if got := strings.Join(Suffixes("a\x01/b.tracker.net"), " "); got != "a\x01/b.tracker.net tracker.net net" {
		t.Errorf("an escaped dot split a label: %q", got)
	}
}

func TestSuffixes(t *testing.T) {
	got := strings.Join(Suffixes("a.b.tracker.net"), " ")
	if got != "a.b.tracker.net b.tracker.net tracker.net net" {
		t.Fatalf("Suffixes = %q", got)
	}
	if s := Suffixes("com"); len(s) != 1 || s[0] != "com" {
		t.Fatalf("Suffixes(com) = %v", s)
	}
}

// lowerASCII is strings.ToLower for ASCII letters only, leaving other
// bytes (and invalid UTF-8) as they are.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// queryRef is Query written plainly, one octet at a time; the fuzz target
// checks that the table-driven Query agrees with it on every input.
func queryRef(s string) (string, bool) {
	s = strings.TrimSuffix(s, ".")
	var labels [][]byte
	cur := []byte{}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			labels, cur = append(labels, cur), []byte{}
		case c == 0:
			return "", false
		case c == Escape:
			if i+1 == len(s) || (s[i+1] != 1 && s[i+1] != '/' && s[i+1] != 2) {
				return "", false
			}
			cur = append(cur, s[i+1]-1)
			i++
		default:
			cur = append(cur, c)
		}
	}
	labels = append(labels, cur)
	octets := len(labels) - 1
	for _, l := range labels {
		if len(l) == 0 || len(l) > MaxLabel {
			return "", false
		}
		octets += len(l)
	}
	if s == "" || octets > MaxLen {
		return "", false
	}
	return lowerASCII(s), true
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"example.com", "A.B.", "", "..", "a\xff.b", strings.Repeat("a", 300), "a\x01/B", "a\x01", "\x01\x01" + strings.Repeat("a", 62) + ".b", strings.Repeat("\x01\x02", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, qerr := Query(s)
		if ref, ok := queryRef(s); ok != (qerr == nil) || ok && ref != q {
			t.Fatalf("Query(%q) = %q, %v; the plain version gives %q, %v", s, q, qerr, ref, ok)
		}
		if qerr == nil {
			if len(q) == 0 || lowerASCII(q) != q || strings.HasSuffix(q, ".") || strings.IndexByte(q, 0) >= 0 {
				t.Fatalf("Query(%q) = %q breaks its contract", s, q)
			}
			if again, err := Query(q); err != nil || again != q {
				t.Fatalf("Query not idempotent: %q -> %q -> %q, %v", s, q, again, err)
			}
		}
		n, err := Normalize(s)
		if err != nil {
			return
		}
		if len(n) == 0 || len(n) > MaxLen || strings.ToLower(n) != n || strings.HasSuffix(n, ".") || n != q {
			t.Fatalf("Normalize(%q) = %q breaks its contract (Query gave %q, %v)", s, n, q, qerr)
		}
		again, err := Normalize(n)
		if err != nil || again != n {
			t.Fatalf("Normalize not idempotent: %q -> %q -> %q, %v", s, n, again, err)
		}
		if sfx := Suffixes(n); sfx[0] != n || sfx[len(sfx)-1] != n[strings.LastIndexByte(n, '.')+1:] {
			t.Fatalf("Suffixes(%q) = %v", n, sfx)
		}
	})
}

// Query is on every lookup; Normalize (list entries only) is the same
// scan plus the host-name byte check, and is the reference here.
func BenchmarkQuery(b *testing.B) {
	for b.Loop() {
		if _, err := Query("cdn-17.static.example-tracker.net"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalize(b *testing.B) {
	for b.Loop() {
		if _, err := Normalize("cdn-17.static.example-tracker.net"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestASCII(t *testing.T) {
	for in, want := range map[string]string{
		"Bücher.Example.":  "xn--bcher-kva.example",
		"www.münchen.de":   "www.xn--mnchen-3ya.de",
		"Ads.Example.":     "Ads.Example.", // ASCII: left for Query or Normalize
		"we!rd\\032.a.b":   "we!rd\\032.a.b",
		"xn--bcher-kva.de": "xn--bcher-kva.de",
	} {
		if got, err := ASCII(in); err != nil || got != want {
			t.Errorf("ASCII(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if got, err := ASCII("bad\ufffd.example"); err == nil {
		t.Errorf("ASCII of a name IDNA refuses = %q, no error", got)
	}
}

func TestUnwild(t *testing.T) {
	for in, want := range map[string]struct {
		n    string
		wild bool
	}{
		"*.ads.example": {"ads.example", true},
		".ads.example":  {"ads.example", true},
		"ads.example":   {"ads.example", false},
		"..ads.example": {"..ads.example", false},
		"*ads.example":  {"*ads.example", false},
		"*.":            {"", true},
		"":              {"", false},
	} {
		if n, wild := Unwild(in); n != want.n || wild != want.wild {
			t.Errorf("Unwild(%q) = %q, %v; want %q, %v", in, n, wild, want.n, want.wild)
		}
	}
}
