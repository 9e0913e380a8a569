// Package safetext makes text that came from the network safe to show
// and to use as a name: no control characters (which can move a
// terminal's cursor, clear it or fake a line), no bidirectional controls
// (which show "invoice\u202Efdp.exe" as "invoiceexe.pdf"), no invisible
// characters (which make two different names look the same).
package safetext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Unsafe reports whether r must not be shown as it is: a control
// character, a bidirectional control, an invisible formatting character,
// a line or paragraph separator, or not a character at all.
func Unsafe(r rune) bool {
	switch {
	case r == utf8.RuneError, unicode.IsControl(r):
		return true
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C:
		return true // bidirectional controls
	case r >= 0x200B && r <= 0x200D, r == 0x2060, r == 0xFEFF, r == 0x00AD, r == 0x180E:
		return true // zero-width and invisible characters
	case r == 0x2028, r == 0x2029:
		return true // line and paragraph separators
	}
	return unicode.Is(unicode.Cf, r) // other format characters
}

// Line returns s as one line that is safe to print: every unsafe
// character replaced by replacement, and at most max bytes (0: no limit),
// cut on a character boundary with "..." added when cut.
func Line(s string, replacement rune, max int) string {
	var b strings.Builder
	for _, r := range s {
		if Unsafe(r) {
			r = replacement
		}
		if max > 0 && b.Len()+utf8.RuneLen(r) > max {
			b.WriteString("...")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
