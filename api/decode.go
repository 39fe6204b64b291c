package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/baton-run/baton/internal/jsonb"
	"github.com/baton-run/baton/internal/store"
)

// maxDepth bounds JSON nesting; encoding/json alone allows 10,000.
const maxDepth = 32

// readJSON reads a request body that must be JSON of at most limit bytes,
// checks it as a whole (valid UTF-8, bounded depth, valid JSON), and returns
// a scanner at its start. Handlers walk the body token by token and keep
// payloads as slices of it, so a request costs about its body's size in
// memory, whatever it holds (a decoded tree of 30 MiB of zeros took 1.2 GB).
func readJSON(w http.ResponseWriter, r *http.Request, limit int64) (*jsonb.Scanner, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, problem(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type",
			"the request body must be application/json")
	}
	body, err := readBody(w, r, limit)
	switch {
	case err != nil:
		return nil, err
	case len(bytes.TrimSpace(body)) == 0:
		return nil, problem(http.StatusBadRequest, "empty_body", "", "the request body is empty")
	case !utf8.Valid(body):
		return nil, problem(http.StatusBadRequest, "invalid_utf8", "", "the request body is not valid UTF-8")
	case jsonb.TooDeep(body, maxDepth):
		return nil, problem(http.StatusUnprocessableEntity, "too_deep", "", "JSON nesting is deeper than %d levels", maxDepth)
	case !json.Valid(body):
		return nil, syntaxProblem(body)
	}
	return jsonb.NewScanner(body), nil
}

// readBody reads at most limit bytes of body. It reads into chunks that
// double up to 1 MiB and joins them once, so a body costs at most about
// twice its size, and a client that declares a large Content-Length must
// send the bytes before they cost anything.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	tooLarge := problem(http.StatusRequestEntityTooLarge, "payload_too_large", "", "the request body is larger than %d bytes", limit)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	size := 4 << 10
	if r.ContentLength >= 0 {
		size = int(r.ContentLength) + 1 // +1: the end shows without another chunk
	}
	var chunks [][]byte
	for {
		chunk := make([]byte, min(size, 1<<20))
		n, err := io.ReadFull(body, chunk)
		chunks = append(chunks, chunk[:n])
		var maxErr *http.MaxBytesError
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			if len(chunks) == 1 {
				return chunks[0], nil
			}
			return bytes.Join(chunks, nil), nil
		case errors.As(err, &maxErr):
			return nil, tooLarge
		case err != nil:
			return nil, problem(http.StatusBadRequest, "malformed_body", "", "reading the request body: %v", err)
		}
		size *= 2
	}
}

// syntaxProblem says what is wrong with a body json.Valid refused.
func syntaxProblem(body []byte) *Problem {
	var syntax *json.SyntaxError
	err := json.Unmarshal(body, new(json.RawMessage)) // checks syntax only: builds nothing
	switch {
	case !errors.As(err, &syntax):
		return problem(http.StatusBadRequest, "malformed_json", "", "the body is not valid JSON")
	case strings.Contains(syntax.Error(), "end of JSON input"):
		return problem(http.StatusBadRequest, "malformed_json", "", "the JSON value is incomplete")
	case strings.Contains(syntax.Error(), "after top-level value"):
		return problem(http.StatusBadRequest, "malformed_json", "", "unexpected data after the JSON value")
	}
	return problem(http.StatusBadRequest, "malformed_json", "", "%s (at byte %d)", syntax, syntax.Offset)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldName reads an object key the request may use.
func fieldName(k jsonb.Token, path string, allowed []string) (string, error) {
	key := string(jsonb.Unquote(k.Raw))
	field := joinPath(path, key)
	if err := jsonb.String(k.Raw); err != nil {
		return "", valueProblem(&jsonb.Error{Err: err}, field, 0)
	}
	if !slices.Contains(allowed, key) {
		return "", problem(http.StatusUnprocessableEntity, "unknown_field", field,
			"unknown field %q (allowed: %s)", key, strings.Join(allowed, ", "))
	}
	return key, nil
}

func notAnObject(path string) *Problem {
	what := "the request body"
	if path != "" {
		what = path
	}
	return problem(http.StatusUnprocessableEntity, "invalid_type", path, "%s must be a JSON object", what)
}

// valueProblem is the problem for a payload jsonb cannot store, or one
// against the request's limits.
func valueProblem(err error, field string, maxBytes int) *Problem {
	var e *jsonb.Error
	if !errors.As(err, &e) {
		return problem(http.StatusUnprocessableEntity, "invalid_type", field, "%s: %v", field, err)
	}
	at := e.Under(field)
	switch {
	case errors.Is(e, jsonb.ErrTooLarge):
		return problem(http.StatusRequestEntityTooLarge, "payload_too_large", field, "%s is larger than %d bytes", field, maxBytes)
	case errors.Is(e, jsonb.ErrExpands):
		return problem(http.StatusUnprocessableEntity, "payload_expands", at,
			"%s is larger than %d bytes once its numbers are written out in full, as every read of it would be (1e1000 is 1,001 digits)", field, maxBytes)
	case errors.Is(e, jsonb.ErrNUL):
		return problem(http.StatusUnprocessableEntity, "unsupported_null_char", at, "strings must not contain \\u0000 (PostgreSQL cannot store it)")
	case errors.Is(e, jsonb.ErrSurrogate):
		return problem(http.StatusUnprocessableEntity, "invalid_unicode", at, "the body has an unpaired UTF-16 surrogate escape")
	case errors.Is(e, jsonb.ErrDuplicateKey):
		return problem(http.StatusBadRequest, "duplicate_key", at, "key %q appears twice", at[strings.LastIndex(at, ".")+1:])
	case errors.Is(e, jsonb.ErrNumber):
		return problem(http.StatusUnprocessableEntity, "out_of_range", at, "%s", jsonb.ErrNumber)
	}
	return problem(http.StatusUnprocessableEntity, "invalid_type", at, "%s", e.Err)
}

// intValue reads an integer within [lo, hi].
func intValue(v jsonb.Token, field string, lo, hi int64) (int64, error) {
	key := field[strings.LastIndex(field, ".")+1:]
	if !v.IsNumber() || bytes.ContainsAny(v.Raw, ".eE") {
		return 0, problem(http.StatusUnprocessableEntity, "invalid_type", field, "%s must be an integer", key)
	}
	i, err := strconv.ParseInt(string(v.Raw), 10, 64)
	if err != nil || i < lo || i > hi {
		return 0, problem(http.StatusUnprocessableEntity, "out_of_range", field, "%s must be an integer between %d and %d", key, lo, hi)
	}
	return i, nil
}

// stringValue reads a string.
func stringValue(v jsonb.Token, field string) (string, error) {
	if v.Kind != '"' {
		return "", problem(http.StatusUnprocessableEntity, "invalid_type", field, "%s must be a string", field[strings.LastIndex(field, ".")+1:])
	}
	return string(jsonb.Unquote(v.Raw)), nil
}

// jobFields are the fields of one job in a submit request.
var jobFields = []string{"payload", "delay", "run_at", "priority", "max_attempts", "unique_key", "unique_for", "unique_states",
	"tags", "timeout", "lease", "group"}

// parseJob reads the job object that begins with t into a store.NewJob. The
// payload stays the bytes the client sent: a slice of the body.
func parseJob(s *jsonb.Scanner, t jsonb.Token, path, queue string, maxPayload int) (store.NewJob, error) {
	job := store.NewJob{Queue: queue}
	if t.Kind != '{' {
		return job, notAnObject(path)
	}
	var seen [12]bool // by jobFields index
	var delay, runAt, uniqueFor string
	for k := s.Next(); k.Kind == '"'; k = s.Next() {
		key, err := fieldName(k, path, jobFields)
		if err != nil {
			return job, err
		}
		field := joinPath(path, key)
		i := slices.Index(jobFields, key)
		if seen[i] {
			return job, problem(http.StatusBadRequest, "duplicate_key", field, "key %q appears twice", key)
		}
		seen[i] = true
		v := s.Next()
		switch key {
		case "payload":
			job.Payload, err = s.Value(v, jsonb.Limits{MaxBytes: maxPayload, UniqueKeys: true})
			if err != nil {
				return job, valueProblem(err, field, maxPayload)
			}
		case "delay":
			delay, err = stringValue(v, field)
		case "run_at":
			runAt, err = stringValue(v, field)
		case "priority":
			var n int64
			n, err = intValue(v, field, 0, store.MaxPriority)
			job.Priority = int16(n)
		case "max_attempts":
			var n int64
			n, err = intValue(v, field, 1, store.MaxMaxAttempts)
			job.MaxAttempts = int32(n)
		case "unique_key":
			job.UniqueKey, err = stringValue(v, field)
			if err == nil && (job.UniqueKey == "" || len(job.UniqueKey) > 255 || strings.ContainsFunc(job.UniqueKey, unicode.IsControl)) {
				err = problem(http.StatusUnprocessableEntity, "out_of_range", field, "unique_key must be 1 to 255 bytes of text without control characters")
			}
		case "unique_for":
			uniqueFor, err = stringValue(v, field)
		case "unique_states":
			job.UniqueStates, err = statesValue(s, v, field)
		case "tags":
			job.Tags, err = tagsValue(s, v, field)
		case "timeout":
			job.Timeout, err = overrideValue(v, field, store.MinJobTimeout)
		case "lease":
			job.Lease, err = overrideValue(v, field, store.MinJobLease)
		case "group":
			job.Group, err = stringValue(v, field)
			if err == nil && (job.Group == "" || store.ValidateGroup(job.Group) != nil) {
				err = problem(http.StatusUnprocessableEntity, "out_of_range", field, "group must be 1 to %d characters without control characters", store.MaxGroupLength)
			}
		}
		if err != nil {
			return job, err
		}
	}
	if seen[6] {
		d, err := time.ParseDuration(uniqueFor)
		if err != nil || d < time.Second || d > store.MaxDelay {
			return job, problem(http.StatusUnprocessableEntity, "invalid_duration", joinPath(path, "unique_for"),
				"unique_for %q must be a duration from 1s to %s, such as \"1h\"", uniqueFor, store.MaxDelay)
		}
		job.UniqueFor = d
	}
	if (seen[6] || seen[7]) && !seen[5] {
		return job, problem(http.StatusUnprocessableEntity, "missing_field", joinPath(path, "unique_key"), "unique_for and unique_states need a unique_key")
	}
	hasDelay, hasRunAt := seen[1], seen[2]
	switch {
	case !seen[0]:
		return job, problem(http.StatusUnprocessableEntity, "missing_field", joinPath(path, "payload"), "payload is required (any JSON value)")
	case hasDelay && hasRunAt:
		return job, problem(http.StatusUnprocessableEntity, "conflicting_fields", joinPath(path, "run_at"), "give delay or run_at, not both")
	case hasDelay:
		d, err := time.ParseDuration(delay)
		if err != nil {
			return job, problem(http.StatusUnprocessableEntity, "invalid_duration", joinPath(path, "delay"),
				"delay %q is not a duration such as \"90s\" or \"5m\"", delay)
		}
		if d < 0 || d > store.MaxDelay {
			return job, problem(http.StatusUnprocessableEntity, "out_of_range", joinPath(path, "delay"),
				"delay must be between 0s and %s", store.MaxDelay)
		}
		job.Delay = d
	case hasRunAt:
		t, err := parseTime(runAt, joinPath(path, "run_at"))
		if err != nil {
			return job, err
		}
		job.RunAt = t
	}
	return job, nil
}

// statesValue reads a non-empty list of distinct job states.
func statesValue(s *jsonb.Scanner, v jsonb.Token, field string) ([]store.JobState, error) {
	bad := problem(http.StatusUnprocessableEntity, "invalid_type", field, "%s must be a list of job states (%s)",
		field[strings.LastIndex(field, ".")+1:], stateList)
	if v.Kind != '[' {
		return nil, bad
	}
	var states []store.JobState
	for e := s.Next(); e.Kind != ']'; e = s.Next() {
		if e.Kind != '"' {
			return nil, bad
		}
		st := store.JobState(jsonb.Unquote(e.Raw))
		if !st.Valid() || slices.Contains(states, st) || len(states) == len(store.AllJobStateValues()) {
			return nil, bad
		}
		states = append(states, st)
	}
	if len(states) == 0 {
		return nil, bad
	}
	return states, nil
}

// tagsValue reads a list of at most store.MaxTags distinct tags.
func tagsValue(s *jsonb.Scanner, v jsonb.Token, field string) ([]string, error) {
	if v.Kind != '[' {
		return nil, problem(http.StatusUnprocessableEntity, "invalid_type", field, "tags must be a list of strings")
	}
	var tags []string
	for e := s.Next(); e.Kind != ']'; e = s.Next() {
		switch {
		case e.Kind != '"':
			return nil, problem(http.StatusUnprocessableEntity, "invalid_type", field, "tags must be a list of strings")
		case len(tags) == store.MaxTags:
			return nil, problem(http.StatusUnprocessableEntity, "out_of_range", field, "at most %d tags", store.MaxTags)
		}
		tag := string(jsonb.Unquote(e.Raw))
		if !store.ValidTag(tag) {
			return nil, problem(http.StatusUnprocessableEntity, "out_of_range", field,
				"a tag must be 1 to %d characters without control characters", store.MaxTagLength)
		}
		if slices.Contains(tags, tag) {
			return nil, problem(http.StatusUnprocessableEntity, "out_of_range", field, "tag %q appears twice", tag)
		}
		tags = append(tags, tag)
	}
	return tags, nil
}

// overrideValue reads a job's own timeout or lease: a duration from least
// to store.MaxJobOverride.
func overrideValue(v jsonb.Token, field string, least time.Duration) (time.Duration, error) {
	text, err := stringValue(v, field)
	if err != nil {
		return 0, err
	}
	key := field[strings.LastIndex(field, ".")+1:]
	d, err := time.ParseDuration(text)
	if err != nil {
		return 0, problem(http.StatusUnprocessableEntity, "invalid_duration", field, "%s %q is not a duration such as \"90s\" or \"5m\"", key, text)
	}
	if d < least || d > store.MaxJobOverride {
		return 0, problem(http.StatusUnprocessableEntity, "out_of_range", field, "%s must be between %s and %s", key, least, store.MaxJobOverride)
	}
	return d, nil
}

// rfc3339 is RFC 3339's date-time, whose offsets go to ±23:59 (Go's parser
// takes +24:00 and more).
var rfc3339 = regexp.MustCompile(`^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$`)

// parseTime reads an RFC 3339 time that every reader can write back: within
// store.MinRunAt..store.MaxRunAt once in UTC.
func parseTime(s, field string) (time.Time, error) {
	key := field[strings.LastIndex(field, ".")+1:]
	if !rfc3339.MatchString(s) {
		return time.Time{}, problem(http.StatusUnprocessableEntity, "invalid_timestamp", field,
			"%s %q is not an RFC 3339 time with a UTC offset, such as \"2030-01-02T15:04:05Z\"", key, s)
	}
	t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	if err != nil {
		return time.Time{}, problem(http.StatusUnprocessableEntity, "invalid_timestamp", field,
			"%s %q is not a valid time: %v", key, s, err)
	}
	if !store.ValidRunAt(t) {
		return time.Time{}, problem(http.StatusUnprocessableEntity, "out_of_range", field,
			"%s must be between %s and %s (in UTC; %s is %s)", key, store.MinRunAt.Format(time.RFC3339),
			store.MaxRunAt.Format(time.RFC3339), s, t.UTC().Format("2006-01-02T15:04:05Z07:00"))
	}
	return t, nil
}

// parseBatch reads a batch submit's body: {"jobs": [job, …]}.
func parseBatch(s *jsonb.Scanner, queue string, maxJobs, maxPayload int) ([]store.NewJob, error) {
	if t := s.Next(); t.Kind != '{' {
		return nil, notAnObject("")
	}
	var jobs []store.NewJob
	found := false
	for k := s.Next(); k.Kind == '"'; k = s.Next() {
		if _, err := fieldName(k, "", []string{"jobs"}); err != nil {
			return nil, err
		}
		if found {
			return nil, problem(http.StatusBadRequest, "duplicate_key", "jobs", "key \"jobs\" appears twice")
		}
		found = true
		switch v := s.Next(); v.Kind {
		case 'n':
			found = false
		case '[':
			for e := s.Next(); e.Kind != ']'; e = s.Next() {
				if len(jobs) == maxJobs {
					return nil, problem(http.StatusUnprocessableEntity, "out_of_range", "jobs", "a batch holds 1 to %d jobs, got more", maxJobs)
				}
				job, err := parseJob(s, e, "jobs["+strconv.Itoa(len(jobs))+"]", queue, maxPayload)
				if err != nil {
					return nil, err
				}
				jobs = append(jobs, job)
			}
		default:
			return nil, problem(http.StatusUnprocessableEntity, "invalid_type", "jobs", "jobs must be a list")
		}
	}
	switch {
	case !found:
		return nil, problem(http.StatusUnprocessableEntity, "missing_field", "jobs", "jobs is required: a list of jobs")
	case len(jobs) == 0:
		return nil, problem(http.StatusUnprocessableEntity, "out_of_range", "jobs", "a batch holds 1 to %d jobs, got 0", maxJobs)
	}
	return jobs, nil
}

// idempotencyKey reads the Idempotency-Key header, bare or as a quoted
// structured-field string.
func idempotencyKey(r *http.Request) (string, error) {
	raw, ok := r.Header["Idempotency-Key"]
	if !ok {
		return "", nil
	}
	bad := problem(http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key",
		"Idempotency-Key must be one value of 1 to 255 printable ASCII characters")
	if len(raw) != 1 {
		return "", bad
	}
	key := strings.TrimSpace(raw[0])
	if len(key) >= 2 && key[0] == '"' && key[len(key)-1] == '"' {
		key = key[1 : len(key)-1]
		if strings.ContainsAny(key, `"\`) {
			return "", bad
		}
	}
	if key == "" || len(key) > 255 {
		return "", bad
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return "", bad
		}
	}
	return key, nil
}
