package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"
)

// dbFile is one opened database file. Operators publish a new list by
// renaming a complete file over the old one (rsync, install, mv) or by
// flipping a symlink; the open connections still read the old file, and
// PRAGMA data_version never changes there. refresh compares the file at
// Path with this one and opens the new one beside it.
type dbFile struct {
	db              *sql.DB
	poll            *sql.Conn // dedicated: PRAGMA data_version is per connection
	id              fileID
	real            string // the name SQLite uses, symlinks resolved: its WAL is real+"-wal"
	lastDataVersion int64
	journal         string // journal_mode, when the file holds tables and it is not WAL
}

// fileID tells files apart: device and inode name the file; size and
// modification time tell whether a rejected file has changed since.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func (a fileID) sameFile(b fileID) bool { return a.dev == b.dev && a.ino == b.ino }

// realName is the name SQLite opens path by: absolute, symlinks resolved.
func realName(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return path
}

func statID(path string) (fileID, os.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, nil, err
	}
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id, fi, nil
}

// close closes the file's connections (the caller has closed the
// statements of its snapshot, which waits for lookups still reading) and
// returns once the file is no longer open.
func (f *dbFile) close() error {
	f.poll.Close()
	err := f.db.Close()
	// A query cancelled by stop hands its connection back from one of
	// database/sql's own goroutines, possibly after db.Close returned;
	// the file stays open until then.
	for deadline := time.Now().Add(5 * time.Second); f.db.Stats().OpenConnections > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return err
}

// openFile opens the database at o.Path read-only and checks that it is
// an SQLite database, naming the failure an operator can act on.
func openFile(ctx context.Context, o Options) (*dbFile, error) {
	id, fi, err := statID(o.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, o.Path)
		}
		return nil, fmt.Errorf("database %s: %w%s", o.Path, err, permissionHint(err))
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("database %s: is a directory", o.Path)
	}
	fh, err := os.Open(o.Path)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w%s", o.Path, err, permissionHint(err))
	}
	fh.Close()
	dsn := fmt.Sprintf("file:%s?mode=ro&_busy_timeout=%d", escapePath(o.Path), o.BusyTimeout.Milliseconds())
	if o.MmapSize > 0 {
		dsn += fmt.Sprintf("&_mmap_size=%d", o.MmapSize)
	}
	db := sql.OpenDB(pinned{drv: &sqlite3.SQLiteDriver{}, dsn: dsn, path: o.Path, id: id})
	db.SetMaxOpenConns(o.MaxConns + 1)
	db.SetMaxIdleConns(o.MaxConns + 1)
	db.SetConnMaxLifetime(0)
	f := &dbFile{db: db, id: id, real: realName(o.Path)}
	if f.poll, err = db.Conn(ctx); err != nil {
		db.Close()
		return nil, openError(o.Path, err)
	}
	var n int
	if err := f.poll.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil {
		f.close()
		return nil, openError(o.Path, err)
	}
	var jm string
	if err := f.poll.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&jm); err == nil && n > 0 && !strings.EqualFold(jm, "wal") {
		f.journal = jm
	}
	// Fill the pool now, while Path is this file: a connection opened
	// after a replacement would fail (see pinned), and the old file must
	// keep answering until the new one can be opened.
	conns := make([]*sql.Conn, 0, o.MaxConns)
	for range o.MaxConns {
		c, err := db.Conn(ctx)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	return f, nil
}

// errReplaced is a connection refused because Path is no longer the
// file its pool belongs to.
var errReplaced = errors.New("the database file was replaced")

// pinned opens connections to one file only. database/sql opens
// connections lazily, by name; after a rename the name is another file,
// and a pool holding connections to both would mix two lists.
type pinned struct {
	drv  driver.Driver
	dsn  string
	path string
	id   fileID
}

func (p pinned) Connect(context.Context) (driver.Conn, error) {
	c, err := p.drv.Open(p.dsn)
	if err != nil {
		return nil, err
	}
	if id, _, err := statID(p.path); err != nil || !id.sameFile(p.id) {
		c.Close()
		return nil, fmt.Errorf("%s: %w", p.path, errReplaced)
	}
	return c, nil
}

func (p pinned) Driver() driver.Driver { return p.drv }

// permissionHint names the user a permission error is about: dnsmasq
// opens the list after dropping privileges, so a list root can read may
// not be readable by the process that opens it.
func permissionHint(err error) string {
	if !errors.Is(err, os.ErrPermission) {
		return ""
	}
	return fmt.Sprintf(" (this process runs as uid %d: dnsmasq opens the list after dropping privileges to its user=, so that user must be able to read the list and to enter every directory above it)", os.Geteuid())
}

// openError names the failure an operator can act on.
func openError(path string, err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrNotADB || se.Code == sqlite3.ErrCorrupt) {
		return fmt.Errorf("%w: %s: %v", ErrNotDatabase, path, err)
	}
	if errors.As(err, &se) && (se.Code == sqlite3.ErrReadonly || se.Code == sqlite3.ErrCantOpen) && inWALMode(path) {
		// A reader of a WAL database creates and writes its -shm and
		// -wal files; SQLite's own message ("attempt to write a readonly
		// database") names neither.
		return fmt.Errorf("open %s: %w (the database is in WAL mode, and even a reader needs to create or write %s-shm and %s-wal next to it: make the directory, and those files if present, writable by uid %d, the user dnsmasq runs as after dropping privileges; or publish a rollback-journal copy, made with VACUUM INTO)",
			path, err, path, path, os.Geteuid())
	}
	return fmt.Errorf("open %s: %w", path, err)
}

// walHasPages reports whether the write-ahead log SQLite would use for the
// database named real (see realName) holds pages.
func walHasPages(real string) bool {
	fi, err := os.Stat(real + "-wal")
	return err == nil && fi.Size() > 0
}

// inWALMode reads the file's header: bytes 18 and 19 are 2 in WAL mode.
func inWALMode(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var h [20]byte
	_, err = io.ReadFull(f, h[:])
	return err == nil && h[18] == 2 && h[19] == 2
}

func escapePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// replacement returns the file now at Path when it is not the one open
// (nil when it is, or when it is missing or was already rejected as it
// is). A missing file is not an error: a publisher may be between an
// unlink and a rename, and the open file still answers.
func (s *Store) replacement(ctx context.Context) (*dbFile, error) {
	id, _, err := statID(s.opts.Path)
	if err != nil {
		if !s.missing {
			s.missing = true
			s.opts.Logf("blockcache: %v; still answering from the file opened before", err)
		}
		return nil, nil
	}
	s.missing = false
	if id.sameFile(s.file.id) || id == s.rejected {
		return nil, nil
	}
	// SQLite finds a file's write-ahead log by name, so after a rename a
	// log the old file's writer left next to it would be read as the new
	// file's: every page in it would shadow the new file's. Wait until that
	// log is gone or empty (checkpointed and truncated); the old file
	// answers meanwhile. A symlink flipped to another directory has a log
	// of its own.
	if real := realName(s.opts.Path); real == s.file.real {
		if walHasPages(real) {
			if s.walWait != id {
				s.walWait = id
				s.opts.Logf("blockcache: %s was replaced, but %s-wal holds the old file's pages, which SQLite would read as the new file's; still answering from the old file until a writer checkpoints it (PRAGMA wal_checkpoint(TRUNCATE)) or it is removed", real, real)
			}
			return nil, nil
		}
	}
	f, err := openFile(ctx, s.opts)
	if err != nil {
		s.rejected = id
		return nil, fmt.Errorf("%s was replaced, but the new file cannot be opened (still answering from the old one): %w", s.opts.Path, err)
	}
	return f, nil
}
