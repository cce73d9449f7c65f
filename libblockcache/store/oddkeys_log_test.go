package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
)

// Both reads of every name say what they found: the filter build of a
// list (names written by SQL that the triggers do not rewrite) and the
// sample of a list another tool made (no meta table, so no filter).
func TestOddKeysAreLogged(t *testing.T) {
	inited, _ := testlist.New(t, `INSERT INTO domain VALUES ('*.star.example', NULL, NULL), ('bücher.example', NULL, NULL), ('fine.example', NULL, NULL)`)
	foreign, _ := legacyList(t, legacyDomain,
		`INSERT INTO domain VALUES ('Upper.Example', NULL, NULL), ('trail.example.', NULL, NULL), ('fine.example', NULL, NULL)`)
	for path, want := range map[string]string{
		inited:  `holds 2 listed names that no query asks for, e.g. domain "*.star.example" (a wildcard, where the table covers subdomains without one: ` + "`blockcachectl init`" + ` rewrites it), domain "bücher.example" (Unicode, where clients ask for its xn-- form: ` + "`blockcachectl init`" + ` rewrites it)`,
		foreign: `holds 2 listed names that no query asks for, e.g. domain "Upper.Example" (upper case or a trailing dot: ` + "`blockcachectl init`" + ` rewrites it), domain "trail.example." (upper case or a trailing dot`,
	} {
		l := &logs{}
		s, err := store.Open(context.Background(), store.Options{Path: path, PollInterval: 20 * time.Millisecond, Logf: l.logf})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		found := false
		for !found && time.Now().Before(deadline) {
			found = strings.Contains(l.text(), want)
			time.Sleep(10 * time.Millisecond)
		}
		odd := s.Stats().OddNames
		s.Close()
		if !found {
			t.Errorf("%s: log lacks %q:\n%s", filepath.Base(path), want, l.text())
		}
		if odd != 2 {
			t.Errorf("%s: Stats().OddNames = %d, want 2", filepath.Base(path), odd)
		}
	}
}

// A dnsmasq that loads a saved filter reads no name, so the report of odd
// names is saved with the filter, and it hears of them all the same; a
// filter saved again after the names were fixed says nothing.
func TestOddReportTravelsWithTheSavedFilter(t *testing.T) {
	path, db := testlist.New(t, `INSERT INTO domain VALUES ('bücher.example', NULL, NULL), ('*.star.example', NULL, NULL), ('fine.example', NULL, NULL)`)
	const want = `holds 2 listed names that no query asks for, e.g. domain "`
	if sf := saveFilter(t, path); !strings.HasPrefix(sf.Odd, "2 listed names") {
		t.Fatalf("SaveFilter: Odd %q", sf.Odd)
	}
	w := openWriter(t, path)
	if sf, ok, err := w.SavedFilter(context.Background()); err != nil || !ok || !strings.HasPrefix(sf.Odd, "2 listed names") {
		t.Fatalf("SavedFilter: %+v %v %v", sf, ok, err)
	}
	l := &logs{}
	s := openFiltered(t, path, l.logf)
	all := l.text()
	if st := s.Stats(); st.FilterLoads != 1 || st.OddNames != 2 || !strings.Contains(all, want) || !strings.Contains(all, "(found when the filter was saved)") {
		t.Errorf("a store that loaded the saved filter: %d loads, OddNames %d, log:\n%s", st.FilterLoads, st.OddNames, all)
	}

	testlist.Exec(t, db, `UPDATE domain SET Domain = 'xn--bcher-kva.example' WHERE Domain = 'bücher.example'`, `DELETE FROM domain WHERE Domain = '*.star.example'`)
	if sf := saveFilter(t, path); sf.Odd != "" {
		t.Fatalf("SaveFilter after the fix: Odd %q", sf.Odd)
	}
	if sf, _, _ := w.SavedFilter(context.Background()); sf.Odd != "" {
		t.Fatalf("SavedFilter after the fix: Odd %q", sf.Odd)
	}
	l = &logs{}
	if st := openFiltered(t, path, l.logf).Stats(); st.FilterLoads != 1 || st.OddNames != 0 || strings.Contains(l.text(), "no query asks for") {
		t.Errorf("after the fix: %d loads, OddNames %d, log:\n%s", st.FilterLoads, st.OddNames, l.text())
	}
}
