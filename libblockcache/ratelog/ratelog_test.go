package ratelog

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRateLimit(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, 2, time.Minute)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for i := 0; i < 10; i++ {
		l.Logf("valkey down: %d", i)
	}
	l.Logf("other %s", "x")
	if got := strings.Count(buf.String(), "\n"); got != 3 {
		t.Fatalf("logged %d lines, want 3:\n%s", got, buf.String())
	}
	now = now.Add(time.Minute)
	l.Logf("valkey down: %d", 99)
	if !strings.Contains(buf.String(), "8 similar messages suppressed") || !strings.Contains(buf.String(), "valkey down: 99") {
		t.Fatalf("suppression not reported:\n%s", buf.String())
	}
}
