package main

import (
	"flag"
	"os"
	"time"

	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/worker"
)

// retentionFlags are --retain-succeeded, --retain-dead and --retain-canceled
// (env BATON_RETAIN_*), which serve, worker and dev share: how long finished
// jobs are kept where their queue sets no retention of its own. Every
// replica prunes by its own, so give them all the same values.
type retentionFlags struct{ succeeded, dead, canceled string }

func (f *retentionFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.succeeded, "retain-succeeded", os.Getenv("BATON_RETAIN_SUCCEEDED"),
		"keep succeeded jobs this long, or forever (env BATON_RETAIN_SUCCEEDED; default 24h)")
	fs.StringVar(&f.dead, "retain-dead", os.Getenv("BATON_RETAIN_DEAD"),
		"keep dead jobs this long, or forever (env BATON_RETAIN_DEAD; default 168h)")
	fs.StringVar(&f.canceled, "retain-canceled", os.Getenv("BATON_RETAIN_CANCELED"),
		"keep canceled jobs this long, or forever (env BATON_RETAIN_CANCELED; default 168h)")
}

func (f retentionFlags) retention() (worker.Retention, error) {
	var r worker.Retention
	for _, x := range []struct {
		name, value string
		to          *time.Duration
	}{{"retain-succeeded", f.succeeded, &r.Succeeded}, {"retain-dead", f.dead, &r.Dead}, {"retain-canceled", f.canceled, &r.Canceled}} {
		if x.value == "" {
			continue
		}
		d, err := db.ParseRetention(x.value)
		if err != nil {
			return r, usagef("--%s: %v", x.name, err)
		}
		*x.to = d
	}
	return r, nil
}
