package transport

import (
	"bytes"
	"testing"
)

// TestIDMSource_Open reaches a real server through the Source interface.
func TestIDMSource_Open(t *testing.T) {
	path, data := randomFile(t, 10_000, 50)
	srv := startServer(t, path, nil)
	src := &IDMSource{Addr: addrOf(t, srv)}
	st, err := src.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := st.Manifest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sameManifest(t, m, srv.Manifest)
	if err := st.Request(10, 20); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := st.ReceiveTo(&got, 20); err != nil || !bytes.Equal(got.Bytes(), data[10:30]) {
		t.Fatalf("ReceiveTo: %v", err)
	}
}
