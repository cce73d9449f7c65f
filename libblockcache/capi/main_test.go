package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/libblockcache/libblockcache/libblockcache/testlist"
)

// The header is hand-written; this keeps it honest: it must declare
// exactly the exported functions, with the same number of parameters.
func TestHeaderMatchesExports(t *testing.T) {
	h, err := os.ReadFile("../../include/blockcache.h")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	cDecl := regexp.MustCompile(`(?m)^(?:int|void|const char \*)\s*(\w+)\(([^)]*)\);`)
	goDecl := regexp.MustCompile(`(?m)^//export (\w+)\nfunc \w+\(([^)]*)\)`)
	arity := func(params string) int {
		params = strings.TrimSpace(params)
		if params == "" || params == "void" {
			return 0
		}
		return strings.Count(params, ",") + 1
	}
	c := map[string]int{}
	for _, m := range cDecl.FindAllStringSubmatch(string(h), -1) {
		c[m[1]] = arity(m[2])
	}
	g := map[string]int{}
	for _, m := range goDecl.FindAllStringSubmatch(string(src), -1) {
		// Go groups "key, value *C.char": count names, not types.
		g[m[1]] = arity(m[2])
	}
	if len(c) == 0 || len(g) == 0 {
		t.Fatalf("parsed nothing: header %d, exports %d", len(c), len(g))
	}
	var names []string
	for n := range c {
		names = append(names, n)
	}
	for n := range g {
		if _, ok := c[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if c[n] != g[n] {
			t.Errorf("%s: header has %d params, export has %d (missing = 0)", n, c[n], g[n])
		}
		if _, ok := c[n]; !ok {
			t.Errorf("%s exported but not declared in blockcache.h", n)
		}
		if _, ok := g[n]; !ok {
			t.Errorf("%s declared in blockcache.h but not exported", n)
		}
	}
}

// TestCABI builds the shared library and a C program that dlopens it, and
// checks verdicts, errors, statistics and the child socket through the ABI.
func TestCABI(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the C ABI is built for Linux")
	}
	dir := t.TempDir()
	so := filepath.Join(dir, "libblockcache.so")
	run(t, exec.Command("go", "build", "-buildmode=c-shared", "-o", so, "."))
	bin := filepath.Join(dir, "abi_test")
	run(t, exec.Command("cc", "-Wall", "-Werror", "-O1", "-I../../include", "-o", bin, "testdata/abi_test.c", "-ldl"))
	path, _ := testlist.New(t, testlist.Fixture...)
	out, err := exec.Command(bin, so, path).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("abi_test: %v", err)
	}
	if !regexp.MustCompile(`(?m)^\d+ passed, 0 failed$`).Match(out) {
		t.Fatal("abi_test did not report a clean run")
	}
}

func run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
}
