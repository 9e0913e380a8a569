package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/idmproject/idm/daemon/api"
)

// BenchmarkQueue_Jobs renders 10,000 jobs and encodes them as the
// control API does.
func BenchmarkQueue_Jobs(b *testing.B) {
	q := openWithJobs(b, 10000, nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := json.NewEncoder(io.Discard).Encode(q.Jobs()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueue_Create adds jobs to a store that holds 10 and one that
// holds 10,000: the cost must not grow with the store.
func BenchmarkQueue_Create(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			q := openWithJobs(b, n, nil)
			out := b.TempDir()
			i := 0
			for b.Loop() {
				i++
				req := api.CreateRequest{Sources: []string{fmt.Sprintf("idm://127.2.%d.%d:9", i/250, i%250+1)}, Dir: out}
				if _, _, err := q.Create(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
