package safetext

import "testing"

func TestLine(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		max      int
	}{
		{"plain text", "plain text", 0},
		{"été 東京 😀", "été 東京 😀", 0},
		{"a\nb\rc\td", "a?b?c?d", 0},
		{"\x1b[2J\x1b[31mred", "?[2J?[31mred", 0},
		{"\x00\x07\x7f\u0085\u009b", "?????", 0},
		{"invoice\u202Efdp.exe", "invoice?fdp.exe", 0},
		{"\u2066a\u2069\u200Eb\u200Fc\u061C", "?a??b?c?", 0},
		{"zero\u200Bwidth\u200C\u200D\u2060\uFEFF", "zero?width????", 0},
		{"soft\u00ADhyphen", "soft?hyphen", 0},
		{"line\u2028para\u2029", "line?para?", 0},
		{"bad \xff utf-8", "bad ? utf-8", 0},
		{"abcdefgh", "abcd...", 4},
		{"ééé", "é...", 3},
	} {
		if got := Line(tc.in, '?', tc.max); got != tc.want {
			t.Errorf("Line(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
