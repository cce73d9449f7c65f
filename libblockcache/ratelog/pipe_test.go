package ratelog

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// drain reads what the pipe holds without waiting.
func drain(t *testing.T, fd int) string {
	t.Helper()
	var sb strings.Builder
	buf := make([]byte, 1<<16)
	for {
		n, err := unix.Read(fd, buf)
		if n > 0 {
			sb.Write(buf[:n])
		}
		if err == unix.EAGAIN {
			return sb.String()
		}
		if err != nil || n == 0 {
			t.Fatalf("read: %d, %v", n, err)
		}
	}
}

func newPipe(t *testing.T) (int, *PipeWriter) {
	t.Helper()
	r, w, err := NewPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(r); unix.Close(w.fd) })
	return r, w
}

func TestPipeDropsWholeLinesAndSaysSo(t *testing.T) {
	r, w := newPipe(t)
	l := New(w, 1<<30, time.Minute)
	pad := strings.Repeat("x", 100)
	sent := 0
	for ; w.Dropped.Load() < 3; sent++ {
		if sent > 1<<20 {
			t.Fatal("the pipe never filled")
		}
		l.Logf("line %d %s", sent, pad)
	}
	got := strings.Split(strings.TrimSuffix(drain(t, r), "\n"), "\n")
	if len(got)+3 != sent {
		t.Fatalf("%d lines read, %d sent, 3 dropped", len(got), sent)
	}
	for i, line := range got {
		if want := fmt.Sprintf("line %d %s", i, pad); line != want {
			t.Fatalf("line %d read as %q", i, line)
		}
	}
	l.Logf("after")
	if got, want := drain(t, r), "blockcache: 3 log lines dropped: dnsmasq did not read them in time\nafter\n"; got != want {
		t.Fatalf("after draining, read %q, want %q", got, want)
	}
	l.Logf("later")
	if got := drain(t, r); got != "later\n" {
		t.Fatalf("the drop was reported again: %q", got)
	}
}

func TestPipeCutsLongLines(t *testing.T) {
	r, w := newPipe(t)
	l := New(w, 10, time.Minute)
	l.Logf("pattern %s", strings.Repeat("é", 5000))
	got := drain(t, r)
	if len(got) > PipeLine || !strings.HasSuffix(got, " [truncated]\n") || !strings.HasPrefix(got, "pattern éé") || !utf8.ValidString(got) {
		t.Fatalf("a 10 kB line was written as %d bytes: %.40q...%q", len(got), got, got[max(0, len(got)-20):])
	}
	l.Logf("next")
	if got := drain(t, r); got != "next\n" {
		t.Fatalf("next line read as %q", got)
	}
}
