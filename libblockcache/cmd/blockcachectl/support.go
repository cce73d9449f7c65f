package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/blockcache"
)

// countingReader counts the bytes taken from a file, so that progress
// measures a compressed input against its size on disk.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// input is f to read lines from, gunzipped when it starts with gzip's
// magic bytes, whatever its name: a feed published as .gz, a rotated
// dnsmasq log. read says how many bytes of f were taken so far.
func input(f io.Reader) (r io.Reader, read func() int64, err error) {
	c := &countingReader{r: f}
	br := bufio.NewReaderSize(c, 1<<20)
	read = func() int64 { return c.n }
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err // "gzip: invalid header"
		}
		return gunzipped{zr}, read, nil
	}
	return br, read, nil
}

// gunzipped makes a cut-off stream's error say that gzip found it: gzip
// reports it as a bare "unexpected EOF" (the import adds file and line).
type gunzipped struct{ r io.Reader }

func (g gunzipped) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("gzip: the compressed file ends early (cut short?): %w", err)
	}
	return n, err
}

// progress draws a bar with rate and ETA on a terminal; nothing in pipes.
type progress struct {
	w     io.Writer
	total int64
	on    bool
	start time.Time
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer, total int64, quiet bool) *progress {
	p := &progress{w: w, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok && !quiet {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

func (p *progress) update(done int64) {
	if !p.on || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	el := time.Since(p.start).Seconds()
	rate := float64(done) / el / (1 << 20)
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%8.1f MiB read, %6.1f MiB/s ", float64(done)/(1<<20), rate)
	} else {
		frac := float64(done) / float64(p.total)
		eta := time.Duration(el/frac*(1-frac)) * time.Second
		bar := strings.Repeat("#", int(frac*30)) + strings.Repeat(".", 30-int(frac*30))
		fmt.Fprintf(p.w, "\r[%s] %3.0f%% %6.1f MiB/s ETA %-8v", bar, frac*100, rate, eta.Round(time.Second))
	}
	p.drawn = true
}

func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 70))
	}
}

func valkeyStats(ctx context.Context, c *cli, bc *blockcache.Cache) error {
	cl := bc.Valkey.Client()
	if cl == nil || bc.Valkey.CircuitOpen() {
		fmt.Fprintf(c.stdout, "valkey:   %v unreachable\n", c.cfg.Valkey.Addrs())
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	size, err := cl.Do(ctx, cl.B().Dbsize().Build()).AsInt64()
	if err != nil {
		return fmt.Errorf("valkey DBSIZE: %w", err)
	}
	info, err := cl.Do(ctx, cl.B().Info().Section("memory").Build()).ToString()
	if err != nil {
		return fmt.Errorf("valkey INFO: %w", err)
	}
	stats, _ := cl.Do(ctx, cl.B().Info().Section("stats").Build()).ToString()
	// Count this library's keys with a bounded SCAN.
	var ours int64
	cursor := uint64(0)
	deadline := time.Now().Add(5 * time.Second)
	complete := true
	for {
		e, err := cl.Do(ctx, cl.B().Scan().Cursor(cursor).Match(c.cfg.Valkey.Prefix+"*").Count(10000).Build()).AsScanEntry()
		if err != nil {
			return fmt.Errorf("valkey SCAN: %w", err)
		}
		ours += int64(len(e.Elements))
		cursor = e.Cursor
		if cursor == 0 {
			break
		}
		if time.Now().After(deadline) {
			complete = false
			break
		}
	}
	approx := ""
	if !complete {
		approx = " (scan stopped after 5s: at least)"
	}
	fmt.Fprintf(c.stdout, "valkey:   %v\n  keys:           %d (ours, prefix %q: %d%s)\n", c.cfg.Valkey.Addrs(), size, c.cfg.Valkey.Prefix, ours, approx)
	for _, k := range []string{"used_memory_human", "maxmemory_human", "maxmemory_policy"} {
		fmt.Fprintf(c.stdout, "  %-15s %s\n", k+":", infoField(info, k))
	}
	for _, k := range []string{"keyspace_hits", "keyspace_misses", "evicted_keys", "expired_keys"} {
		fmt.Fprintf(c.stdout, "  %-15s %s\n", k+":", infoField(stats, k))
	}
	return nil
}

func infoField(info, key string) string {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+":"); ok {
			return v
		}
	}
	return "?"
}
