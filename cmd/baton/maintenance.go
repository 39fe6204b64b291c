package main

import (
	"flag"
	"os"
	"time"

	"github.com/baton-run/baton/internal/store"
	"github.com/baton-run/baton/worker"
)

// maintenanceFlags are the settings of the maintenance that serve, worker
// and dev all run. --retain-succeeded, --retain-dead and --retain-canceled
// (env BATON_RETAIN_*): how long finished jobs are kept where their queue
// sets no retention of its own; every replica prunes by its own, so give
// them all the same values. --reader-idle-limit and
// --reader-transaction-limit (env BATON_READER_*): when a reporting
// session's transaction is ended.
type maintenanceFlags struct{ succeeded, dead, canceled, readerIdle, readerTransaction string }

func (f *maintenanceFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.succeeded, "retain-succeeded", os.Getenv("BATON_RETAIN_SUCCEEDED"),
		"keep succeeded jobs this long, or forever (env BATON_RETAIN_SUCCEEDED; default 24h)")
	fs.StringVar(&f.dead, "retain-dead", os.Getenv("BATON_RETAIN_DEAD"),
		"keep dead jobs this long, or forever (env BATON_RETAIN_DEAD; default 168h)")
	fs.StringVar(&f.canceled, "retain-canceled", os.Getenv("BATON_RETAIN_CANCELED"),
		"keep canceled jobs this long, or forever (env BATON_RETAIN_CANCELED; default 168h)")
	fs.StringVar(&f.readerIdle, "reader-idle-limit", os.Getenv("BATON_READER_IDLE_LIMIT"),
		"end a baton_reader session idle in a transaction this long (env BATON_READER_IDLE_LIMIT; default 1m)")
	fs.StringVar(&f.readerTransaction, "reader-transaction-limit", os.Getenv("BATON_READER_TRANSACTION_LIMIT"),
		"end a baton_reader session whose transaction has been open this long (env BATON_READER_TRANSACTION_LIMIT; default 5m)")
}

func (f maintenanceFlags) retention() (worker.Retention, error) {
	var r worker.Retention
	for _, x := range []struct {
		name, value string
		to          *time.Duration
	}{{"retain-succeeded", f.succeeded, &r.Succeeded}, {"retain-dead", f.dead, &r.Dead}, {"retain-canceled", f.canceled, &r.Canceled}} {
		if x.value == "" {
			continue
		}
		d, err := store.ParseRetention(x.value)
		if err != nil {
			return r, usagef("--%s: %v", x.name, err)
		}
		*x.to = d
	}
	return r, nil
}

func (f maintenanceFlags) readerLimits() (worker.ReaderLimits, error) {
	var l worker.ReaderLimits
	for _, x := range []struct {
		name, value string
		to          *time.Duration
	}{{"reader-idle-limit", f.readerIdle, &l.IdleInTransaction}, {"reader-transaction-limit", f.readerTransaction, &l.Transaction}} {
		if x.value == "" {
			continue
		}
		d, err := time.ParseDuration(x.value)
		if err != nil || d < time.Second {
			return l, usagef("--%s %q: want a duration of at least 1s, such as 60s or 5m", x.name, x.value)
		}
		*x.to = d
	}
	return l, nil
}
