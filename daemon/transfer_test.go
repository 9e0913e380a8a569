package daemon

import (
	"context"
	"testing"
)

func TestTransfer_Run_FourServers(t *testing.T) {
	path, want := testFile(t, 8<<20+12345, 1)
	srv := startServers(t, path, 0, 0, 0, 0, 0)
	db := openDB(t, "")
	rec := newJob(t, db, serverSources(srv...))
	tr := &Transfer{DB: db, Job: rec.ID, Logger: quietLog()}
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := checkResult(t, db, rec.ID, want)
	var sum int64
	for _, s := range got.SourceStats {
		if s.Bytes == 0 {
			t.Errorf("source %s delivered nothing", s.Source)
		}
		sum += s.Bytes
	}
	if sum != int64(len(want)) {
		t.Errorf("sources delivered %d verified bytes in all, want %d", sum, len(want))
	}
}
