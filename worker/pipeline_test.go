package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/worker"
)

func TestParsePipelineDefaults(t *testing.T) {
	t.Parallel()
	p, err := worker.ParsePipeline([]byte(`
stages:
  - queue: resize
    handler: {exec: ["cat"]}
    next: publish
  - queue: publish
    handler: {http: {url: "http://127.0.0.1:9000/publish"}}
    lease: 5s
`))
	require.NoError(t, err)
	require.Len(t, p.Stages, 2)
	s := p.Stages[0]
	require.Equal(t, worker.DefaultLease, s.Lease.D())
	require.Equal(t, worker.DefaultTimeout, s.Timeout.D())
	require.Equal(t, 5, s.MaxAttempts)
	require.Zero(t, s.Concurrency, "no concurrency: adaptive slots")
	require.Equal(t, worker.DefaultMaxConcurrencyExec, s.MaxConcurrency)
	require.Equal(t, worker.DefaultMaxConcurrencyHTTP, p.Stages[1].MaxConcurrency)
	require.Equal(t, "publish", s.Next)
	require.Equal(t, 5*time.Second, p.Stages[1].Lease.D())
	require.Equal(t, worker.DefaultPollInterval, p.PollInterval.D())
}

// Every refusal is one line that names the stage and the field.
func TestParsePipelineRejectsBadFiles(t *testing.T) {
	t.Parallel()
	const cat = "stages:\n  - queue: a\n    handler: {exec: [cat]}\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"Empty", ``, "no stages"},
		{"NoStages", `stages: []`, "no stages"},
		{"NotYAML", `stages: [`, "line 1: sequence end token ']' not found"},
		{"StagesNotAList", `stages: {a: 1}`, "stages: mapping was used where sequence is expected"},
		{"StageNotAMapping", "stages:\n  - x", "stage 1: string was used where mapping is expected"},
		{"UnknownTopLevelField", "polling: 1s\n" + cat, `unknown field "polling" (known: periodic, poll_interval, shutdown_grace, stages)`},
		{"UnknownField", cat + "    leese: 3s", `stage 1 (a): unknown field "leese" (known: backoff, concurrency,`},
		{"DuplicateField", cat + "    queue: b", `line 4: mapping key "queue" already defined`},
		{"UnknownHandlerKind", "stages:\n  - queue: a\n    handler: {grpc: x}", `stage 1 (a): handler: unknown handler kind "grpc"`},
		{"UnknownHTTPField", "stages:\n  - queue: a\n    handler: {http: {url: 'http://x', method: GET}}", `stage 1 (a): handler: unknown field "method"`},
		{"TwoHandlerKinds", "stages:\n  - queue: a\n    handler: {exec: [cat], go: x}", "stage 1 (a): handler: must have exactly one"},
		{"NoHandler", "stages:\n  - queue: a", "stage 1 (a): handler: required"},
		{"EmptyExec", "stages:\n  - queue: a\n    handler: {exec: []}", "stage 1 (a): handler: exec needs a command"},
		{"BadURL", "stages:\n  - queue: a\n    handler: {http: {url: 'ftp://x'}}", "stage 1 (a): handler: http url \"ftp://x\" must start with http"},
		{"BadQueueName", "stages:\n  - queue: Bad Name\n    handler: {exec: [cat]}", "stage 1 (Bad Name): queue: \"Bad Name\": a queue name must be"},
		{"MissingQueue", "stages:\n  - handler: {exec: [cat]}", "stage 1: queue: required"},
		{"BadNext", cat + "    next: 'b;c'", "stage 1 (a): next: \"b;c\""},
		{"NextIsSelf", cat + "    next: a", "stage 1 (a): next: must name another queue"},
		{"DuplicateQueue", cat + "  - queue: a\n    handler: {exec: [cat]}", "stage 2 (a): queue: \"a\" is worked by two stages"},
		{"Cycle", cat + "    next: b\n  - queue: b\n    handler: {exec: [cat]}\n    next: a", "stage 1 (a): next: a -> b -> a is a cycle"},
		{"LongerCycle", cat + "    next: b\n  - queue: b\n    handler: {exec: [cat]}\n    next: c\n  - queue: c\n    handler: {exec: [cat]}\n    next: b",
			"stage 2 (b): next: b -> c -> b is a cycle"},
		{"SecondDocument", cat + "---\nstages: []\n", "the file holds a second YAML document"},
		{"BadDuration", cat + "    lease: soon", `stage 1 (a): lease: invalid duration "soon"`},
		{"DurationWithoutUnit", cat + "    timeout: 30", `stage 1 (a): timeout: invalid duration "30"`},
		{"NegativeDuration", cat + "    backoff: -1s", `stage 1 (a): backoff: duration "-1s" must not be negative`},
		{"NotANumber", cat + "    max_attempts: many", "stage 1 (a): max_attempts: cannot unmarshal string"},
		{"PollIntervalBelowFloor", "poll_interval: 1ns\n" + cat, "poll_interval 1ns is below its floor of 10ms"},
		{"LeaseBelowFloor", cat + "    lease: 1ms", "stage 1 (a): lease 1ms is below its floor of 100ms"},
		{"TimeoutBelowFloor", cat + "    timeout: 1ns", "stage 1 (a): timeout 1ns is below its floor of 10ms"},
		{"BackoffBelowFloor", cat + "    backoff: 1ms", "stage 1 (a): backoff 1ms is below its floor of 10ms"},
		{"NegativeAttempts", cat + "    max_attempts: -1", "stage 1 (a): max_attempts -1 must be between 1 and 1000"},
		{"ConcurrencyTooHigh", cat + "    concurrency: 100000", "stage 1 (a): concurrency 100000 must be between 1 and 10000"},
		{"ConcurrencyNegative", cat + "    concurrency: -3", "stage 1 (a): concurrency -3 must be between 1 and 10000 (or unset: adaptive slots)"},
		{"MaxConcurrencyTooHigh", cat + "    max_concurrency: 20000", "stage 1 (a): max_concurrency 20000 must be between 1 and 10000"},
		{"ConcurrencyAndMax", cat + "    concurrency: 10\n    max_concurrency: 100", "stage 1 (a): concurrency and max_concurrency: set one"},
		{"BackoffAboveMax", cat + "    backoff: 1h\n    max_backoff: 1m", "stage 1 (a): max_backoff 1m0s is shorter than backoff 1h0m0s"},
		{"FanOutWithoutNext", cat + "    fan_out: true", "stage 1 (a): fan_out: needs next"},
		{"JoinWithoutFanOut", cat + "    join: true\n    next: b", "stage 1 (a): join: no stage of this file fans out to a"},
		{"FanOutAndJoin", cat + "    fan_out: true\n    join: true\n    next: b", "stage 1 (a): fan_out and join: a stage does one or the other"},
		{"JoinWithoutNext", cat + "    fan_out: true\n    next: b\n  - queue: b\n    handler: {exec: [cat]}\n    join: true", "stage 2 (b): join: needs next"},
		{"MaxSnoozesTooHigh", cat + "    max_snoozes: 20000", "stage 1 (a): max_snoozes 20000 must be between 1 and 10000"},
		{"GlobalConcurrencyNegative", cat + "    global_concurrency: -1", "stage 1 (a): global_concurrency -1 must be between 0 (no limit) and 1000000"},
		{"GroupConcurrencyNegative", cat + "    group_concurrency: -2", "stage 1 (a): group_concurrency -2 must be between 0 (no limit) and 10000"},
		{"RateLimitFortnight", cat + "    rate_limit: 20/fortnight", `stage 1 (a): rate_limit "20/fortnight": a rate is "N/s" or "N/m"`},
		{"RateLimitZero", cat + "    rate_limit: 0/s", `stage 1 (a): rate_limit "0/s": a rate is`},
		{"FairNotABool", cat + "    fair: sometimes", "fair"},
		{"EnvBadName", cat + "    env: {'A-B': x}", `stage 1 (a): env: "A-B" is not a variable name`},
		{"EnvBatonsOwn", cat + "    env: {BATON_JOB_ID: '7'}", "stage 1 (a): env: BATON_JOB_ID is Baton's own"},
		{"EnvNotExec", "stages:\n  - queue: a\n    handler: {go: x}\n    env: {A: b}", "stage 1 (a): env: only an exec handler has an environment"},
		{"EnvNotAMap", cat + "    env: [A]", "stage 1 (a): env:"},
		{"PeriodicBadSchedule", cat + "periodic:\n  - {name: p, queue: a, schedule: 'every day'}", `periodic entry 1 (p): schedule: "every day"`},
		{"PeriodicNeverFires", cat + "periodic:\n  - {name: p, queue: a, schedule: '0 0 30 2 *'}", `periodic entry 1 (p): schedule: "0 0 30 2 *" never fires`},
		{"PeriodicTooOften", cat + "periodic:\n  - {name: p, queue: a, schedule: '@every 100ms'}", "an interval must be whole seconds, at least 1s"},
		{"PeriodicFractionalInterval", cat + "periodic:\n  - {name: p, queue: a, schedule: '@every 1500ms'}", "an interval must be whole seconds, at least 1s"},
		{"PeriodicBadZone", cat + "periodic:\n  - {name: p, queue: a, schedule: '@daily', timezone: Mars/Olympus}", `timezone: "Mars/Olympus" is not an IANA time zone`},
		{"PeriodicZoneInSchedule", cat + "periodic:\n  - {name: p, queue: a, schedule: 'CRON_TZ=UTC 0 3 * * *'}", "give the time zone as timezone:"},
		{"PeriodicNoName", cat + "periodic:\n  - {queue: a, schedule: '@daily'}", "periodic entry 1: name: required"},
		{"PeriodicTwoNames", cat + "periodic:\n  - {name: p, queue: a, schedule: '@daily'}\n  - {name: p, queue: b, schedule: '@hourly'}", `periodic entry 2 (p): name: "p" names two entries`},
		{"PeriodicBadQueue", cat + "periodic:\n  - {name: p, queue: 'A B', schedule: '@daily'}", `periodic entry 1 (p): queue: "A B"`},
		{"PeriodicUnknownField", cat + "periodic:\n  - {name: p, queue: a, schedule: '@daily', every: 1s}", `periodic: `},
		{"PeriodicBadPayload", cat + "periodic:\n  - {name: p, queue: a, schedule: '@daily', payload: {s: \"a\\0b\"}}", "periodic entry 1 (p): payload: s: strings must not contain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := worker.ParsePipeline([]byte(tt.yaml))
			require.ErrorIs(t, err, worker.ErrPipeline)
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), "\n", "one line")
		})
	}
	// Periodic entries: cron with or without seconds, descriptors,
	// intervals, a time zone; a file may hold only periodic entries.
	p, err := worker.ParsePipeline([]byte("periodic:\n" +
		"  - {name: nightly, queue: reports, schedule: '0 3 * * *', timezone: Europe/Berlin, payload: {kind: nightly}}\n" +
		"  - {name: tens, queue: beats, schedule: '*/10 * * * * *'}\n" +
		"  - {name: daily, queue: beats, schedule: '@daily'}\n" +
		"  - {name: often, queue: beats, schedule: '@every 2s'}\n"))
	require.NoError(t, err)
	require.Len(t, p.Periodic, 4)
	require.JSONEq(t, `{"kind": "nightly"}`, string(p.Periodic[0].Payload))
	require.JSONEq(t, `{}`, string(p.Periodic[1].Payload))
	require.Equal(t, "UTC", p.Periodic[1].Timezone)

	// A chain that leaves the file is no cycle.
	_, err = worker.ParsePipeline([]byte(cat + "    next: b\n  - queue: b\n    handler: {exec: [cat]}\n    next: c\n"))
	require.NoError(t, err)
}

func TestLoadPipelineNamesAnUnreadableFile(t *testing.T) {
	t.Parallel()
	_, err := worker.LoadPipeline("/nonexistent/pipeline.yaml")
	require.ErrorIs(t, err, worker.ErrPipeline)
	require.ErrorContains(t, err, "/nonexistent/pipeline.yaml")
}
