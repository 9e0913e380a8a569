package ctl

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/idmproject/idm/daemon/api"
)

// outage tells get's user why nothing arrives: once no source of a
// running job has been up for a while, it writes one line per source
// with the reason the daemon gives, and writes them again only when a
// reason changes or after a source has been up in between.
type outage struct {
	after time.Duration // how long every source must have failed
	since time.Time     // when the sources were first seen all failing; zero while one is up
	timer *time.Timer   // fires at since+after, until it has
	job   *api.Job      // the latest snapshot
	said  string        // the lines last written for this outage
}

// observe takes a snapshot of the job in.
func (o *outage) observe(j *api.Job, now time.Time) {
	o.job = j
	if !allFailing(j) {
		o.since, o.said = time.Time{}, ""
		o.stop()
		return
	}
	if o.since.IsZero() {
		o.since = now
		o.timer = time.NewTimer(o.after)
	}
}

// C fires when the outage has lasted long enough to be told; it is nil
// when there is nothing to wait for.
func (o *outage) C() <-chan time.Time {
	if o.timer == nil {
		return nil
	}
	return o.timer.C
}

// fired is called when C has fired.
func (o *outage) fired() { o.timer = nil }

func (o *outage) stop() {
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
}

// tell writes the reasons to w if the outage has lasted long enough and
// they are not what was written last.
func (o *outage) tell(w io.Writer, now time.Time) {
	if o.since.IsZero() || now.Sub(o.since) < o.after {
		return
	}
	var b strings.Builder
	for i, s := range o.job.Progress.Sources {
		fmt.Fprintf(&b, "idmctl: no server answers: server %d (%s): %s\n", i+1, s.Source, reason(&s))
	}
	if msg := b.String(); msg != o.said {
		io.WriteString(w, msg)
		o.said = msg
	}
}

// allFailing reports whether j is running and none of its sources is up.
// A source still connecting counts as failing, so that a server that
// never answers a connection is told too.
func allFailing(j *api.Job) bool {
	if j.State != api.StateDownloading && j.State != api.StateWaiting {
		return false
	}
	srcs := j.Progress.Sources
	for i := range srcs {
		if srcs[i].State == api.SourceUp {
			return false
		}
	}
	return len(srcs) > 0
}

// reason is why a source delivers nothing, in the daemon's words. The
// retry time is left out: it changes at every retry, the reason does not.
func reason(s *api.SourceProgress) string {
	switch {
	case s.LastError != "":
		return oneLine(s.LastError)
	case s.State == api.SourceConnecting:
		return "no answer yet"
	case s.State == "":
		return "not tried yet"
	}
	return s.State
}
