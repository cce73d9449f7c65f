package blockcache

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Build says which build of the library this is, so that an operator can
// tell what each node of a fleet runs (blockcachectl version, the SIGUSR1
// line, the metrics' blockcache_build_info).
type Build struct {
	// Revision is the source revision, 12 hex digits, "+dirty" when the
	// tree had uncommitted changes; or the module version when built from
	// a released module; "unknown" when the build recorded neither
	// (go build -buildvcs=false, a source tarball).
	Revision string
	// Time is the revision's commit time (RFC 3339), "" when unknown.
	Time      string
	GoVersion string
}

// revision is set at link time by the Makefile (-X): Go's own stamp of
// the source revision is missing wherever GOFLAGS has -buildvcs=false, and
// from builds of a copy without .git.
var revision string

// ReadBuild reads the revision the Makefile stamped, or else Go's build
// information of the running binary.
func ReadBuild() Build {
	b := Build{Revision: "unknown", GoVersion: runtime.Version()}
	if revision != "" {
		b.Revision = revision
		return b
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" && !strings.HasPrefix(v, "v0.0.0-") {
		b.Revision = v
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		b.Revision = rev[:min(12, len(rev))]
		if dirty {
			b.Revision += "+dirty"
		}
	}
	return b
}

// String is "libblockcache REVISION (TIME, GOVERSION)".
func (b Build) String() string {
	when := b.GoVersion
	if b.Time != "" {
		when = b.Time + ", " + when
	}
	return "libblockcache " + b.Revision + " (" + when + ")"
}
