package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// rows counts everything a request could change.
func rows(t *testing.T, pool *pgxpool.Pool) [4]int {
	t.Helper()
	return [4]int{
		count(t, pool, "SELECT count(*) FROM baton.jobs"),
		count(t, pool, "SELECT count(*) FROM baton.job_events"),
		count(t, pool, "SELECT count(*) FROM baton.queues"),
		count(t, pool, "SELECT count(*) FROM baton.idempotency_keys") + count(t, pool, "SELECT count(*) FROM baton.queue_groups"),
	}
}

func TestBadInputIs4xxProblemAndChangesNothing(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	// Existing state some cases need: an available job and a used key.
	r := c.do("POST", "/v1/queues/a/jobs", `{"payload": {"v": 1}}`, "Idempotency-Key", "used")
	require.Equal(t, 201, r.status)
	availableID := int64(r.json(t)["id"].(float64))

	deep := `{"payload": ` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`
	bigPayload := `{"payload": "` + strings.Repeat("x", 300<<10) + `"}`
	tooBig := `{"payload": "` + strings.Repeat("x", 1<<20) + `"}`
	var many []string
	for range 10001 {
		many = append(many, `{"payload":1}`)
	}
	tooMany := `{"jobs": [` + strings.Join(many, ",") + `]}`
	long := strings.Repeat("k", 300)
	submit := "/v1/queues/a/jobs"
	batch := "/v1/queues/a/jobs/batch"

	tests := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		code, field              string
	}{
		{"TruncatedJSON", "POST", submit, `{"payload":`, nil, 400, "malformed_json", ""},
		{"EmptyBody", "POST", submit, ``, []string{"Content-Type", "application/json"}, 400, "empty_body", ""},
		{"WhitespaceBody", "POST", submit, "  \n", nil, 400, "empty_body", ""},
		{"TextPlain", "POST", submit, `{"payload":1}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type", "Content-Type"},
		{"NoContentType", "POST", submit, `{"payload":1}`, []string{"Content-Type", ""}, 415, "unsupported_media_type", "Content-Type"},
		{"BodyTooLarge", "POST", submit, tooBig, nil, 413, "payload_too_large", ""},
		{"TrailingObject", "POST", submit, `{"payload":1}{}`, nil, 400, "malformed_json", ""},
		{"TrailingGarbage", "POST", submit, `{"payload":1} x`, nil, 400, "malformed_json", ""},
		{"TopLevelArray", "POST", submit, `[]`, nil, 422, "invalid_type", ""},
		{"TopLevelString", "POST", submit, `"s"`, nil, 422, "invalid_type", ""},
		{"TopLevelNull", "POST", submit, `null`, nil, 422, "invalid_type", ""},
		{"UnknownField", "POST", submit, `{"payload":1,"prio":1}`, nil, 422, "unknown_field", "prio"},
		{"CaseVariantField", "POST", submit, `{"Payload":1}`, nil, 422, "unknown_field", "Payload"},
		{"DuplicateKey", "POST", submit, `{"payload":1,"payload":2}`, nil, 400, "duplicate_key", "payload"},
		{"DuplicateNestedKey", "POST", submit, `{"payload":{"a":1,"a":2}}`, nil, 400, "duplicate_key", "payload.a"},
		{"MissingPayload", "POST", submit, `{}`, nil, 422, "missing_field", "payload"},
		{"InvalidQueueName", "POST", "/v1/queues/Bad/jobs", `{"payload":1}`, nil, 422, "invalid_queue_name", "queue"},
		{"InjectionQueueName", "POST", "/v1/queues/a'%3BDROP%20TABLE%20baton.jobs%3B--/jobs", `{"payload":1}`, nil, 422, "invalid_queue_name", "queue"},
		{"LongQueueName", "POST", "/v1/queues/" + strings.Repeat("q", 64) + "/jobs", `{"payload":1}`, nil, 422, "invalid_queue_name", "queue"},
		{"NegativeDelay", "POST", submit, `{"payload":1,"delay":"-5s"}`, nil, 422, "out_of_range", "delay"},
		{"HugeDelay", "POST", submit, `{"payload":1,"delay":"99999h"}`, nil, 422, "out_of_range", "delay"},
		{"BadDelay", "POST", submit, `{"payload":1,"delay":"soon"}`, nil, 422, "invalid_duration", "delay"},
		{"NumericDelay", "POST", submit, `{"payload":1,"delay":10}`, nil, 422, "invalid_type", "delay"},
		{"PriorityOverflow", "POST", submit, `{"payload":1,"priority":9223372036854775808}`, nil, 422, "out_of_range", "priority"},
		{"NegativePriority", "POST", submit, `{"payload":1,"priority":-1}`, nil, 422, "out_of_range", "priority"},
		{"PriorityTooHigh", "POST", submit, `{"payload":1,"priority":101}`, nil, 422, "out_of_range", "priority"},
		{"FractionalPriority", "POST", submit, `{"payload":1,"priority":1.5}`, nil, 422, "invalid_type", "priority"},
		{"HugeExponentPriority", "POST", submit, `{"payload":1,"priority":1e400}`, nil, 422, "invalid_type", "priority"},
		{"StringPriority", "POST", submit, `{"payload":1,"priority":"1"}`, nil, 422, "invalid_type", "priority"},
		{"ZeroMaxAttempts", "POST", submit, `{"payload":1,"max_attempts":0}`, nil, 422, "out_of_range", "max_attempts"},
		{"HugeMaxAttempts", "POST", submit, `{"payload":1,"max_attempts":1000000}`, nil, 422, "out_of_range", "max_attempts"},
		{"BadRunAt", "POST", submit, `{"payload":1,"run_at":"2025-13-40"}`, nil, 422, "invalid_timestamp", "run_at"},
		{"RunAtWithoutOffset", "POST", submit, `{"payload":1,"run_at":"2030-01-02T15:04:05"}`, nil, 422, "invalid_timestamp", "run_at"},
		{"RunAtFarPast", "POST", submit, `{"payload":1,"run_at":"0001-01-01T00:00:00Z"}`, nil, 422, "out_of_range", "run_at"},
		{"RunAtYear10000InUTC", "POST", submit, `{"payload":1,"run_at":"9999-12-31T23:59:59-01:00"}`, nil, 422, "out_of_range", "run_at"},
		{"RunAtOffset24h", "POST", submit, `{"payload":1,"run_at":"2030-01-02T15:04:05+24:00"}`, nil, 422, "invalid_timestamp", "run_at"},
		{"RunAtOffsetMinute60", "POST", submit, `{"payload":1,"run_at":"2030-01-02T15:04:05-23:60"}`, nil, 422, "invalid_timestamp", "run_at"},
		{"RunAtSpaceForT", "POST", submit, `{"payload":1,"run_at":"2030-01-02 15:04:05Z"}`, nil, 422, "invalid_timestamp", "run_at"},
		{"RunAtFebruary30", "POST", submit, `{"payload":1,"run_at":"2030-02-30T15:04:05Z"}`, nil, 422, "invalid_timestamp", "run_at"},
		{"DelayAndRunAt", "POST", submit, `{"payload":1,"delay":"1s","run_at":"2030-01-02T15:04:05Z"}`, nil, 422, "conflicting_fields", "run_at"},
		{"TooDeep", "POST", submit, deep, nil, 422, "too_deep", ""},
		{"PayloadTooLarge", "POST", submit, bigPayload, nil, 413, "payload_too_large", "payload"},
		{"InvalidUTF8", "POST", submit, "{\"payload\":\"\xff\xfe\"}", nil, 400, "invalid_utf8", ""},
		{"LoneSurrogate", "POST", submit, `{"payload":"\ud800"}`, nil, 422, "invalid_unicode", ""},
		{"LoneLowSurrogate", "POST", submit, `{"payload":"\udc00x"}`, nil, 422, "invalid_unicode", ""},
		{"NulInPayload", "POST", submit, `{"payload":{"a":"x\u0000y"}}`, nil, 422, "unsupported_null_char", "payload.a"},
		{"NulInKey", "POST", submit, `{"payload":{"a\u0000":1}}`, nil, 422, "unsupported_null_char", "payload.a\x00"},
		{"NumberBeyondNumeric", "POST", submit, `{"payload":[0,1e131072]}`, nil, 422, "out_of_range", "payload[1]"},
		{"NumberBelowNumericScale", "POST", submit, `{"payload":{"x":1e-16384}}`, nil, 422, "out_of_range", "payload.x"},
		{"IdempotencyKeyTooLong", "POST", submit, `{"payload":1}`, []string{"Idempotency-Key", long}, 400, "invalid_idempotency_key", "Idempotency-Key"},
		{"IdempotencyKeyControlChar", "POST", submit, `{"payload":1}`, []string{"Idempotency-Key", "a\tb"}, 400, "invalid_idempotency_key", "Idempotency-Key"},
		{"IdempotencyKeyTwice", "POST", submit, `{"payload":1}`, []string{"Idempotency-Key", "x", "Idempotency-Key", "y"}, 400, "invalid_idempotency_key", "Idempotency-Key"},
		{"IdempotencyKeyReused", "POST", submit, `{"payload":{"v":2}}`, []string{"Idempotency-Key", "used"}, 422, "idempotency_key_reused", "Idempotency-Key"},
		{"NoToken", "GET", "/v1/queues", "", []string{"Authorization", ""}, 401, "unauthenticated", "Authorization"},
		{"WrongToken", "POST", submit, `{"payload":1}`, []string{"Authorization", "Bearer nope"}, 401, "unauthenticated", "Authorization"},
		{"NonNumericID", "GET", "/v1/jobs/abc", "", nil, 400, "invalid_id", "id"},
		{"OverflowID", "GET", "/v1/jobs/99999999999999999999", "", nil, 400, "invalid_id", "id"},
		{"ZeroID", "GET", "/v1/jobs/0", "", nil, 400, "invalid_id", "id"},
		{"PlusSignID", "GET", "/v1/jobs/+5", "", nil, 400, "invalid_id", "id"},
		{"LeadingZeroID", "GET", "/v1/jobs/01", "", nil, 400, "invalid_id", "id"},
		{"CancelLeadingZeroID", "POST", "/v1/jobs/007/cancel", "", nil, 400, "invalid_id", "id"},
		{"UnknownJob", "GET", "/v1/jobs/123456", "", nil, 404, "not_found", ""},
		{"CancelUnknownJob", "POST", "/v1/jobs/123456/cancel", "", nil, 404, "not_found", ""},
		{"RetryAvailableJob", "POST", fmt.Sprintf("/v1/jobs/%d/retry", availableID), "", nil, 409, "conflict", ""},
		{"WrongMethod", "PUT", "/v1/jobs", "", nil, 405, "method_not_allowed", ""},
		{"UnknownRoute", "GET", "/v1/nope", "", nil, 404, "not_found", ""},
		{"LimitTooLarge", "GET", "/v1/jobs?limit=1000000", "", nil, 422, "out_of_range", "limit"},
		{"LimitNotANumber", "GET", "/v1/jobs?limit=ten", "", nil, 422, "out_of_range", "limit"},
		{"UnknownParameter", "GET", "/v1/jobs?order_by=id%3BDROP", "", nil, 422, "unknown_parameter", "order_by"},
		{"BadStateFilter", "GET", "/v1/jobs?state=bogus", "", nil, 422, "invalid_parameter", "state"},
		{"BadQueueFilter", "GET", "/v1/jobs?queue=%25", "", nil, 422, "invalid_queue_name", "queue"},
		{"RepeatedParameter", "GET", "/v1/jobs?limit=1&limit=2", "", nil, 422, "invalid_parameter", "limit"},
		{"BadCursor", "GET", "/v1/jobs?cursor=garbage", "", nil, 400, "invalid_cursor", "cursor"},
		{"BatchMissingJobs", "POST", batch, `{}`, nil, 422, "missing_field", "jobs"},
		{"BatchJobsNotAList", "POST", batch, `{"jobs":{}}`, nil, 422, "invalid_type", "jobs"},
		{"BatchEmpty", "POST", batch, `{"jobs":[]}`, nil, 422, "out_of_range", "jobs"},
		{"BatchTooMany", "POST", batch, tooMany, nil, 422, "out_of_range", "jobs"},
		{"BatchOneBadJob", "POST", batch, `{"jobs":[{"payload":1},{"payload":2},{"payload":3,"priority":500}]}`, nil, 422, "out_of_range", "jobs[2].priority"},
		{"BatchNumberOverflowNamesItsField", "POST", batch, `{"jobs":[{"payload":1},{"payload":{"n":[1e1000000]}}]}`, nil, 422, "out_of_range", "jobs[1].payload.n[0]"},
		{"BatchRunAtYear10000", "POST", batch, `{"jobs":[{"payload":1},{"payload":2,"run_at":"9999-12-31T23:30:00-00:45"}]}`, nil, 422, "out_of_range", "jobs[1].run_at"},
		{"BatchPayloadTooLarge", "POST", batch, `{"jobs":[{"payload":1},{"payload":"` + strings.Repeat("x", 300<<10) + `"}]}`, nil, 413, "payload_too_large", "jobs[1].payload"},
		{"BatchJobNotAnObject", "POST", batch, `{"jobs":[{"payload":1},7]}`, nil, 422, "invalid_type", "jobs[1]"},
		{"BatchUnknownField", "POST", batch, `{"jobs":[{"payload":1}],"queue":"b"}`, nil, 422, "unknown_field", "queue"},
		{"CrossSiteCancel", "POST", fmt.Sprintf("/v1/jobs/%d/cancel", availableID), "", []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross_origin", ""},
		{"SameSiteOtherPortPause", "POST", "/v1/queues/a/pause", "", []string{"Sec-Fetch-Site", "same-site"}, 403, "cross_origin", ""},
		{"ForeignOriginSubmit", "POST", submit, `{"payload":1}`, []string{"Origin", "http://evil.example"}, 403, "cross_origin", ""},
		{"ForeignOriginBatch", "POST", batch, `{"jobs":[{"payload":1}]}`, []string{"Origin", "null"}, 403, "cross_origin", ""},
		{"PatchRetentionNotADuration", "PATCH", "/v1/queues/a", `{"retain_succeeded": "soon"}`, nil, 422, "invalid_duration", "retain_succeeded"},
		{"PatchRetentionZero", "PATCH", "/v1/queues/a", `{"retain_dead": "0s"}`, nil, 422, "invalid_duration", "retain_dead"},
		{"PatchRetentionNegative", "PATCH", "/v1/queues/a", `{"retain_dead": "-1h"}`, nil, 422, "invalid_duration", "retain_dead"},
		{"PatchRetentionBelowASecond", "PATCH", "/v1/queues/a", `{"retain_succeeded": "999us"}`, nil, 422, "invalid_duration", "retain_succeeded"},
		{"PatchRetentionNanosecond", "PATCH", "/v1/queues/a", `{"retain_canceled": "1ns"}`, nil, 422, "invalid_duration", "retain_canceled"},
		{"PatchRetentionNumber", "PATCH", "/v1/queues/a", `{"retain_canceled": 3600}`, nil, 422, "invalid_type", "retain_canceled"},
		{"PatchUnknownSetting", "PATCH", "/v1/queues/a", `{"keep_for": "1h"}`, nil, 422, "unknown_field", "keep_for"},
		{"GroupEmpty", "POST", submit, `{"payload":1,"group":""}`, nil, 422, "out_of_range", "group"},
		{"GroupTooLong", "POST", submit, `{"payload":1,"group":"` + strings.Repeat("g", 129) + `"}`, nil, 422, "out_of_range", "group"},
		{"GroupControlCharacter", "POST", submit, `{"payload":1,"group":"a\u0007b"}`, nil, 422, "out_of_range", "group"},
		{"GroupNumber", "POST", submit, `{"payload":1,"group":42}`, nil, 422, "invalid_type", "group"},
		{"BatchGroupTooLong", "POST", batch, `{"jobs":[{"payload":1},{"payload":2,"group":"` + strings.Repeat("g", 129) + `"}]}`, nil, 422, "out_of_range", "jobs[1].group"},
		{"PatchLimitZero", "PATCH", "/v1/queues/a", `{"global_concurrency": 0}`, nil, 422, "out_of_range", "global_concurrency"},
		{"PatchLimitNegative", "PATCH", "/v1/queues/a", `{"global_concurrency": -5}`, nil, 422, "out_of_range", "global_concurrency"},
		{"PatchLimitHuge", "PATCH", "/v1/queues/a", `{"global_concurrency": 99999999999999999999}`, nil, 422, "out_of_range", "global_concurrency"},
		{"PatchLimitFraction", "PATCH", "/v1/queues/a", `{"global_concurrency": 2.5}`, nil, 422, "invalid_type", "global_concurrency"},
		{"PatchLimitString", "PATCH", "/v1/queues/a", `{"global_concurrency": "5"}`, nil, 422, "invalid_type", "global_concurrency"},
		{"PatchLimitTwice", "PATCH", "/v1/queues/a", `{"global_concurrency": 1, "global_concurrency": 2}`, nil, 400, "duplicate_key", "global_concurrency"},
		{"PatchBacklogZero", "PATCH", "/v1/queues/a", `{"max_backlog": 0}`, nil, 422, "out_of_range", "max_backlog"},
		{"PatchBacklogNegative", "PATCH", "/v1/queues/a", `{"max_backlog": -1}`, nil, 422, "out_of_range", "max_backlog"},
		{"PatchBacklogTooLarge", "PATCH", "/v1/queues/a", `{"max_backlog": 2147483648}`, nil, 422, "out_of_range", "max_backlog"},
		{"PatchBacklogText", "PATCH", "/v1/queues/a", `{"max_backlog": "100"}`, nil, 422, "invalid_type", "max_backlog"},
		{"PatchRateFortnight", "PATCH", "/v1/queues/a", `{"rate_limit": "20/fortnight"}`, nil, 422, "invalid_rate", "rate_limit"},
		{"PatchRateZero", "PATCH", "/v1/queues/a", `{"rate_limit": "0/s"}`, nil, 422, "invalid_rate", "rate_limit"},
		{"PatchRateNegative", "PATCH", "/v1/queues/a", `{"rate_limit": "-20/s"}`, nil, 422, "invalid_rate", "rate_limit"},
		{"PatchRateNumber", "PATCH", "/v1/queues/a", `{"rate_limit": 20}`, nil, 422, "invalid_type", "rate_limit"},
		{"PatchRateTwice", "PATCH", "/v1/queues/a", `{"rate_limit": "1/s", "rate_limit": "2/s"}`, nil, 400, "duplicate_key", "rate_limit"},
		{"PatchWeightNegative", "PATCH", "/v1/queues/a/groups/acme", `{"weight": -3}`, nil, 422, "out_of_range", "weight"},
		{"PatchWeightZero", "PATCH", "/v1/queues/a/groups/acme", `{"weight": 0}`, nil, 422, "out_of_range", "weight"},
		{"PatchWeightHuge", "PATCH", "/v1/queues/a/groups/acme", `{"weight": 1001}`, nil, 422, "out_of_range", "weight"},
		{"PatchWeightText", "PATCH", "/v1/queues/a/groups/acme", `{"weight": "3"}`, nil, 422, "invalid_type", "weight"},
		{"PatchWeightMissing", "PATCH", "/v1/queues/a/groups/acme", `{}`, nil, 422, "missing_field", "weight"},
		{"PatchWeightUnknownField", "PATCH", "/v1/queues/a/groups/acme", `{"weight": 3, "share": 1}`, nil, 422, "unknown_field", "share"},
		{"PatchWeightNotAnObject", "PATCH", "/v1/queues/a/groups/acme", `[3]`, nil, 422, "invalid_type", ""},
		{"PatchWeightGroupTooLong", "PATCH", "/v1/queues/a/groups/" + strings.Repeat("g", 129), `{"weight": 3}`, nil, 422, "invalid_group", "group"},
		{"PatchWeightGroupControl", "PATCH", "/v1/queues/a/groups/a%07b", `{"weight": 3}`, nil, 422, "invalid_group", "group"},
		{"PatchWeightBadQueue", "PATCH", "/v1/queues/A!/groups/acme", `{"weight": 3}`, nil, 422, "invalid_queue_name", "queue"},
		{"PatchTwice", "PATCH", "/v1/queues/a", `{"retain_dead": "1h", "retain_dead": "2h"}`, nil, 400, "duplicate_key", "retain_dead"},
		{"PatchNotAnObject", "PATCH", "/v1/queues/a", `["retain_dead"]`, nil, 422, "invalid_type", ""},
		{"PatchBadQueue", "PATCH", "/v1/queues/NOPE", `{}`, nil, 422, "invalid_queue_name", "queue"},
		{"PatchCrossOrigin", "PATCH", "/v1/queues/a", `{"retain_dead": "1h"}`, []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross_origin", ""},
		{"PauseBadQueue", "POST", "/v1/queues/NOPE/pause", "", nil, 422, "invalid_queue_name", "queue"},
		{"UniqueKeyEmpty", "POST", submit, `{"payload":1,"unique_key":""}`, nil, 422, "out_of_range", "unique_key"},
		{"UniqueKeyTooLong", "POST", submit, `{"payload":1,"unique_key":"` + strings.Repeat("k", 256) + `"}`, nil, 422, "out_of_range", "unique_key"},
		{"UniqueKeyControlChar", "POST", submit, `{"payload":1,"unique_key":"a\u001fb"}`, nil, 422, "out_of_range", "unique_key"},
		{"UniqueForWithoutKey", "POST", submit, `{"payload":1,"unique_for":"1h"}`, nil, 422, "missing_field", "unique_key"},
		{"UniqueForTooShort", "POST", submit, `{"payload":1,"unique_key":"k","unique_for":"10ms"}`, nil, 422, "invalid_duration", "unique_for"},
		{"UniqueStatesBogus", "POST", submit, `{"payload":1,"unique_key":"k","unique_states":["done"]}`, nil, 422, "invalid_type", "unique_states"},
		{"UniqueStatesEmpty", "POST", submit, `{"payload":1,"unique_key":"k","unique_states":[]}`, nil, 422, "invalid_type", "unique_states"},
		{"UniqueStatesTwice", "POST", submit, `{"payload":1,"unique_key":"k","unique_states":["available","available"]}`, nil, 422, "invalid_type", "unique_states"},
		{"RetryQueueBadState", "POST", "/v1/queues/a/retry", `{"state": "succeeded"}`, nil, 422, "invalid_parameter", "state"},
		{"RetryQueueBadSince", "POST", "/v1/queues/a/retry", `{"since": "yesterday"}`, nil, 422, "invalid_duration", "since"},
		{"RetryQueueNegativeSince", "POST", "/v1/queues/a/retry", `{"since": "-1h"}`, nil, 422, "invalid_duration", "since"},
		{"RetryQueueLongErrorLike", "POST", "/v1/queues/a/retry", `{"error_like": "` + strings.Repeat("e", 1025) + `"}`, nil, 422, "out_of_range", "error_like"},
		{"RetryQueueDryRunString", "POST", "/v1/queues/a/retry", `{"dry_run": "yes"}`, nil, 422, "invalid_type", "dry_run"},
		{"RetryQueueUnknownField", "POST", "/v1/queues/a/retry", `{"limit": 5}`, nil, 422, "unknown_field", "limit"},
		{"RetryQueueTwice", "POST", "/v1/queues/a/retry", `{"state": "dead", "state": "dead"}`, nil, 400, "duplicate_key", "state"},
		{"RetryQueueNotAnObject", "POST", "/v1/queues/a/retry", `["dead"]`, nil, 422, "invalid_type", ""},
		{"RetryQueueBadQueue", "POST", "/v1/queues/NOPE/retry", `{}`, nil, 422, "invalid_queue_name", "queue"},
		{"RetryQueueCrossOrigin", "POST", "/v1/queues/a/retry", `{}`, []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross_origin", ""},
		{"TimeoutZero", "POST", submit, `{"payload":1,"timeout":"0s"}`, nil, 422, "out_of_range", "timeout"},
		{"TimeoutNegative", "POST", submit, `{"payload":1,"timeout":"-5s"}`, nil, 422, "out_of_range", "timeout"},
		{"TimeoutOverADay", "POST", submit, `{"payload":1,"timeout":"24h0m1s"}`, nil, 422, "out_of_range", "timeout"},
		{"TimeoutNotADuration", "POST", submit, `{"payload":1,"timeout":"soon"}`, nil, 422, "invalid_duration", "timeout"},
		{"TimeoutNumber", "POST", submit, `{"payload":1,"timeout":30}`, nil, 422, "invalid_type", "timeout"},
		{"LeaseZero", "POST", submit, `{"payload":1,"lease":"0s"}`, nil, 422, "out_of_range", "lease"},
		{"LeaseOverADay", "POST", submit, `{"payload":1,"lease":"25h"}`, nil, 422, "out_of_range", "lease"},
		{"LeaseBelowTheFloor", "POST", submit, `{"payload":1,"lease":"1ms"}`, nil, 422, "out_of_range", "lease"},
		{"BatchLeaseNegative", "POST", batch, `{"jobs":[{"payload":1},{"payload":1,"lease":"-1m"}]}`, nil, 422, "out_of_range", "jobs[1].lease"},
		{"TagsNotAList", "POST", submit, `{"payload":1,"tags":"a"}`, nil, 422, "invalid_type", "tags"},
		{"TagsNumber", "POST", submit, `{"payload":1,"tags":[1]}`, nil, 422, "invalid_type", "tags"},
		{"TagsSeventeen", "POST", submit, `{"payload":1,"tags":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]}`, nil, 422, "out_of_range", "tags"},
		{"TagTooLong", "POST", submit, `{"payload":1,"tags":["` + strings.Repeat("t", 65) + `"]}`, nil, 422, "out_of_range", "tags"},
		{"TagEmpty", "POST", submit, `{"payload":1,"tags":[""]}`, nil, 422, "out_of_range", "tags"},
		{"TagControlChar", "POST", submit, `{"payload":1,"tags":["a\u0000b"]}`, nil, 422, "out_of_range", "tags"},
		{"TagTwice", "POST", submit, `{"payload":1,"tags":["a","a"]}`, nil, 422, "out_of_range", "tags"},
		{"ListTagTooLong", "GET", "/v1/jobs?tag=" + strings.Repeat("t", 65), "", nil, 422, "out_of_range", "tag"},
		{"ListTagTwice", "GET", "/v1/jobs?tag=a&tag=b", "", nil, 422, "invalid_parameter", "tag"},
		{"PauseUnknownQueue", "POST", "/v1/queues/never-seen/pause", "", nil, 404, "not_found", ""},
		{"ResumeUnknownQueue", "POST", "/v1/queues/never-seen/resume", "", nil, 404, "not_found", ""},
		{"QueuesBadCursor", "GET", "/v1/queues?cursor=bm9wZQ", "", nil, 400, "invalid_cursor", "cursor"},
		{"QueuesLimitTooLarge", "GET", "/v1/queues?limit=5000", "", nil, 422, "out_of_range", "limit"},
	}
	before := rows(t, pool)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do(tt.method, tt.path, tt.body, tt.headers...)
			require.Equal(t, tt.status, r.status, "%s", r.body)
			require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
			p := r.json(t)
			require.Equal(t, tt.code, p["code"], "%s", r.body)
			require.Equal(t, float64(tt.status), p["status"])
			require.Equal(t, http.StatusText(tt.status), p["title"])
			if tt.field != "" {
				require.Equal(t, tt.field, p["field"])
			}
			if tt.status == 405 {
				require.Equal(t, "GET, HEAD", r.header.Get("Allow"))
			}
		})
	}
	require.Equal(t, before, rows(t, pool), "bad input changed rows")
	require.Greater(t, len(tests), 35)
}

func TestRejectedRequestsNeverReachTheDatabaseAsErrors(t *testing.T) {
	t.Parallel()
	// Bad input must be caught before any SQL runs: a server whose database
	// is down still answers it with its 4xx.
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	defer pool.Close()
	c := newClient(t, pool)
	r := c.do("POST", "/v1/queues/a/jobs", `{"payload":{"a":"\u0000"}}`)
	require.Equal(t, 422, r.status)
	r = c.do("POST", "/v1/queues/a/jobs", `{"payload":1,"priority":1000}`)
	require.Equal(t, 422, r.status)
}

// jsonb keeps 1e131071 in a few bytes and writes 131,072 digits on every
// read. Before, a 913-byte submit read back as 13 MB, and a 74.7 KB payload
// of 8,300 such numbers was past PostgreSQL's 1 GB limit: every list, page
// and claim of its queue failed from then on. The cap on a payload counts
// its numbers written out in full; ordinary large numbers stay valid.
func TestNumbersThatExpandOnEveryReadAreRefusedAtSubmit(t *testing.T) {
	t.Parallel()
	c, pool := setup(t)
	numbers := func(n int, number string) string {
		return "[" + strings.Repeat(number+",", n-1) + number + "]"
	}
	small := `{"payload": ` + numbers(90, "1e131071") + `}`
	require.Less(t, len(small), 1000)
	large := `{"payload": ` + numbers(8300, "1e131071") + `}`
	require.Less(t, len(large), 80<<10)

	before := rows(t, pool)
	for _, tt := range []struct{ name, path, body, field string }{
		{"913Bytes", "/v1/queues/a/jobs", small, "payload[1]"},
		{"75KB", "/v1/queues/a/jobs", large, "payload[1]"},
		{"Batch", "/v1/queues/a/jobs/batch", `{"jobs": [{"payload": 1}, ` + small + `]}`, "jobs[1].payload[1]"},
		{"Nested", "/v1/queues/a/jobs", `{"payload": {"n": [1e-16383, 1e131071, 1e131071]}}`, "payload.n[2]"},
	} {
		r := c.do("POST", tt.path, tt.body)
		require.Equal(t, 422, r.status, "%s: %s", tt.name, r.body)
		p := r.json(t)
		require.Equal(t, "payload_expands", p["code"], tt.name)
		require.Equal(t, tt.field, p["field"], tt.name)
		require.Contains(t, p["detail"], "262144 bytes once its numbers are written out in full", tt.name)
	}
	require.Equal(t, before, rows(t, pool), "refused submits changed rows")

	// 1e400 is 401 digits: 600 of them are 240 KiB written out, within the cap.
	r := c.do("POST", "/v1/queues/a/jobs", `{"payload": `+numbers(600, "1e400")+`}`)
	require.Equal(t, 201, r.status, "%s", r.body)
	var job struct{ ID int64 }
	require.NoError(t, json.Unmarshal([]byte(r.body), &job))
	r = c.do("GET", fmt.Sprintf("/v1/jobs/%d", job.ID), "")
	require.Equal(t, 200, r.status)
	require.Greater(t, len(r.body), 600*401)
	require.Less(t, len(r.body), 256<<10)
}
