package worker

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/baton-run/baton/internal/store"
)

// Defaults of the pipeline file.
const (
	DefaultLease         = 30 * time.Second
	DefaultTimeout       = time.Minute
	DefaultBackoff       = time.Second
	DefaultMaxBackoff    = 10 * time.Minute
	DefaultConcurrency   = 8
	DefaultPollInterval  = time.Second
	DefaultShutdownGrace = 30 * time.Second
	DefaultMaxSnoozes    = 100
	// MaxFanOut bounds the elements of a fan_out stage's result.
	MaxFanOut = 10_000
)

// Floors: a duration below one keeps a worker busy for nothing (a
// poll_interval of 1ns made 31,000 transactions in 5 seconds) and is refused.
const (
	MinPollInterval = 10 * time.Millisecond
	MinLease        = 100 * time.Millisecond
	MinTimeout      = 10 * time.Millisecond
	MinBackoff      = 10 * time.Millisecond
)

// ErrPipeline marks an invalid pipeline file.
var ErrPipeline = errors.New("invalid pipeline")

// Pipeline is a parsed pipeline file: the stages one worker replica runs.
type Pipeline struct {
	// PollInterval is how often an idle stage looks for due jobs. Defaults to 1s.
	PollInterval Duration `yaml:"poll_interval"`
	// ShutdownGrace is how long SIGTERM waits for in-flight handlers before
	// releasing their leases. Defaults to 30s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// Stages lists the queues to work, each with its handler. At least one,
	// unless the file has periodic entries.
	Stages []Stage `yaml:"stages"`
	// Periodic lists jobs submitted on a schedule (see Periodic).
	Periodic []Periodic `yaml:"periodic"`
}

// Stage reads one queue, runs one handler, and hands the result to Next.
type Stage struct {
	// Queue is the queue this stage works. Required.
	Queue string `yaml:"queue"`
	// Handler runs each job. Required: exactly one of exec, http or go.
	Handler HandlerSpec `yaml:"handler"`
	// Next, when set, receives each result as the payload of a new job.
	Next string `yaml:"next"`
	// Lease is the visibility timeout, extended by heartbeats every Lease/3
	// while the handler runs. Defaults to 30s.
	Lease Duration `yaml:"lease"`
	// MaxAttempts caps attempts for jobs submitted without their own. Defaults to 5.
	MaxAttempts int `yaml:"max_attempts"`
	// Concurrency, when set, is how many jobs of this stage one replica
	// runs at once: a fixed slot count. Unset (0), the stage's slots adapt:
	// they start at DefaultConcurrency, grow while its claims find a backlog
	// and its handler's latency holds, up to MaxConcurrency, fall back when
	// that latency rises and fall to what the stage uses when it is idle.
	Concurrency int `yaml:"concurrency"`
	// MaxConcurrency is the ceiling of adaptive slots (concurrency unset):
	// defaults to 1,000 for a Go handler, 100 for http and 32 for exec
	// (each job a process). Set one of concurrency and max_concurrency.
	MaxConcurrency int `yaml:"max_concurrency"`
	// GlobalConcurrency, when set, is how many jobs of the queue run at
	// once over every replica, enforced by the claim statement. The queue's
	// own setting (PATCH /v1/queues/{queue}, baton queue set) wins over it.
	// A limited stage's claims take turns, and it gets no direct hand-offs.
	// 0 (the default) is no limit.
	GlobalConcurrency int `yaml:"global_concurrency"`
	// GroupConcurrency, when set, is how many jobs of one group (a job's
	// group: a customer, a tenant) run at once over every replica. A
	// group's jobs start in submit order: only its first GroupConcurrency
	// unfinished jobs may run, so a job waiting for its retry keeps its
	// place, and with 1 the group's jobs run one at a time, in order. Jobs
	// without a group are not limited by it. 0 (the default) is no limit.
	GroupConcurrency int `yaml:"group_concurrency"`
	// Fair shares the stage's claims among the groups that have due jobs:
	// the group with the fewest running jobs for its weight (1 unless set
	// by PATCH /v1/queues/{queue}/groups/{group}) goes first, and a lone
	// group gets every slot. Jobs without a group share one group. Without
	// it, jobs go by priority, then age, whatever their group.
	Fair bool `yaml:"fair"`
	// RateLimit, when set, bounds the queue's claims over every replica:
	// "20/s" or "600/m". Its bucket holds one second's worth of the rate (at
	// least one claim): the largest burst. The queue's own rate (PATCH
	// /v1/queues/{queue}, baton queue set) wins over it.
	RateLimit string `yaml:"rate_limit"`
	// Timeout stops a handler running longer; the attempt fails. Defaults to 1m.
	Timeout Duration `yaml:"timeout"`
	// MaxJobTimeout and MaxJobLease cap the timeout and lease a job was
	// submitted with (db.NewJob.Timeout and Lease), which replace the
	// stage's for that job; a capped job's history says so. They default to
	// Timeout and Lease: a job may then shorten them, not lengthen them. At
	// most 24h.
	MaxJobTimeout Duration `yaml:"max_job_timeout"`
	MaxJobLease   Duration `yaml:"max_job_lease"`
	// Backoff is the first retry delay; it doubles per attempt, with jitter,
	// up to MaxBackoff. Defaults to 1s and 10m.
	Backoff    Duration `yaml:"backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
	// FanOut hands off one job to Next per element of the handler's result,
	// which must be a JSON array of at most MaxFanOut elements, in order
	// (parent_seq 0 .. n-1). An empty array hands off nothing.
	FanOut bool `yaml:"fan_out"`
	// Join, on the stage a fan_out stage hands off to, hands off one job to
	// Next per fan-out instead of one per job: when every job of a fan-out
	// has succeeded here, an array of their results in fan-out order, whose
	// parent is the job that fanned out. A job that came from no fan-out is
	// handed off alone, as an array of one.
	Join bool `yaml:"join"`
	// MaxSnoozes bounds how often one job may snooze in this stage (Snooze);
	// past it the attempt fails. Defaults to 100.
	MaxSnoozes int `yaml:"max_snoozes"`
	// Env sets variables of an exec handler's environment. A handler gets
	// these, PATH, HOME, LANG, LC_ALL, TZ and TMPDIR from the worker's, and
	// Baton's own (BATON_JOB_ID, BATON_QUEUE, BATON_ATTEMPT, TRACEPARENT):
	// nothing else of the worker's, whose environment holds its secrets.
	Env map[string]string `yaml:"env"`
}

// HandlerSpec names a stage's handler: a command, a webhook, or a Go handler
// given to New in Config.Handlers.
type HandlerSpec struct {
	Exec []string  `yaml:"exec"`
	HTTP *HTTPSpec `yaml:"http"`
	Go   string    `yaml:"go"`
}

// HTTPSpec is a webhook handler: the payload is POSTed to URL.
type HTTPSpec struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
}

var handlerKinds = []string{"exec", "http", "go"}

// UnmarshalYAML names an unknown handler kind instead of reporting an unknown field.
func (h *HandlerSpec) UnmarshalYAML(data []byte) error {
	var kinds map[string]any
	if err := yaml.Unmarshal(data, &kinds); err != nil {
		return err
	}
	if len(kinds) != 1 {
		return fmt.Errorf("must have exactly one of %s", strings.Join(handlerKinds, ", "))
	}
	for kind := range kinds {
		if !slices.Contains(handlerKinds, kind) {
			return fmt.Errorf("unknown handler kind %q (want one of %s)", kind, strings.Join(handlerKinds, ", "))
		}
	}
	type plain HandlerSpec
	return yaml.UnmarshalWithOptions(data, (*plain)(h), yaml.Strict())
}

// Duration is a time.Duration written as "30s", "5m" or "1h30m".
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 30s, 5m)", b)
	}
	if v < 0 {
		return fmt.Errorf("duration %q must not be negative", b)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// LoadPipeline reads and validates a pipeline file.
func LoadPipeline(path string) (*Pipeline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading pipeline file: %w", ErrPipeline, err)
	}
	p, err := ParsePipeline(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// ParsePipeline parses and validates a pipeline file's YAML, filling in
// defaults. A refusal is one line that names the stage and the field.
func ParsePipeline(data []byte) (*Pipeline, error) {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrPipeline, fmt.Sprintf(format, args...))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.RawMessage
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, refuse("%s", yamlMessage(err, true))
	}
	if err := dec.Decode(new(yaml.RawMessage)); !errors.Is(err, io.EOF) {
		return nil, refuse("the file holds a second YAML document (after ---); a pipeline file is one document")
	}
	var p Pipeline
	var stages []yaml.RawMessage
	if err := decodeFields(doc, &p, map[string]any{"stages": &stages}); err != nil {
		return nil, refuse("%v", err)
	}
	for i, raw := range stages {
		var st Stage
		if err := decodeFields(raw, &st, nil); err != nil {
			var named struct {
				Queue string `yaml:"queue"`
			}
			_ = yaml.Unmarshal(raw, &named)
			return nil, refuse("%s: %v", stageName(i, named.Queue), err)
		}
		p.Stages = append(p.Stages, st)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks a pipeline as ParsePipeline checks a file, and fills in
// the defaults of the fields left zero, so that a Pipeline built in Go runs
// as the same file would. A refusal wraps ErrPipeline and names the stage
// and the field. New calls it.
func (p *Pipeline) Validate() error {
	if err := p.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrPipeline, err)
	}
	return nil
}

// decodeFields decodes a YAML mapping into the struct dst points to, one
// field at a time by its yaml tag (or into instead[tag]), so that a refusal
// names its field, and a key the struct does not have is refused.
func decodeFields(raw []byte, dst any, instead map[string]any) error {
	var fields map[string]yaml.RawMessage
	if err := yaml.Unmarshal(raw, &fields); err != nil {
		return errors.New(yamlMessage(err, false))
	}
	targets := map[string]any{}
	v := reflect.ValueOf(dst).Elem()
	for i := range v.NumField() {
		if tag := v.Type().Field(i).Tag.Get("yaml"); tag != "" {
			targets[tag] = cmp.Or(instead[tag], v.Field(i).Addr().Interface())
		}
	}
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		target, ok := targets[key]
		if !ok {
			return fmt.Errorf("unknown field %q (known: %s)", key, strings.Join(slices.Sorted(maps.Keys(targets)), ", "))
		}
		if err := yaml.UnmarshalWithOptions(fields[key], target, yaml.Strict()); err != nil {
			return fmt.Errorf("%s: %s", key, yamlMessage(err, false))
		}
	}
	return nil
}

// yamlMessage is a YAML error in one line: the parser's message without its
// excerpt of the source, with the line when it is one of the file's own.
func yamlMessage(err error, withLine bool) string {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return strings.Join(strings.Fields(err.Error()), " ")
	}
	if tok := ye.GetToken(); withLine && tok != nil && tok.Position != nil {
		return fmt.Sprintf("line %d: %s", tok.Position.Line, ye.GetMessage())
	}
	return ye.GetMessage()
}

func (p *Pipeline) validate() error {
	if len(p.Stages) == 0 && len(p.Periodic) == 0 {
		return errors.New("no stages")
	}
	names := map[string]bool{}
	for i := range p.Periodic {
		e := &p.Periodic[i]
		if err := e.compile(); err != nil {
			return fmt.Errorf("%s: %w", periodicName(i, e.Name), err)
		}
		if names[e.Name] {
			return fmt.Errorf("%s: name: %q names two entries", periodicName(i, e.Name), e.Name)
		}
		names[e.Name] = true
	}
	p.PollInterval = cmp.Or(p.PollInterval, Duration(DefaultPollInterval))
	if p.PollInterval.D() < MinPollInterval {
		return fmt.Errorf("poll_interval %s is below its floor of %s", p.PollInterval.D(), MinPollInterval)
	}
	p.ShutdownGrace = cmp.Or(p.ShutdownGrace, Duration(DefaultShutdownGrace))
	seen := map[string]bool{}
	next := map[string]string{}
	for i := range p.Stages {
		s := &p.Stages[i]
		if err := s.validate(); err != nil {
			return fmt.Errorf("%s: %w", stageName(i, s.Queue), err)
		}
		if seen[s.Queue] {
			return fmt.Errorf("%s: queue: %q is worked by two stages", stageName(i, s.Queue), s.Queue)
		}
		seen[s.Queue] = true
		next[s.Queue] = s.Next
	}
	for i, s := range p.Stages {
		fanned := slices.ContainsFunc(p.Stages, func(o Stage) bool { return o.FanOut && o.Next == s.Queue })
		if s.Join && !fanned {
			return fmt.Errorf("%s: join: no stage of this file fans out to %s (fan_out: true, next: %s)", stageName(i, s.Queue), s.Queue, s.Queue)
		}
	}
	// A cycle hands every job on forever: one job of a -> b -> a made 3,465
	// jobs in 8 seconds. (A cycle through other files' stages is not seen.)
	for i, s := range p.Stages {
		path := []string{s.Queue}
		for q := s.Next; q != "" && len(path) <= len(p.Stages); q = next[q] {
			if path = append(path, q); q == s.Queue {
				return fmt.Errorf("%s: next: %s is a cycle: every job would be handed on forever",
					stageName(i, s.Queue), strings.Join(path, " -> "))
			}
		}
	}
	return nil
}

// periodicName names the i-th periodic entry (from 0) in messages.
func periodicName(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("periodic entry %d", i+1)
	}
	return fmt.Sprintf("periodic entry %d (%s)", i+1, name)
}

// stageName names the i-th stage (from 0) in messages.
func stageName(i int, queue string) string {
	if queue == "" {
		return fmt.Sprintf("stage %d", i+1)
	}
	return fmt.Sprintf("stage %d (%s)", i+1, queue)
}

func (s *Stage) validate() error {
	if s.Queue == "" {
		return errors.New("queue: required (the queue this stage works)")
	}
	if !store.ValidQueueName(s.Queue) {
		return fmt.Errorf("queue: %q: %s", s.Queue, store.QueueNameRule)
	}
	if s.Next != "" {
		if !store.ValidQueueName(s.Next) {
			return fmt.Errorf("next: %q: %s", s.Next, store.QueueNameRule)
		}
		if s.Next == s.Queue {
			return errors.New("next: must name another queue")
		}
	}
	switch h := s.Handler; {
	case h.Exec != nil && (len(h.Exec) == 0 || h.Exec[0] == ""):
		return errors.New("handler: exec needs a command")
	case len(h.Exec) == 0 && h.HTTP == nil && h.Go == "":
		return fmt.Errorf("handler: required (one of %s)", strings.Join(handlerKinds, ", "))
	case h.HTTP != nil && !strings.HasPrefix(h.HTTP.URL, "http://") && !strings.HasPrefix(h.HTTP.URL, "https://"):
		return fmt.Errorf("handler: http url %q must start with http:// or https://", h.HTTP.URL)
	}
	switch {
	case s.FanOut && s.Next == "":
		return errors.New("fan_out: needs next (the queue its jobs go to)")
	case s.Join && s.Next == "":
		return errors.New("join: needs next (the queue the joined job goes to)")
	case s.FanOut && s.Join:
		return errors.New("fan_out and join: a stage does one or the other")
	}
	if err := s.validateEnv(); err != nil {
		return err
	}
	s.Lease = cmp.Or(s.Lease, Duration(DefaultLease))
	s.Timeout = cmp.Or(s.Timeout, Duration(DefaultTimeout))
	s.Backoff = cmp.Or(s.Backoff, Duration(DefaultBackoff))
	s.MaxBackoff = cmp.Or(s.MaxBackoff, Duration(DefaultMaxBackoff))
	s.MaxJobTimeout = cmp.Or(s.MaxJobTimeout, s.Timeout)
	s.MaxJobLease = cmp.Or(s.MaxJobLease, s.Lease)
	for _, f := range []struct {
		name     string
		d, floor Duration
	}{{"lease", s.Lease, Duration(MinLease)}, {"timeout", s.Timeout, Duration(MinTimeout)}, {"backoff", s.Backoff, Duration(MinBackoff)},
		{"max_job_lease", s.MaxJobLease, Duration(MinLease)}, {"max_job_timeout", s.MaxJobTimeout, Duration(MinTimeout)}} {
		if f.d < f.floor {
			return fmt.Errorf("%s %s is below its floor of %s", f.name, f.d.D(), f.floor.D())
		}
	}
	for _, f := range []struct {
		name string
		d    Duration
	}{{"max_job_lease", s.MaxJobLease}, {"max_job_timeout", s.MaxJobTimeout}} {
		if f.d.D() > store.MaxJobOverride {
			return fmt.Errorf("%s %s is over %s", f.name, f.d.D(), store.MaxJobOverride)
		}
	}
	if s.MaxBackoff < s.Backoff {
		return fmt.Errorf("max_backoff %s is shorter than backoff %s", s.MaxBackoff.D(), s.Backoff.D())
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = store.DefaultAttempts
	}
	if s.MaxAttempts < 1 || s.MaxAttempts > store.MaxMaxAttempts {
		return fmt.Errorf("max_attempts %d must be between 1 and %d", s.MaxAttempts, store.MaxMaxAttempts)
	}
	if s.MaxSnoozes == 0 {
		s.MaxSnoozes = DefaultMaxSnoozes
	}
	if s.MaxSnoozes < 1 || s.MaxSnoozes > 10000 {
		return fmt.Errorf("max_snoozes %d must be between 1 and 10000", s.MaxSnoozes)
	}
	if err := s.validateConcurrency(); err != nil {
		return err
	}
	if s.GlobalConcurrency < 0 || s.GlobalConcurrency > store.MaxGlobalConcurrency {
		return fmt.Errorf("global_concurrency %d must be between 0 (no limit) and %d", s.GlobalConcurrency, store.MaxGlobalConcurrency)
	}
	if s.GroupConcurrency < 0 || s.GroupConcurrency > store.MaxGroupConcurrency {
		return fmt.Errorf("group_concurrency %d must be between 0 (no limit) and %d", s.GroupConcurrency, store.MaxGroupConcurrency)
	}
	if _, err := store.ParseRate(s.RateLimit); err != nil {
		return fmt.Errorf("rate_limit %q: %s", s.RateLimit, store.RateRule)
	}
	return nil
}

// Default ceilings of adaptive slots (Stage.MaxConcurrency), by handler
// kind: an exec job is a process, an http job a connection to one server.
const (
	DefaultMaxConcurrency     = 1000
	DefaultMaxConcurrencyHTTP = 100
	DefaultMaxConcurrencyExec = 32
)

// MaxSlots bounds concurrency and max_concurrency.
const MaxSlots = 10000

func (s *Stage) validateConcurrency() error {
	switch {
	case s.Concurrency != 0 && s.MaxConcurrency != 0:
		return errors.New("concurrency and max_concurrency: set one (concurrency fixes the slots; max_concurrency caps adaptive ones)")
	case s.Concurrency < 0 || s.Concurrency > MaxSlots:
		return fmt.Errorf("concurrency %d must be between 1 and %d (or unset: adaptive slots)", s.Concurrency, MaxSlots)
	case s.MaxConcurrency < 0 || s.MaxConcurrency > MaxSlots:
		return fmt.Errorf("max_concurrency %d must be between 1 and %d", s.MaxConcurrency, MaxSlots)
	}
	if s.Concurrency == 0 && s.MaxConcurrency == 0 {
		switch {
		case len(s.Handler.Exec) > 0:
			s.MaxConcurrency = DefaultMaxConcurrencyExec
		case s.Handler.HTTP != nil:
			s.MaxConcurrency = DefaultMaxConcurrencyHTTP
		default:
			s.MaxConcurrency = DefaultMaxConcurrency
		}
	}
	return nil
}

// ceiling is the most jobs of the stage one replica runs at once: its
// concurrency, or the ceiling of its adaptive slots.
func (s Stage) ceiling() int { return cmp.Or(s.Concurrency, s.MaxConcurrency) }

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (s *Stage) validateEnv() error {
	if len(s.Env) > 0 && len(s.Handler.Exec) == 0 {
		return errors.New("env: only an exec handler has an environment")
	}
	for _, name := range slices.Sorted(maps.Keys(s.Env)) {
		switch {
		case !envName.MatchString(name):
			return fmt.Errorf("env: %q is not a variable name (letters, digits and _, not starting with a digit)", name)
		case strings.HasPrefix(name, "BATON_") || name == "TRACEPARENT":
			return fmt.Errorf("env: %s is Baton's own: it says which job runs", name)
		case strings.ContainsRune(s.Env[name], 0):
			return fmt.Errorf("env: %s: a value cannot hold a NUL byte", name)
		}
	}
	return nil
}
