// Package bytesize reads and writes byte counts and rates as people type
// and read them: "40M", "1.5Gi", "20.0 MiB". It is a leaf, so that
// idmctl can use it without linking any protocol.
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Parse reads a byte count or rate such as "40M", "1.5Gi" or "512":
// K, M, G and T are powers of 1000, Ki, Mi, Gi and Ti powers of 1024; a
// trailing "B" or "B/s" is allowed. The result is at least 1.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(t, "/s")
	t = strings.TrimSuffix(t, "B")
	mult := float64(1)
	for _, u := range []struct {
		suffix string
		mult   float64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"K", 1e3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || v <= 0 || v*mult > 1<<62 || v*mult < 1 {
		return 0, fmt.Errorf("invalid size %q: want a positive number with an optional K, M, G (powers of 1000) or Ki, Mi, Gi (powers of 1024)", s)
	}
	return int64(v * mult), nil
}

// Format writes n in the largest binary unit that keeps it at or
// above one, with one decimal: "1.5 MiB".
func Format(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}
