package daemon

import (
	"strings"
	"testing"
	"time"
)

func TestOpen_OneDaemonPerStateDir(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(Config{StateDir: dir, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	start := time.Now()
	if _, err := Open(Config{StateDir: dir, Logger: quietLog()}); err == nil || !strings.Contains(err.Error(), "another idmd") {
		t.Fatalf("second Open: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("second Open took %v to refuse", time.Since(start))
	}
}
