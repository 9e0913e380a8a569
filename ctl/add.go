package ctl

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/idmproject/idm/daemon/api"
)

var addCmd = &command{
	name:  "add",
	args:  "[-r] [-o DIR] [--limit RATE] [--content HASH] [--checksum ALGO=HEX] SOURCE ... | [-r] [-o DIR] [--limit RATE] [--select NAMES] [--location CC,...] FILE.meta4|URL | -a IP -p PORT [PORT ...]",
	short: "add a download and print its job ID",
	long: `Add asks idmd to download the file the sources hold into DIR (default:
the current directory) and prints the new job's ID. A SOURCE is an idm
server, idm://host:port (IPv6 in brackets), or an http:// or https://
URL of a mirror; one job may take both. A Metalink (FILE.meta4, or an
http(s) URL ending in .meta4 or .metalink, which idmd fetches) makes one
job per file it lists, from its mirrors, checked against its hashes; add
prints each job's ID on a line. A lone URL is one job, made at once
without asking the server anything: if it turns out to answer with a
Metalink, whatever its name, the job downloads it and, once complete, is
followed by the Metalink's jobs (--select and --location apply to them;
status shows them, and wait waits for them too). It does not wait: see
wait and watch.`,
	run: (*cli).runAdd,
}

// maxMetalink is the size of the largest Metalink idmd reads
// (metalink.MaxSize, not imported: idmctl links no parser).
const maxMetalink = 16 << 20

// addMetalink sends the Metalink file at path, or req.URL, to idmd and
// prints the ID of each job it made, one per line.
func (c *cli) addMetalink(ctx context.Context, path string, req api.MetalinkRequest) (err error) {
	if req.Dir, err = absDir(req.Dir); err != nil {
		return err
	}
	if req.URL != "" {
		return c.createMetalink(ctx, req) // idmd fetches it
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetalink+1))
	if err != nil {
		return err
	}
	if len(b) > maxMetalink {
		return fmt.Errorf("%s: larger than %d MiB, too large for a Metalink", path, maxMetalink>>20)
	}
	req.Document = string(b)
	return c.createMetalink(ctx, req)
}

// createMetalink asks idmd for the jobs of a Metalink and prints their IDs,
// one per line.
func (c *cli) createMetalink(ctx context.Context, req api.MetalinkRequest) error {
	js, err := c.client.CreateMetalink(ctx, req)
	if err != nil {
		return existing(err, req.Dir)
	}
	return c.printJobs(js)
}

// printJobs prints the IDs of a Metalink's jobs, one per line, or the
// jobs as a JSON list.
func (c *cli) printJobs(js []api.Job) error {
	if c.json {
		return c.printJSON(js)
	}
	for _, j := range js {
		if _, err := fmt.Fprintln(c.stdout, j.ID); err != nil {
			return err
		}
	}
	return nil
}

// existing says err, the daemon's refusal of a job that exists already
// in dir, as one line that says how to resume it; other errors are kept.
func existing(err error, dir string) error {
	if id, ok := ExistingJob(err); ok {
		return &exitError{ExitError, fmt.Sprintf("a download of the same servers into %s exists (job %d); use -r to resume it", dir, id)}
	}
	return err
}

// commaList splits a comma-separated flag value, dropping empty items.
func commaList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c *cli) runAdd(ctx context.Context, args []string) error {
	fs := newFlagSet("add")
	dir := fs.String("o", ".", "download into `DIR` (default: the current directory)")
	name := fs.String("name", "", "save the file as `NAME` in DIR (default: the name its sources give)")
	resume := fs.Bool("r", false, "resume the unfinished download of the same sources into the same directory instead")
	var limit rateFlag
	fs.Var(&limit, "limit", "the job's own cap of `RATE` bytes per second, such as 10M or 5Mi")
	var content contentFlag
	content.register(fs)
	var hf httpFlags
	hf.register(fs)
	conns := fs.Int("connections", 0, "open `N` connections to each source, 1 to 16 (default 4 to a lone HTTP mirror, else 1)")
	checksum := fs.String("checksum", "", "publish the file only if its whole-file digest is `ALGO=HEX` (sha-256, sha-512, sha-1 or blake3)")
	sel := fs.String("select", "", "of a Metalink's files, download only those `NAMES` (comma-separated)")
	loc := fs.String("location", "", "prefer the mirrors in these `COUNTRIES` (ISO 3166 codes, comma-separated, best first)")
	var src sourceArgs
	src.register(fs)
	if err := parseInterleaved(fs, args, src.positional); err != nil {
		return err
	}
	if len(src.metalinks) > 0 {
		if len(src.metalinks) > 1 || len(src.sources) > 0 || len(src.ports) > 0 || content != "" || *checksum != "" {
			return usagef(fs, "a Metalink brings its own mirrors and hashes: give it alone, without --content or --checksum")
		}
		if *name != "" {
			return usagef(fs, "a Metalink names its own files: --name is for one file")
		}
		path := src.metalinks[0]
		req := api.MetalinkRequest{Dir: *dir, Limit: int64(limit), Connections: *conns, Resume: *resume,
			MetalinkOptions: api.MetalinkOptions{Select: commaList(*sel), Locations: commaList(*loc)}}
		if strings.Contains(path, "://") {
			req.URL = path
		}
		if err := hf.applyMetalink(&req); err != nil {
			return err
		}
		return c.addMetalink(ctx, path, req)
	}
	sources, err := src.list()
	switch {
	case err != nil:
		return usagef(fs, "%v", err)
	case len(sources) == 0:
		return usagef(fs, "missing the sources")
	}
	// A lone URL may answer with a Metalink, whatever its name: its job,
	// once complete, tells. Nothing is asked now, so add answers at once.
	follow := len(sources) == 1 && !strings.HasPrefix(sources[0], "idm://")
	if !follow && (*sel != "" || *loc != "") {
		return usagef(fs, "--select and --location are for a Metalink: FILE.meta4, or the one URL of one")
	}
	abs, err := absDir(*dir)
	if err != nil {
		return err
	}
	req := api.CreateRequest{Sources: sources, Dir: abs, Name: *name, Limit: int64(limit), Content: string(content), Checksum: *checksum, Connections: *conns, Resume: *resume, FollowMetalink: follow,
		MetalinkOptions: api.MetalinkOptions{Select: commaList(*sel), Locations: commaList(*loc)}}
	if err := hf.apply(&req); err != nil {
		return err
	}
	job, err := c.client.Create(ctx, req)
	if err != nil {
		return existing(err, abs)
	}
	if c.json {
		return c.printJSON(job)
	}
	_, err = fmt.Fprintln(c.stdout, job.ID)
	return err
}
