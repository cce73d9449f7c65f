package config

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// LoadDnsmasqConf applies the library's options found in a dnsmasq
// configuration file (and the files it includes with conf-file=), so that
// blockcachectl sees the same db-file and valkey-* settings as dnsmasq.
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
		if _, ok := options[key]; !ok {
			continue
		}
		if err := c.Set(key, val); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}
