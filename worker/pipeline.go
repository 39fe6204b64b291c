package worker

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/baton-run/baton/db"
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
	MinLease             = 100 * time.Millisecond
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
	// Stages lists the queues to work, each with its handler. At least one.
	Stages []Stage `yaml:"stages"`
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
	// Concurrency is how many jobs of this stage one replica runs at once. Defaults to 8.
	Concurrency int `yaml:"concurrency"`
	// Timeout stops a handler running longer; the attempt fails. Defaults to 1m.
	Timeout Duration `yaml:"timeout"`
	// Backoff is the first retry delay; it doubles per attempt, with jitter,
	// up to MaxBackoff. Defaults to 1s and 10m.
	Backoff    Duration `yaml:"backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
}

// HandlerSpec names a stage's handler: a command, a webhook, or a Go handler
// registered with Register.
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
		return fmt.Errorf("handler must have exactly one of %s", strings.Join(handlerKinds, ", "))
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

// ParsePipeline parses and validates a pipeline file's YAML, filling in defaults.
func ParsePipeline(data []byte) (*Pipeline, error) {
	var p Pipeline
	dec := yaml.NewDecoder(bytes.NewReader(data), yaml.Strict())
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s", ErrPipeline, yaml.FormatError(err, false, true))
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPipeline, err)
	}
	return &p, nil
}

func (p *Pipeline) validate() error {
	if len(p.Stages) == 0 {
		return errors.New("no stages")
	}
	p.PollInterval = cmp.Or(p.PollInterval, Duration(DefaultPollInterval))
	p.ShutdownGrace = cmp.Or(p.ShutdownGrace, Duration(DefaultShutdownGrace))
	seen := map[string]bool{}
	for i := range p.Stages {
		s := &p.Stages[i]
		if err := s.validate(); err != nil {
			return fmt.Errorf("stage %d (%s): %w", i+1, s.Queue, err)
		}
		if seen[s.Queue] {
			return fmt.Errorf("stage %d: queue %q is worked by two stages", i+1, s.Queue)
		}
		seen[s.Queue] = true
	}
	return nil
}

func (s *Stage) validate() error {
	if s.Queue == "" {
		return errors.New("queue is required")
	}
	if !db.ValidQueueName(s.Queue) {
		return fmt.Errorf("queue %q: %s", s.Queue, db.QueueNameRule)
	}
	if s.Next != "" {
		if !db.ValidQueueName(s.Next) {
			return fmt.Errorf("next %q: %s", s.Next, db.QueueNameRule)
		}
		if s.Next == s.Queue {
			return errors.New("next must name another queue")
		}
	}
	switch h := s.Handler; {
	case h.Exec != nil && (len(h.Exec) == 0 || h.Exec[0] == ""):
		return errors.New("handler exec needs a command")
	case len(h.Exec) == 0 && h.HTTP == nil && h.Go == "":
		return fmt.Errorf("handler is required (one of %s)", strings.Join(handlerKinds, ", "))
	case h.HTTP != nil && !strings.HasPrefix(h.HTTP.URL, "http://") && !strings.HasPrefix(h.HTTP.URL, "https://"):
		return fmt.Errorf("handler http url %q must start with http:// or https://", h.HTTP.URL)
	}
	s.Lease = cmp.Or(s.Lease, Duration(DefaultLease))
	if s.Lease.D() < MinLease {
		return fmt.Errorf("lease %s is shorter than %s", s.Lease.D(), MinLease)
	}
	s.Timeout = cmp.Or(s.Timeout, Duration(DefaultTimeout))
	s.Backoff = cmp.Or(s.Backoff, Duration(DefaultBackoff))
	s.MaxBackoff = cmp.Or(s.MaxBackoff, Duration(DefaultMaxBackoff))
	if s.MaxBackoff < s.Backoff {
		return fmt.Errorf("max_backoff %s is shorter than backoff %s", s.MaxBackoff.D(), s.Backoff.D())
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = db.DefaultAttempts
	}
	if s.MaxAttempts < 1 || s.MaxAttempts > db.MaxMaxAttempts {
		return fmt.Errorf("max_attempts %d must be between 1 and %d", s.MaxAttempts, db.MaxMaxAttempts)
	}
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.Concurrency < 1 || s.Concurrency > 10000 {
		return fmt.Errorf("concurrency %d must be between 1 and 10000", s.Concurrency)
	}
	return nil
}
