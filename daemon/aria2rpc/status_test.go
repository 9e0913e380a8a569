package aria2rpc

import (
	"encoding/hex"
	"math/bits"
	"strconv"
	"testing"

	"github.com/idmproject/idm/store"
)

// The bitfield is aria2's: hex, piece 0 the highest bit of the first
// byte, the bits past the last piece zero.
func TestHexBits(t *testing.T) {
	for _, tc := range []struct {
		n    int
		set  []int
		want string
	}{
		{0, nil, ""},
		{1, nil, "00"},
		{1, []int{0}, "80"},
		{8, []int{0, 7}, "81"},
		{9, []int{0, 8}, "8080"},
		{12, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, "fff0"},
		{17, []int{1, 9, 16}, "404080"},
		{70, []int{3, 64, 69}, "1000000000000000" + "84"},
	} {
		bm := store.NewBitmap(tc.n)
		for _, i := range tc.set {
			bm.Set(i)
		}
		if got := hexBits(bm); got != tc.want {
			t.Errorf("%d pieces, %v verified: %q, want %q", tc.n, tc.set, got, tc.want)
		}
	}
}

// tellStatus gives pieceLength, numPieces and the bitfield once the
// file is known, never before: from the transfer while the download is
// active, as stored while it is paused, every piece once complete; with
// keys, the bitfield only when asked for.
func TestMethods_TellStatus_Pieces(t *testing.T) {
	e := newEnv(t, nil)
	const size = 1<<20 + 1000
	data := testData(t, size, 5)
	m := mirror(t, data)

	var none string
	e.call(&none, "aria2.addUri", []string{"http://127.0.0.1:1/nothing.bin"})
	e.waitStatus(none, statusActive)
	for _, k := range []string{"bitfield", "pieceLength", "numPieces"} {
		if st := e.status(none); st[k] != nil {
			t.Errorf("a download whose file is not known yet has %s: %v", k, st)
		}
	}
	e.call(nil, "aria2.remove", none)

	g := e.addSlow(m.URL+"/f.bin", nil)
	var st map[string]any
	waitFor(t, "a piece verified", func() bool {
		st = e.status(g)
		return st["completedLength"] != "0" && st["bitfield"] != nil
	})
	pieceLen, n := checkPieces(t, "active", st, size)
	if done := bytesOf(t, st, pieceLen, size); done < atoi(t, st["completedLength"]) || done == size {
		t.Errorf("active: the bitfield holds %d bytes, with %s verified before it was read", done, st["completedLength"])
	}
	if got := e.status(g, "gid", "completedLength"); len(got) != 2 {
		t.Errorf("keys without bitfield: %v", got)
	}
	if got := e.status(g, "bitfield", "numPieces"); got["bitfield"] == nil || got["numPieces"] != strconv.Itoa(n) || len(got) != 2 {
		t.Errorf("keys bitfield and numPieces: %v", got)
	}

	e.call(nil, "aria2.pause", g)
	st = e.waitStatus(g, statusPaused)
	checkPieces(t, "paused", st, size)
	if done := bytesOf(t, st, pieceLen, size); done != atoi(t, st["completedLength"]) {
		t.Errorf("paused: the bitfield holds %d bytes, completedLength is %s", done, st["completedLength"])
	}
	var waiting []map[string]any
	e.call(&waiting, "aria2.tellWaiting", 0, 10, []string{"gid", "bitfield"})
	if len(waiting) != 1 || waiting[0]["bitfield"] != st["bitfield"] {
		t.Errorf("tellWaiting: %v; tellStatus's bitfield %v", waiting, st["bitfield"])
	}

	e.call(nil, "aria2.changeOption", g, map[string]any{"max-download-limit": "0"})
	e.call(nil, "aria2.unpause", g)
	st = e.waitStatus(g, statusComplete)
	checkPieces(t, "complete", st, size)
	want := ""
	for range n / 8 {
		want += "ff"
	}
	if r := n % 8; r > 0 {
		want += hex.EncodeToString([]byte{byte(0xff << (8 - r))})
	}
	if st["bitfield"] != want {
		t.Errorf("complete: bitfield %v, want %s", st["bitfield"], want)
	}
	var stoppedList []map[string]any
	e.call(&stoppedList, "aria2.tellStopped", 0, 10, []string{"gid", "bitfield", "pieceLength"})
	for _, s := range stoppedList {
		if s["gid"] == g && (s["bitfield"] != want || s["pieceLength"] != st["pieceLength"]) {
			t.Errorf("tellStopped: %v", s)
		}
	}
}

// checkPieces checks st's pieceLength, numPieces and bitfield against
// each other and the file's size, and returns the first two.
func checkPieces(t *testing.T, what string, st map[string]any, size int) (pieceLen, n int) {
	t.Helper()
	pieceLen, n = atoi(t, st["pieceLength"]), atoi(t, st["numPieces"])
	if pieceLen <= 0 || n != (size+pieceLen-1)/pieceLen {
		t.Fatalf("%s: pieceLength %v, numPieces %v for %d bytes", what, st["pieceLength"], st["numPieces"], size)
	}
	b, err := hex.DecodeString(st["bitfield"].(string))
	if err != nil || len(b) != (n+7)/8 || st["bitfield"] != hex.EncodeToString(b) {
		t.Fatalf("%s: bitfield %q for %d pieces", what, st["bitfield"], n)
	}
	if r := n % 8; r > 0 && b[len(b)-1]<<r != 0 {
		t.Errorf("%s: bitfield %q sets bits past piece %d", what, st["bitfield"], n-1)
	}
	return pieceLen, n
}

// bytesOf returns the bytes of the pieces st's bitfield holds.
func bytesOf(t *testing.T, st map[string]any, pieceLen, size int) int {
	t.Helper()
	b, _ := hex.DecodeString(st["bitfield"].(string))
	total := 0
	for i, c := range b {
		total += bits.OnesCount8(c) * pieceLen
		if last := (size - 1) / pieceLen; i == last/8 && c&(0x80>>(last%8)) != 0 {
			total -= pieceLen - (size - last*pieceLen)
		}
	}
	return total
}

// atoi reads one of aria2's numbers, a string of digits.
func atoi(t *testing.T, v any) int {
	t.Helper()
	s, _ := v.(string)
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%v is not one of aria2's numbers", v)
	}
	return n
}
