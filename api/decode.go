package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/baton-run/baton/db"
)

// maxDepth bounds JSON nesting; encoding/json alone allows 10,000.
const maxDepth = 32

// readJSON reads a request body that must be JSON of at most limit bytes and
// returns it decoded into plain values (numbers as json.Number), after strict
// checks encoding/json does not make: valid UTF-8, no duplicate keys, no
// trailing data, no NUL characters or lone surrogates, bounded depth.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64) (any, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, problem(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type",
			"the request body must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, problem(http.StatusRequestEntityTooLarge, "payload_too_large", "",
			"the request body is larger than %d bytes", limit)
	case err != nil:
		return nil, problem(http.StatusBadRequest, "malformed_body", "", "reading the request body: %v", err)
	case len(bytes.TrimSpace(body)) == 0:
		return nil, problem(http.StatusBadRequest, "empty_body", "", "the request body is empty")
	case !utf8.Valid(body):
		return nil, problem(http.StatusBadRequest, "invalid_utf8", "", "the request body is not valid UTF-8")
	}
	if err := checkEscapes(body); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	v, err := decodeValue(dec, "", 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, problem(http.StatusBadRequest, "malformed_json", "", "unexpected data after the JSON value")
	}
	return v, nil
}

// decodeValue walks one JSON value token by token, so that duplicate keys,
// depth and NUL characters are caught with the path where they occur.
func decodeValue(dec *json.Decoder, path string, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxProblem(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return nil, problem(http.StatusUnprocessableEntity, "too_deep", path, "JSON nesting is deeper than %d levels", maxDepth)
		}
		if t == '[' {
			list := []any{}
			for dec.More() {
				v, err := decodeValue(dec, fmt.Sprintf("%s[%d]", path, len(list)), depth+1)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, syntaxProblem(err)
			}
			return list, nil
		}
		obj := map[string]any{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, syntaxProblem(err)
			}
			key := tok.(string)
			field := joinPath(path, key)
			if strings.ContainsRune(key, 0) {
				return nil, problem(http.StatusUnprocessableEntity, "unsupported_null_char", field, "keys must not contain \\u0000")
			}
			if _, dup := obj[key]; dup {
				return nil, problem(http.StatusBadRequest, "duplicate_key", field, "key %q appears twice", key)
			}
			v, err := decodeValue(dec, field, depth+1)
			if err != nil {
				return nil, err
			}
			obj[key] = v
		}
		if _, err := dec.Token(); err != nil {
			return nil, syntaxProblem(err)
		}
		return obj, nil
	case string:
		if strings.ContainsRune(t, 0) {
			return nil, problem(http.StatusUnprocessableEntity, "unsupported_null_char", path,
				"strings must not contain \\u0000 (PostgreSQL cannot store it)")
		}
	}
	return tok, nil
}

func syntaxProblem(err error) *Problem {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return problem(http.StatusBadRequest, "malformed_json", "", "the JSON value is incomplete")
	}
	return problem(http.StatusBadRequest, "malformed_json", "", "%v", err)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// checkEscapes rejects \u escapes of lone UTF-16 surrogates, which
// encoding/json would silently turn into U+FFFD.
func checkEscapes(body []byte) error {
	inString, escaped := false, false
	pendingHigh := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		if escaped {
			escaped = false
			if c == 'u' && i+4 < len(body) {
				v, err := strconv.ParseUint(string(body[i+1:i+5]), 16, 16)
				if err == nil {
					high, low := v >= 0xD800 && v <= 0xDBFF, v >= 0xDC00 && v <= 0xDFFF
					if (pendingHigh && !low) || (!pendingHigh && low) {
						return problem(http.StatusUnprocessableEntity, "invalid_unicode", "", "the body has an unpaired UTF-16 surrogate escape")
					}
					pendingHigh = high
					i += 4
					continue
				}
			}
			if pendingHigh {
				return problem(http.StatusUnprocessableEntity, "invalid_unicode", "", "the body has an unpaired UTF-16 surrogate escape")
			}
			continue
		}
		if pendingHigh && c != '\\' {
			return problem(http.StatusUnprocessableEntity, "invalid_unicode", "", "the body has an unpaired UTF-16 surrogate escape")
		}
		switch c {
		case '\\':
			escaped = true
		case '"':
			inString = false
		}
	}
	return nil
}

// object requires v to be a JSON object whose keys are all in allowed (exact,
// case-sensitive: encoding/json would match "Queue" to "queue").
func object(v any, path string, allowed ...string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		what := "the request body"
		if path != "" {
			what = path
		}
		return nil, problem(http.StatusUnprocessableEntity, "invalid_type", path, "%s must be a JSON object", what)
	}
	for k := range m {
		if !slices.Contains(allowed, k) {
			return nil, problem(http.StatusUnprocessableEntity, "unknown_field", joinPath(path, k),
				"unknown field %q (allowed: %s)", k, strings.Join(allowed, ", "))
		}
	}
	return m, nil
}

// intField reads an optional integer field within [lo, hi].
func intField(m map[string]any, path, key string, lo, hi int64) (int64, bool, error) {
	v, ok := m[key]
	if !ok {
		return 0, false, nil
	}
	field := joinPath(path, key)
	n, isNum := v.(json.Number)
	if !isNum || strings.ContainsAny(n.String(), ".eE") {
		return 0, false, problem(http.StatusUnprocessableEntity, "invalid_type", field, "%s must be an integer", key)
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || i < lo || i > hi {
		return 0, false, problem(http.StatusUnprocessableEntity, "out_of_range", field, "%s must be an integer between %d and %d", key, lo, hi)
	}
	return i, true, nil
}

func stringField(m map[string]any, path, key string) (string, bool, error) {
	v, ok := m[key]
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, problem(http.StatusUnprocessableEntity, "invalid_type", joinPath(path, key), "%s must be a string", key)
	}
	return s, true, nil
}

// jobFields are the fields of one job in a submit request.
var jobFields = []string{"payload", "delay", "run_at", "priority", "max_attempts"}

// parseJob turns one job object of a request into a db.NewJob.
func parseJob(v any, path, queue string, maxPayload int) (db.NewJob, error) {
	job := db.NewJob{Queue: queue}
	m, err := object(v, path, jobFields...)
	if err != nil {
		return job, err
	}
	payload, ok := m["payload"]
	if !ok {
		return job, problem(http.StatusUnprocessableEntity, "missing_field", joinPath(path, "payload"), "payload is required (any JSON value)")
	}
	if job.Payload, err = json.Marshal(payload); err != nil {
		return job, problem(http.StatusUnprocessableEntity, "invalid_type", joinPath(path, "payload"), "payload cannot be encoded: %v", err)
	}
	if len(job.Payload) > maxPayload {
		return job, problem(http.StatusRequestEntityTooLarge, "payload_too_large", joinPath(path, "payload"),
			"payload is larger than %d bytes", maxPayload)
	}
	delay, hasDelay, err := stringField(m, path, "delay")
	if err != nil {
		return job, err
	}
	runAt, hasRunAt, err := stringField(m, path, "run_at")
	if err != nil {
		return job, err
	}
	switch {
	case hasDelay && hasRunAt:
		return job, problem(http.StatusUnprocessableEntity, "conflicting_fields", joinPath(path, "run_at"), "give delay or run_at, not both")
	case hasDelay:
		d, err := time.ParseDuration(delay)
		if err != nil {
			return job, problem(http.StatusUnprocessableEntity, "invalid_duration", joinPath(path, "delay"),
				"delay %q is not a duration such as \"90s\" or \"5m\"", delay)
		}
		if d < 0 || d > db.MaxDelay {
			return job, problem(http.StatusUnprocessableEntity, "out_of_range", joinPath(path, "delay"),
				"delay must be between 0s and %s", db.MaxDelay)
		}
		job.Delay = d
	case hasRunAt:
		t, err := time.Parse(time.RFC3339Nano, runAt)
		if err != nil {
			return job, problem(http.StatusUnprocessableEntity, "invalid_timestamp", joinPath(path, "run_at"),
				"run_at %q is not an RFC 3339 time with a UTC offset, such as \"2030-01-02T15:04:05Z\"", runAt)
		}
		if t.Year() < 2000 || t.Year() > 9999 {
			return job, problem(http.StatusUnprocessableEntity, "out_of_range", joinPath(path, "run_at"), "run_at must be between the years 2000 and 9999")
		}
		job.RunAt = t
	}
	prio, _, err := intField(m, path, "priority", 0, db.MaxPriority)
	if err != nil {
		return job, err
	}
	attempts, _, err := intField(m, path, "max_attempts", 1, db.MaxMaxAttempts)
	if err != nil {
		return job, err
	}
	job.Priority, job.MaxAttempts = int16(prio), int32(attempts)
	return job, nil
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
