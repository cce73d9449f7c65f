package config

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadDnsmasqConf applies the library's options found in a dnsmasq
// configuration file (and the files it includes with conf-file= and
// conf-dir=), so that blockcachectl sees the same db-file and valkey-*
// settings as dnsmasq.
// Other dnsmasq options are ignored; a bad value of ours is an error with
// file and line.
func (c *Config) LoadDnsmasqConf(path string) error {
	return c.loadConf(path, 0)
}

func (c *Config) loadConf(path string, depth int) error {
	if depth > 8 {
		return fmt.Errorf("%s: conf-file nesting too deep", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read dnsmasq configuration: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, _ := strings.Cut(line, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		if key == "conf-file" && val != "" {
			if err := c.loadConf(val, depth+1); err != nil {
				return err
			}
			continue
		}
		if key == "conf-dir" && val != "" {
			if err := c.loadConfDir(val, depth+1); err != nil {
				return err
			}
			continue
		}
		if _, ok := options[key]; !ok {
			continue
		}
		if err := c.Set(key, val); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

// loadConfDir reads the files of a conf-dir=DIR[,SUFFIX...] as dnsmasq
// does (option.c, --conf-dir): in name order, regular files only, without
// dotfiles and editor backups; *SUFFIX keeps only names with one of those
// suffixes, a plain SUFFIX leaves its names out. Debian's dnsmasq reads
// /etc/dnsmasq.d this way, where an operator may have put db-file.
func (c *Config) loadConfDir(spec string, depth int) error {
	parts := strings.Split(spec, ",")
	dir := parts[0]
	var want, skip []string
	for _, p := range parts[1:] {
		switch {
		case p == "" || p == "*":
		case p[0] == '*':
			want = append(want, p[1:])
		default:
			skip = append(skip, p)
		}
	}
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return fmt.Errorf("conf-dir=%s: %w", spec, err)
	}
	hasSuffix := func(name string, suffixes []string) bool {
		for _, s := range suffixes {
			if len(name) > len(s) && strings.HasSuffix(name, s) {
				return true
			}
		}
		return false
	}
	for _, e := range entries {
		name := e.Name()
		if name[0] == '.' || strings.HasSuffix(name, "~") || (name[0] == '#' && strings.HasSuffix(name, "#")) ||
			(want != nil && !hasSuffix(name, want)) || hasSuffix(name, skip) {
			continue
		}
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path) // a symlink counts as what it points to
		if err != nil {
			return fmt.Errorf("conf-dir=%s: %w", spec, err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := c.loadConf(path, depth); err != nil {
			return err
		}
	}
	return nil
}
