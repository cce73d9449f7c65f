package ratelog

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// clocked returns a logger into buf whose clock is *now.
func clocked(burst int) (l *Logger, buf *bytes.Buffer, now *time.Time) {
	buf, now = &bytes.Buffer{}, new(time.Time)
	*now = time.Unix(1000, 0)
	l = New(buf, burst, time.Minute)
	l.now = func() time.Time { return *now }
	return l, buf, now
}

func TestRateLimit(t *testing.T) {
	l, buf, now := clocked(2)
	for i := 0; i < 10; i++ {
		l.Logf("valkey down: %d", i)
	}
	l.Logf("other %s", "x")
	if got := strings.Count(buf.String(), "\n"); got != 3 {
		t.Fatalf("logged %d lines, want 3:\n%s", got, buf.String())
	}
	*now = now.Add(time.Minute)
	l.Logf("valkey down: %d", 99)
	if !strings.Contains(buf.String(), "8 similar messages suppressed") || !strings.Contains(buf.String(), "valkey down: 99") {
		t.Fatalf("suppression not reported:\n%s", buf.String())
	}
}

func TestStoppedBurstReportedWithNextLine(t *testing.T) {
	l, buf, now := clocked(1)
	for i := 0; i < 5; i++ {
		l.Logf("valkey down: %d", i)
	}
	*now = now.Add(30 * time.Second)
	l.Logf("list reloaded")
	if strings.Contains(buf.String(), "suppressed") {
		t.Fatalf("suppression reported inside its window:\n%s", buf.String())
	}
	*now = now.Add(30 * time.Second)
	l.Logf("list reloaded again")
	want := "valkey down: 0\nlist reloaded\nblockcache: 4 similar messages suppressed: valkey down: %d\nlist reloaded again\n"
	if buf.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
	l.Logf("and again")
	if n := strings.Count(buf.String(), "suppressed"); n != 1 {
		t.Fatalf("suppression reported %d times", n)
	}
}
