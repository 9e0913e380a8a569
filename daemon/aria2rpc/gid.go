package aria2rpc

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// gidLen is the length of a gid: a job's 64-bit ID in hex.
const gidLen = 16

// gid returns the gid of job id: its ID as 16 lowercase hex digits. IDs
// are never reused, so a gid names one job for good, across restarts.
func gid(id uint64) string { return fmt.Sprintf("%016x", id) }

// findGID returns the ID of the job raw names, among the jobs the caller
// of ctx may see: a whole gid, or, as aria2 takes one, a prefix of
// exactly one job's gid. A job the caller may not see is not found.
func (s *Server) findGID(ctx context.Context, raw string) (uint64, error) {
	if raw == "" || len(raw) > gidLen || strings.Trim(strings.ToLower(raw), "0123456789abcdef") != "" {
		return 0, failf("Invalid GID %s", raw)
	}
	if len(raw) == gidLen {
		id, _ := strconv.ParseUint(raw, 16, 64)
		if id == 0 || !s.Queue.MayChange(ctx, id) {
			return 0, failf("GID %s is not found", raw)
		}
		return id, nil
	}
	prefix := strings.ToLower(raw)
	var found uint64
	n := 0
	for after := uint64(0); ; {
		page := s.Queue.ListFor(ctx, after, listPage)
		for _, j := range page {
			if strings.HasPrefix(gid(j.ID), prefix) {
				found = j.ID
				n++
			}
		}
		if len(page) < listPage {
			break
		}
		after = page[len(page)-1].ID
	}
	switch n {
	case 0:
		return 0, failf("GID %s is not found", raw)
	case 1:
		return found, nil
	}
	return 0, failf("GID %s is not unique", raw)
}
