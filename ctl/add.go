package ctl

import (
	"context"
	"fmt"

	"github.com/idmproject/idm/daemon/api"
)

var addCmd = &command{
	name:  "add",
	args:  "[-r] [-o DIR] [--limit RATE] [--content HASH] [--checksum ALGO=HEX] SOURCE ... | -a IP -p PORT [PORT ...]",
	short: "add a download and print its job ID",
	long: `Add asks idmd to download the file the sources hold into DIR (default:
the current directory) and prints the new job's ID. A SOURCE is an idm
server, idm://host:port (IPv6 in brackets), or an http:// or https://
URL of a mirror; one job may take both. It does not wait: see wait and
watch.`,
	run: (*cli).runAdd,
}

func (c *cli) runAdd(ctx context.Context, args []string) error {
	fs := newFlagSet("add")
	dir := fs.String("o", ".", "download into `DIR` (default: the current directory)")
	resume := fs.Bool("r", false, "resume the unfinished download of the same sources into the same directory instead")
	var limit rateFlag
	fs.Var(&limit, "limit", "the job's own cap of `RATE` bytes per second, such as 10M or 5Mi")
	var content contentFlag
	content.register(fs)
	checksum := fs.String("checksum", "", "publish the file only if its whole-file digest is `ALGO=HEX` (sha-256, sha-512, sha-1 or blake3)")
	var src sourceArgs
	src.register(fs)
	if err := parseInterleaved(fs, args, src.positional); err != nil {
		return err
	}
	sources, err := src.list()
	switch {
	case err != nil:
		return usagef(fs, "%v", err)
	case len(sources) == 0:
		return usagef(fs, "missing the sources")
	}
	abs, err := absDir(*dir)
	if err != nil {
		return err
	}
	job, err := c.client.Create(ctx, api.CreateRequest{Sources: sources, Dir: abs, Limit: int64(limit), Content: string(content), Checksum: *checksum, Resume: *resume})
	if id, ok := ExistingJob(err); ok {
		return &exitError{ExitError, fmt.Sprintf("a download of the same servers into %s exists (job %d); use -r to resume it", abs, id)}
	}
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(job)
	}
	_, err = fmt.Fprintln(c.stdout, job.ID)
	return err
}
