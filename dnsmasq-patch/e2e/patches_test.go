package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// patchFile is one file's part of a patch: the lines it adds and, for a
// file the patch creates, the whole new text.
type patchFile struct {
	created bool
	text    string   // the created file's text
	hunks   []string // each hunk's added lines, for an upstream file
}

// readPatch splits a unified diff (as scripts/refresh-patch.sh writes it)
// by file.
func readPatch(t *testing.T, path string) map[string]*patchFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*patchFile{}
	var cur *patchFile
	var text, hunk strings.Builder
	flush := func() {
		if cur == nil {
			return
		}
		if cur.created {
			cur.text = text.String()
		} else if hunk.Len() > 0 {
			cur.hunks = append(cur.hunks, hunk.String())
		}
		hunk.Reset()
	}
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "+++ b/"):
			flush()
			text.Reset()
			cur = &patchFile{}
			files[strings.TrimPrefix(line, "+++ b/")] = cur
		case cur != nil && strings.HasPrefix(line, "@@ "):
			if strings.HasPrefix(line, "@@ -0,0 ") {
				cur.created = true
			}
			if !cur.created {
				flush()
			}
		case cur != nil && strings.HasPrefix(line, "+"):
			if cur.created {
				text.WriteString(line[1:] + "\n")
			} else {
				hunk.WriteString(line[1:] + "\n")
			}
		}
	}
	flush()
	return files
}

// Every dnsmasq release the patch is kept for (dnsmasq-patch/*.patch for
// 2.90, dnsmasq-patch/V/ for its ports) builds the same blockcache code:
// the files the patch creates are identical in each, so a fix made in one
// release's tree reaches all (scripts/refresh-patch.sh carries them). And
// each change to an upstream file is marked, so the next port can find it.
func TestPatchesForEachRelease(t *testing.T) {
	patches, _ := filepath.Glob("../*.patch")
	ports, _ := filepath.Glob("../[0-9]*/*.patch")
	patches = append(patches, ports...)
	if len(patches) < 2 {
		t.Fatalf("found %v; want the 2.90 patch and at least one port", patches)
	}
	release := regexp.MustCompile(`^\.\./(\d+\.\d+)/`)
	var first map[string]*patchFile
	for _, p := range patches {
		files := readPatch(t, p)
		for _, f := range []string{"src/blockcache.c", "src/blockcache-opts.h"} {
			if files[f] == nil || !files[f].created {
				t.Errorf("%s does not create %s", p, f)
			}
		}
		if first == nil {
			first = files
		} else {
			for _, f := range []string{"src/blockcache.c", "src/blockcache-opts.h"} {
				if files[f] != nil && first[f] != nil && files[f].text != first[f].text {
					t.Errorf("%s in %s differs from %s's: edit one release's tree and run scripts/refresh-patch.sh", f, p, patches[0])
				}
			}
		}
		for name, f := range files {
			if f.created {
				continue
			}
			if len(f.hunks) == 0 {
				t.Errorf("%s: %s has no added lines", p, name)
			}
			for _, h := range f.hunks {
				if !strings.Contains(h, "blockcache") {
					t.Errorf("%s: a hunk of %s is not marked blockcache:\n%s", p, name, h)
				}
			}
		}
		if m := release.FindStringSubmatch(p); m != nil {
			if b, _ := os.ReadFile(p); !strings.Contains(strings.SplitN(string(b), "\n", 2)[0], "dnsmasq "+m[1]) {
				t.Errorf("%s: its first line does not name dnsmasq %s", p, m[1])
			}
		}
	}
}
