package store

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// Fuzz targets for what the store reads back from its file. Run one with
//
//	go test -run '^$' -fuzz '^FuzzDecodeRecord$' -fuzztime 60s ./store

// FuzzDecodeRecord decodes the fuzz bytes as a stored job record, as Get
// and List do. A record that decodes must encode again, and what it
// encodes to must decode to the same record; one that does not decode
// must say which job it is.
func FuzzDecodeRecord(f *testing.F) {
	full := testRecord()
	full.Expect = [32]byte{9, 31: 9}
	full.DirID = FileID{Dev: 2049, Ino: 131}
	full.Part = "file.iso.idmpart"
	full.PartStamp = FileStamp{ID: FileID{Dev: 2049, Ino: 77}, Size: 1000, ModTime: 1764079200000000000, ChangeTime: 1764079200000000001}
	for _, r := range []*Record{testRecord(), full, {ID: 1, Sources: []string{"idm://h:1"}}} {
		b, err := json.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"content":"zz"}`, `{"content":12}`, `{"expect":"` + strings.Repeat("ab", 32) + `"}`,
		`{"id":1,"id":2}`, `{"ID":3,"Content":"` + strings.Repeat("0", 64) + `"}`, `{"created":"2025-11-25T14:00:00+23:59"}`,
		`{"size":-1,"segment_size":-5}`, `{"source_stats":[null,{}]}`, `{"sources":["a"]}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		r := new(Record)
		if err := r.UnmarshalJSON(v); err != nil {
			return
		}
		once, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("a record read back cannot be written again: %v\n%q", err, v)
		}
		again := new(Record)
		if err := again.UnmarshalJSON(once); err != nil {
			t.Fatalf("a record written cannot be read back: %v\n%s", err, once)
		}
		twice, err := json.Marshal(again)
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("a record changed on its way through the store (%v):\n%s\n%s", err, once, twice)
		}
	})
}
