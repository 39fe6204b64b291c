package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/baton-run/baton/internal/store"
)

// httpHandler POSTs each job's payload to a webhook. A 2xx response's body is
// the result; any other status fails the attempt. The job id is sent as
// Idempotency-Key so the receiver can drop repeated deliveries.
type httpHandler struct {
	spec       HTTPSpec
	client     *http.Client
	propagator propagation.TextMapPropagator
}

// newHTTPHandler posts to spec's URL from up to slots requests at once:
// that many idle connections are kept, rather than net/http's 2 per host,
// which under load would open a connection per request.
func newHTTPHandler(spec HTTPSpec, slots int, propagator propagation.TextMapPropagator) *httpHandler {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = slots
	// No client timeout: the stage timeout bounds each request through ctx.
	return &httpHandler{spec: spec, client: &http.Client{Transport: t}, propagator: propagator}
}

func (h *httpHandler) Handle(ctx context.Context, job *Job) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.spec.URL, bytes.NewReader(job.Payload))
	if err != nil {
		return nil, Permanent(fmt.Errorf("building request: %w", err))
	}
	for k, v := range h.spec.Headers {
		req.Header.Set(k, v)
	}
	id := strconv.FormatInt(job.ID, 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", id)
	req.Header.Set("Baton-Job-Id", id)
	req.Header.Set("Baton-Queue", job.Queue)
	req.Header.Set("Baton-Attempt", strconv.Itoa(job.Attempt))
	h.propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))

	resp, err := h.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("POST %s: %w", h.spec.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		start, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		err := fmt.Errorf("POST %s: %s: %s", h.spec.URL, resp.Status, bytes.TrimSpace(start))
		switch d, ok := retryAfter(resp.Header.Get("Retry-After")); {
		case resp.StatusCode == http.StatusGone:
			return nil, Cancel(err)
		case (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && ok:
			return nil, Snooze(d)
		}
		return nil, err
	}
	if resp.ContentLength > maxOutput {
		return nil, fmt.Errorf("response body: %w", errTooLarge)
	}
	body := &capBuffer{max: maxOutput}
	if _, err := io.Copy(body, resp.Body); err != nil {
		if body.over {
			return nil, fmt.Errorf("response body: %w", errTooLarge)
		}
		return nil, fmt.Errorf("reading response of POST %s: %w", h.spec.URL, err)
	}
	return result(body.buf, "response body")
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	if v = strings.TrimSpace(v); v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
		return time.Duration(min(secs, int64(store.MaxDelay/time.Second))) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(time.Until(at), 0), true
	}
	return 0, false
}
