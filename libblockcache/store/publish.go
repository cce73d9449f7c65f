package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Publish replaces the list at dst with a consistent copy of the list at
// src, for the readers that have dst open (every dnsmasq of a node, which
// follow the rename: see replacement). The copy is made with VACUUM INTO
// beside dst, flushed to disk and renamed over dst, so a reader sees the
// old file or the new one, never a part of either, even across a crash.
// It is in rollback-journal mode: readers that cannot write dst's
// directory open it all the same. A WAL that dst's own writers left with
// pages in it is checkpointed first, or the readers would wait for it.
// A src made by another tool is first upgraded in place, as `blockcachectl
// init` would, so that the copy carries a list identity and version.
// It returns the published list's version and row counts.
func Publish(ctx context.Context, src, dst string) (Namespace, map[string]int64, error) {
	if fi, err := os.Lstat(dst); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return Namespace{}, nil, fmt.Errorf("%s is a symlink: publish into a new release directory and flip the link instead", dst)
	}
	if realName(src) == realName(dst) {
		return Namespace{}, nil, fmt.Errorf("%s: publishing a list over itself", dst)
	}
	w, err := OpenWriter(ctx, src, false)
	if err != nil {
		return Namespace{}, nil, err
	}
	defer w.Close()
	if err := checkNotOlder(ctx, w, dst); err != nil {
		return Namespace{}, nil, err
	}
	b := make([]byte, 6)
	rand.Read(b)
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".publish-"+hex.EncodeToString(b))
	ns, counts, err := func() (Namespace, map[string]int64, error) {
		if _, err := w.DB.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
			return Namespace{}, nil, fmt.Errorf("copy %s to %s: %w", src, tmp, err)
		}
		cp, err := sql.Open("sqlite3", "file:"+escapePath(tmp)+"?mode=ro")
		if err != nil {
			return Namespace{}, nil, err
		}
		defer cp.Close()
		counts, ns, err := countRules(ctx, cp)
		if err != nil {
			return Namespace{}, nil, fmt.Errorf("read the copy %s: %w", tmp, err)
		}
		if err := syncPath(tmp); err != nil {
			return Namespace{}, nil, err
		}
		return ns, counts, checkpointWAL(ctx, dst)
	}()
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return Namespace{}, nil, err
	}
	return ns, counts, syncPath(filepath.Dir(dst))
}

// checkpointWAL empties the WAL of the file now at path, if it holds pages.
func checkpointWAL(ctx context.Context, path string) error {
	if !walHasPages(realName(path)) {
		return nil
	}
	db, err := sql.Open("sqlite3", "file:"+escapePath(path)+"?_busy_timeout=5000")
	if err != nil {
		return err
	}
	defer db.Close()
	var busy, frames, done int
	if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &done); err != nil {
		return fmt.Errorf("checkpoint %s-wal: %w", path, err)
	}
	if busy != 0 {
		return fmt.Errorf("checkpoint %s-wal: busy (a writer or a long read holds it); nothing was replaced, try again", path)
	}
	return nil
}

// syncPath flushes a file or a directory to disk.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// ErrOlderCopy is returned by Publish for a source that is an older
// version of the list at the destination.
var ErrOlderCopy = errors.New("an older copy of the list it would replace")

// checkNotOlder refuses to publish an older version of the list at dst
// over it (a restored backup, a rollback): the versions written after it
// would repeat numbers the fleet has cached verdicts for, with other
// contents. Readers that see a list go back keep their caches apart (see
// Store.forkedID), but a node that starts later cannot tell; a fork of
// the source (Writer.Fork) can be published safely. A dst that is missing
// or not a list is not compared.
func checkNotOlder(ctx context.Context, w *Writer, dst string) error {
	if _, err := os.Stat(dst); err != nil {
		return nil
	}
	have, err := sql.Open("sqlite3", "file:"+escapePath(dst)+"?mode=ro")
	if err != nil {
		return nil
	}
	defer have.Close()
	old, err := readNamespace(ctx, have)
	if err != nil {
		return nil
	}
	ns, err := w.Namespace(ctx)
	if err != nil {
		return err
	}
	if ns.ListID == old.ListID && ns.Version < old.Version {
		return fmt.Errorf("%w: %s is list %s, %s holds its version %d: publishing it would number later changes as versions the fleet has cached verdicts for; run `blockcachectl fork --db %s` first", ErrOlderCopy, w.Path, ns, dst, old.Version, w.Path)
	}
	return nil
}
