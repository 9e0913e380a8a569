package ctl

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/idmproject/idm/daemon/api"
	"github.com/idmproject/idm/internal/bytesize"
)

// jobName is what a person calls a job: its file name, or its first
// source until a source has told the name.
func jobName(j *api.Job) string {
	s := j.Summary()
	return summaryName(&s)
}

// summaryName is a job's file name, or its first source while it has
// none.
func summaryName(j *api.JobSummary) string {
	switch {
	case j.Name != "":
		return oneLine(j.Name)
	case j.Source != "":
		return j.Source
	}
	return "-"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func percent(n, of int64) string {
	return fmt.Sprintf("%.1f%%", float64(n)*100/float64(of))
}

// percentOf is verified as a share of size, or a dash while the size is
// not known.
func percentOf(verified, size int64) string {
	if size <= 0 {
		return "-"
	}
	return percent(verified, size)
}

func sizeOrDash(n int64) string {
	if n <= 0 {
		return "-"
	}
	return bytesize.Format(n)
}

// speedOf is a job's speed while it downloads, or a dash.
func speedOf(state string, speed float64) string {
	if state != api.StateDownloading {
		return "-"
	}
	return formatRate(speed)
}

func formatRate(bps float64) string {
	return bytesize.Format(int64(bps)) + "/s"
}

func formatLimit(limit int64) string {
	if limit <= 0 {
		return "none"
	}
	return fmt.Sprintf("%s (%d B/s)", formatRate(float64(limit)), limit)
}

// timeLeft estimates how long a job has to go at its present speed.
func timeLeft(j *api.Job) string {
	left := j.Size - j.Progress.Verified
	if j.Size <= 0 || j.Progress.Speed <= 0 || left < 0 {
		return "-"
	}
	d := time.Duration(float64(left) / j.Progress.Speed * float64(time.Second))
	if d > 99*time.Hour {
		return ">99h"
	}
	return d.Round(time.Second).String()
}

// jobLine is watch's one line for a job when not on a terminal:
// "job 3 video.mp4: 45.2% 120.3 MiB/256.0 MiB 12.4 MiB/s downloading".
func jobLine(j *api.Job) string {
	pct, size := "0.0%", "?"
	if j.Size > 0 {
		pct, size = percent(j.Progress.Verified, j.Size), bytesize.Format(j.Size)
	}
	return fmt.Sprintf("job %d %s: %s %s/%s %s %s", j.ID, jobName(j), pct,
		bytesize.Format(j.Progress.Verified), size, formatRate(j.Progress.Speed), j.State)
}

// lineView prints watch's plain lines: every tick, a line for each job
// that is running or ended since the last tick.
type lineView struct {
	w       io.Writer
	jobs    map[uint64]*api.Job
	changed map[uint64]bool // ended or removed since the last tick
	removed map[uint64]bool
	one     bool // following one job: show it even if it has ended
}

func newLineView(w io.Writer) *lineView {
	return &lineView{w: w, jobs: map[uint64]*api.Job{}, changed: map[uint64]bool{}, removed: map[uint64]bool{}}
}

// update takes an event in. Unless following one job, a job already
// ended when first seen is skipped, as it has nothing to show.
func (v *lineView) update(ev api.Event) {
	j := ev.Job
	old, known := v.jobs[j.ID]
	switch {
	case ev.Type == api.EventRemoved:
		if known {
			v.removed[j.ID] = true
			v.changed[j.ID] = true
		}
		return
	case !known && j.Done() && !v.one:
		return
	case j.Done() && (!known || !old.Done()):
		v.changed[j.ID] = true
	}
	v.jobs[j.ID] = &j
}

// flush prints the lines due.
func (v *lineView) flush() error {
	ids := make([]uint64, 0, len(v.jobs))
	for id, j := range v.jobs {
		if !j.Done() || v.changed[id] {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	var b []byte
	for _, id := range ids {
		if v.removed[id] {
			b = fmt.Appendf(b, "job %d %s: removed\n", id, jobName(v.jobs[id]))
			delete(v.jobs, id)
			continue
		}
		b = fmt.Appendf(b, "%s\n", jobLine(v.jobs[id]))
		if v.jobs[id].Done() {
			delete(v.jobs, id)
		}
	}
	clear(v.changed)
	clear(v.removed)
	_, err := v.w.Write(b)
	return err
}

// barView draws watch's progress bars on a terminal: per job a total bar
// with its speed and time left, and under it a bar per server.
type barView struct {
	p    *mpb.Progress
	jobs map[uint64]*jobBars
	one  bool // following one job: show it even if it has ended
}

// jobBars are one job's bars. The decorators run in mpb's goroutines
// and read job under mu.
type jobBars struct {
	mu    sync.Mutex
	job   api.Job
	total *mpb.Bar
	srcs  []*mpb.Bar
	ended bool
}

func newBarView(w io.Writer) *barView {
	p := mpb.New(mpb.WithOutput(w), mpb.WithAutoRefresh(), mpb.WithRefreshRate(200*time.Millisecond))
	return &barView{p: p, jobs: map[uint64]*jobBars{}}
}

// update takes an event in, adding bars for a job it has not seen.
// Unless following one job, jobs already ended when first seen get no
// bars.
func (v *barView) update(ev api.Event) {
	jb := v.jobs[ev.Job.ID]
	if jb == nil {
		if ev.Type == api.EventRemoved || (ev.Job.Done() && !v.one) {
			return
		}
		jb = v.add(ev.Job)
		v.jobs[ev.Job.ID] = jb
	}
	if jb.ended {
		return
	}
	jb.mu.Lock()
	jb.job = ev.Job
	jb.mu.Unlock()
	j := &ev.Job
	jb.total.SetTotal(j.Size, false)
	jb.total.SetCurrent(j.Progress.Verified)
	for i, b := range jb.srcs {
		b.SetTotal(j.Size, false)
		if i < len(j.Progress.Sources) {
			b.SetCurrent(j.Progress.Sources[i].Verified)
		}
	}
	switch {
	case ev.Type == api.EventRemoved:
		jb.end(true)
	case j.State == api.StateCompleted:
		jb.total.SetTotal(j.Size, true)
		jb.end(false)
	case j.Done():
		jb.end(false)
	}
}

func (v *barView) add(j api.Job) *jobBars {
	jb := &jobBars{job: j}
	// Every bar has the same columns so that mpb lines them up.
	jb.total = v.p.AddBar(0,
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			jb.mu.Lock()
			defer jb.mu.Unlock()
			return fmt.Sprintf("job %d %s", jb.job.ID, jobName(&jb.job))
		}, decor.WCSyncWidthR)),
		mpb.AppendDecorators(
			jb.column(func(j *api.Job) string { return j.State }, decor.WCSyncSpaceR),
			jb.column(func(j *api.Job) string {
				if j.Size <= 0 {
					return bytesize.Format(j.Progress.Verified) + "/?"
				}
				return bytesize.Format(j.Progress.Verified) + "/" + bytesize.Format(j.Size)
			}),
			jb.column(func(j *api.Job) string { return formatRate(j.Progress.Speed) }),
			jb.column(func(j *api.Job) string {
				if j.State != api.StateDownloading {
					return ""
				}
				return "ETA " + timeLeft(j)
			}),
		),
	)
	for i, src := range j.Sources {
		source := func(j *api.Job) *api.SourceProgress {
			if i < len(j.Progress.Sources) {
				return &j.Progress.Sources[i]
			}
			return &api.SourceProgress{Source: src}
		}
		jb.srcs = append(jb.srcs, v.p.AddBar(0,
			mpb.PrependDecorators(decor.Name(fmt.Sprintf("  #%d %s", i+1, src), decor.WCSyncWidthR)),
			mpb.AppendDecorators(
				jb.column(func(j *api.Job) string { return source(j).State }, decor.WCSyncSpaceR),
				jb.column(func(j *api.Job) string { return bytesize.Format(source(j).Verified) }),
				jb.column(func(j *api.Job) string { return formatRate(source(j).Speed) }),
				jb.column(func(j *api.Job) string {
					if s := source(j); s.Corrupt > 0 {
						return fmt.Sprintf("%d corrupt", s.Corrupt)
					}
					return ""
				}),
			),
		))
	}
	return jb
}

// column is a decorator showing f of the job's latest state, right
// aligned unless wc says otherwise.
func (jb *jobBars) column(f func(*api.Job) string, wc ...decor.WC) decor.Decorator {
	if len(wc) == 0 {
		wc = []decor.WC{decor.WCSyncSpace}
	}
	return decor.Any(func(decor.Statistics) string {
		jb.mu.Lock()
		defer jb.mu.Unlock()
		return f(&jb.job)
	}, wc...)
}

// end stops the job's bars; drop removes them from the screen.
func (jb *jobBars) end(drop bool) {
	jb.ended = true
	jb.total.Abort(drop)
	for _, b := range jb.srcs {
		b.Abort(drop)
	}
}

// close stops every bar and waits for the last frame to be drawn.
func (v *barView) close() {
	for _, jb := range v.jobs {
		if !jb.ended {
			jb.end(false)
		}
	}
	v.p.Wait()
}
