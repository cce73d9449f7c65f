package listfile

import (
	"errors"
	"strings"
	"testing"
)

// A response policy zone as feeds publish it: the zone's own records and
// directives are skipped, QNAME triggers that block are read, everything
// else is rejected with its reason.
func TestRPZ(t *testing.T) {
	in := "$TTL 300\n" +
		"$ORIGIN rpz.example.\n" +
		"@ SOA ns.rpz.example. hostmaster.rpz.example. (\n" +
		"    2026112701 ; serial\n" +
		"    3600 600 86400 60 )\n" +
		"@ IN NS localhost.\n" +
		"  NS localhost2.\n" +
		"; a comment\n" +
		"ads.example CNAME .\n" +
		"*.ads.example CNAME .\n" +
		"nodata.example 300 IN CNAME *. ; comment\n" +
		"drop.example 1h IN CNAME rpz-drop.\n" +
		"zero.example A 0.0.0.0\n" +
		"Full.Example.rpz.example. CNAME .\n" +
		"allowed.example CNAME rpz-passthru.\n" +
		"portal.example CNAME walled-garden.example.\n" +
		"redirect.example A 192.0.2.1\n" +
		"32.1.2.0.192.rpz-ip CNAME .\n" +
		"ns.bad.rpz-nsdname CNAME .\n" +
		"other.zone. CNAME .\n" +
		"txt.example TXT \"hello\"\n" +
		"$INCLUDE more.zone\n" +
		"@ 3600 IN SOA ns. host. ( 1 2 3 4 5 )\n" +
		"after.example CNAME .\n" +
		"   AAAA ::\n" +
		"ns\n"
	problems := expectRead(t, in, "ads.example ads.example nodata.example drop.example zero.example full.example after.example after.example ns",
		map[int]error{16: ErrZoneRecord, 17: ErrRedirect, 18: ErrZoneRecord, 19: ErrZoneRecord, 20: ErrZoneRecord, 21: ErrZoneRecord, 22: ErrZoneRecord})
	for i, why := range []string{"CNAME walled-garden.example. answers with other data", "192.0.2.1",
		"rpz-ip trigger", "rpz-nsdname trigger", "outside the zone's $ORIGIN", "TXT", "$INCLUDE is not followed"} {
		if i < len(problems) && !strings.Contains(problems[i].Error(), why) {
			t.Errorf("line %d: %v, want it to say %q", problems[i].Line, problems[i], why)
		}
	}
	// An exact-name table takes the name, not "*.name".
	got, problems := readAll(t, "a.example CNAME .\n*.a.example CNAME .\n", Domains, true)
	if strings.Join(got, " ") != "a.example" || len(problems) != 1 || !errors.Is(problems[0].Err, ErrWildcard) {
		t.Errorf("into domain_exact: %q %v", got, problems)
	}
	// Without $ORIGIN, a name written in full cannot be told from the zone's.
	if _, problems = readAll(t, "a.example.rpz. CNAME .\n", Domains, false); len(problems) != 1 || !strings.Contains(problems[0].Error(), "outside the zone's $ORIGIN") {
		t.Errorf("a full name without $ORIGIN: %v", problems)
	}
	// A $ line that is no directive is not skipped unsaid.
	if _, problems = readAll(t, "$popup\n", Domains, false); len(problems) != 1 {
		t.Errorf("$popup: %v", problems)
	}
}

func TestIsTTL(t *testing.T) {
	for f, want := range map[string]bool{"300": true, "1H": true, "1D12H": true, "0": true, "H": false, "1HH": false, "IN": false, "": false, "1X": false} {
		if isTTL(f) != want {
			t.Errorf("isTTL(%q) = %v", f, !want)
		}
	}
}
