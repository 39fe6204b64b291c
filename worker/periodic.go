package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	_ "time/tzdata" // IANA time zones wherever the binary runs, for Periodic.Timezone

	"github.com/goccy/go-yaml"
	"github.com/robfig/cron/v3"

	"github.com/baton-run/baton/internal/jsonb"
	"github.com/baton-run/baton/internal/store"
)

// Periodic is an entry of the pipeline file's periodic: section: a job
// submitted to Queue at each tick of Schedule. Every worker whose file has
// the entry takes part, and each tick makes one job however many do: the
// database keeps the entry's last and next tick (baton.periodic).
type Periodic struct {
	// Name identifies the entry: unique in a file, and the same entry in
	// every file that names it. Required; a queue name's characters.
	Name string `yaml:"name"`
	// Queue receives the jobs. Required.
	Queue string `yaml:"queue"`
	// Schedule says when it ticks: standard 5-field cron ("0 3 * * *"), the
	// same with a seconds field first ("*/10 * * * * *"), a descriptor
	// ("@daily", "@hourly") or an interval ("@every 30s", at least 1s).
	// Required.
	Schedule string `yaml:"schedule"`
	// Timezone is the IANA zone cron fields are read in. Defaults to UTC.
	Timezone string `yaml:"timezone"`
	// Payload is each job's payload (JSON). Defaults to {}.
	Payload json.RawMessage `yaml:"payload"`

	sched cron.Schedule
}

// cronParser reads standard cron with an optional seconds field first,
// descriptors (@daily) and intervals (@every 30s).
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// UnmarshalYAML reads an entry, its payload as any YAML value.
func (p *Periodic) UnmarshalYAML(data []byte) error {
	var raw struct {
		Name     string `yaml:"name"`
		Queue    string `yaml:"queue"`
		Schedule string `yaml:"schedule"`
		Timezone string `yaml:"timezone"`
		Payload  any    `yaml:"payload"`
	}
	if err := yaml.UnmarshalWithOptions(data, &raw, yaml.Strict()); err != nil {
		return errors.New(yamlMessage(err, false))
	}
	*p = Periodic{Name: raw.Name, Queue: raw.Queue, Schedule: raw.Schedule, Timezone: raw.Timezone}
	if raw.Payload != nil {
		b, err := json.Marshal(raw.Payload)
		if err != nil {
			return fmt.Errorf("payload: %w", err)
		}
		p.Payload = b
	}
	return nil
}

// compile checks the entry and reads its schedule, filling in defaults.
func (p *Periodic) compile() error {
	switch {
	case p.Name == "":
		return errors.New("name: required (the entry's identity)")
	case !store.ValidQueueName(p.Name):
		return fmt.Errorf("name: %q: a name is like a queue name: %s", p.Name, strings.TrimPrefix(store.QueueNameRule, "a queue name must be "))
	case p.Queue == "":
		return errors.New("queue: required (the queue its jobs go to)")
	case !store.ValidQueueName(p.Queue):
		return fmt.Errorf("queue: %q: %s", p.Queue, store.QueueNameRule)
	}
	if p.Timezone == "" {
		p.Timezone = "UTC"
	}
	loc, err := time.LoadLocation(p.Timezone)
	if err != nil || p.Timezone == "Local" {
		return fmt.Errorf("timezone: %q is not an IANA time zone name (such as UTC or Europe/Berlin)", p.Timezone)
	}
	if strings.HasPrefix(strings.TrimSpace(p.Schedule), "CRON_TZ=") || strings.HasPrefix(strings.TrimSpace(p.Schedule), "TZ=") {
		return errors.New("schedule: give the time zone as timezone:, not in the schedule")
	}
	if every, ok := strings.CutPrefix(strings.TrimSpace(p.Schedule), "@every "); ok {
		// cron rounds an interval to whole seconds, 1s at least: say so
		// rather than tick at another pace than the file says.
		if d, err := time.ParseDuration(strings.TrimSpace(every)); err == nil && (d < time.Second || d%time.Second != 0) {
			return fmt.Errorf("schedule: %q: an interval must be whole seconds, at least 1s", p.Schedule)
		}
	}
	sched, err := cronParser.Parse(p.Schedule)
	if err != nil {
		return fmt.Errorf("schedule: %q: %v", p.Schedule, err)
	}
	if spec, ok := sched.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	if sched.Next(time.Now()).IsZero() {
		return fmt.Errorf("schedule: %q never fires", p.Schedule)
	}
	p.sched = sched
	if len(p.Payload) == 0 {
		p.Payload = json.RawMessage("{}")
	}
	if err := jsonb.Check(p.Payload, store.MaxPayload); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	return nil
}

// after is the first tick of the entry after t (in UTC).
func (p *Periodic) after(t time.Time) time.Time { return p.sched.Next(t).UTC() }

// nextFrom is the tick that follows tick when it is done at now: the next
// tick along the schedule from tick that is after now. Ticks missed while
// no worker ran are passed over (the one that was due makes a job: one
// catch-up job per entry).
func (p *Periodic) nextFrom(tick, now time.Time) time.Time {
	next := p.after(tick)
	for i := 0; !next.After(now); i++ {
		if i == 100_000 { // a long outage on a short interval: jump
			return p.after(now)
		}
		next = p.after(next)
	}
	return next
}

// runPeriodic registers the pipeline's periodic entries, then enqueues each
// of their ticks when it is due by the database's clock, until ctx is done.
func (w *Worker) runPeriodic(ctx context.Context) {
	entries := w.cfg.Pipeline.Periodic
	names := make([]string, len(entries))
	byName := map[string]*Periodic{}
	for i := range entries {
		names[i] = entries[i].Name
		byName[entries[i].Name] = &entries[i]
	}
	log := w.log.With("role", "periodic")
	wait := time.Duration(0)
	registered := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = time.Second // after an error
		qctx, cancel := context.WithTimeout(ctx, dbTimeout)
		if !registered {
			if err := w.registerPeriodic(qctx, entries); err != nil {
				cancel()
				warn(ctx, log, "registering periodic entries", err)
				continue
			}
			registered = true
		}
		due, err := store.New(w.pool).PeriodicDue(qctx, names)
		if err != nil {
			cancel()
			warn(ctx, log, "reading periodic entries", err)
			continue
		}
		for _, d := range due {
			p := byName[d.Name]
			next := d.NextTick
			if !d.NextTick.After(d.Now) {
				next = p.nextFrom(d.NextTick, d.Now)
				id, err := store.New(w.pool).PeriodicEnqueue(qctx, store.PeriodicEnqueueParams{Name: p.Name, Tick: d.NextTick, NextTick: next})
				switch err = store.MapError(err); {
				case errors.Is(err, store.ErrNotFound): // another replica took the tick
				case err != nil:
					warn(ctx, log, "enqueueing a periodic job", err)
				default:
					log.Debug("periodic tick", "entry", p.Name, "queue", p.Queue, "tick", d.NextTick, "job_id", id, "next_tick", next)
				}
			}
			wait = min(wait, max(next.Sub(d.Now), 10*time.Millisecond))
		}
		cancel()
	}
}

// registerPeriodic writes the entries to the database, each with its first
// tick after the database's now() (used when the entry is new, or its
// schedule changed).
func (w *Worker) registerPeriodic(ctx context.Context, entries []Periodic) error {
	now, err := store.New(w.pool).DatabaseNow(ctx)
	if err != nil {
		return err
	}
	for _, p := range entries {
		err := store.New(w.pool).PeriodicRegister(ctx, store.PeriodicRegisterParams{
			Name: p.Name, Queue: p.Queue, Schedule: p.Schedule, Timezone: p.Timezone, Payload: p.Payload, NextTick: p.after(now),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// warn logs a periodic step's error, unless shutdown caused it.
func warn(ctx context.Context, log *slog.Logger, step string, err error) {
	if err != nil && ctx.Err() == nil {
		log.Warn(step, "error", store.MapError(err))
	}
}
