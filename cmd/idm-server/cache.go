package main

import (
	"log/slog"

	"github.com/idmproject/idm/transport"
)

// openCache opens the manifest cache cc names, or returns nil for none.
// A directory the user chose that cannot be used is an error; the
// default one is only worth a warning: the files are hashed as before.
func openCache(cc cacheConfig, log *slog.Logger) (*transport.ManifestCache, error) {
	if cc.noDir != nil {
		log.Warn("no manifest cache: no directory for it; give --cache-dir", "err", cc.noDir)
		return nil, nil
	}
	if cc.dir == "" {
		return nil, nil
	}
	c, err := transport.OpenManifestCache(cc.dir)
	if err != nil {
		if cc.explicit {
			return nil, err
		}
		log.Warn("no manifest cache: every start hashes the files", "err", err)
		return nil, nil
	}
	c.Logger = log
	return c, nil
}
