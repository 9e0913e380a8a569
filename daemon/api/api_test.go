package api

import (
	"strings"
	"testing"
	"time"
)

func TestWriteReport(t *testing.T) {
	t0 := time.Unix(1000, 0)
	prev := &Progress{Size: 300000, Verified: 10240, Time: t0, Sources: []SourceProgress{{Verified: 10240}, {Verified: 0}}}
	cur := &Progress{Size: 300000, Verified: 10240 + 3*20480, Time: t0.Add(2 * time.Second),
		Sources: []SourceProgress{{Verified: 10240 + 2*20480}, {Verified: 20480}}}
	var b strings.Builder
	if err := WriteReport(&b, prev, cur); err != nil {
		t.Fatal(err)
	}
	want := "Server 1: 51200/300000, download speed: 20kb/s\n" +
		"Server 2: 20480/300000, download speed: 10kb/s\n" +
		"Total: 71680/300000, download speed: 30kb/s\n"
	if b.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	WriteReport(&b, nil, cur)
	if !strings.HasPrefix(b.String(), "Server 1: 51200/300000, download speed: 0kb/s\n") {
		t.Errorf("first report (no previous one) should show speed 0:\n%s", b.String())
	}
}
