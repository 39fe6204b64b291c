-- name: ReportStageLatency :many
SELECT * FROM baton.stage_latency WHERE (@queue::text = '' OR queue = @queue) ORDER BY queue;

-- name: ReportThroughputHourly :many
SELECT * FROM baton.throughput_hourly WHERE (@queue::text = '' OR queue = @queue) ORDER BY hour, queue;

-- name: ReportFailures :many
SELECT * FROM baton.failures WHERE (@queue::text = '' OR queue = @queue) ORDER BY last_seen DESC, queue LIMIT 100;

-- name: ReportStuckJobs :many
SELECT * FROM baton.stuck_jobs WHERE (@queue::text = '' OR queue = @queue) ORDER BY overdue_seconds DESC, id LIMIT 100;

-- name: ReportPipelineLineage :many
SELECT * FROM baton.pipeline_lineage WHERE (@queue::text = '' OR root_id IN (
    SELECT l.root_id FROM baton.pipeline_lineage l WHERE l.queue = @queue))
ORDER BY root_id DESC, depth, job_id LIMIT 1000;

-- name: ReportStageErrors :many
SELECT * FROM baton.stage_errors WHERE (@queue::text = '' OR queue = @queue) ORDER BY error_rate DESC, queue;

-- name: ReportAttemptsPerJob :many
SELECT * FROM baton.attempts_per_job WHERE (@queue::text = '' OR queue = @queue) ORDER BY queue, attempts;

-- name: ReportSlowestJourneys :many
-- --queue picks the journeys that ended in that queue.
SELECT * FROM baton.slowest_journeys WHERE (@queue::text = '' OR queue = @queue) ORDER BY seconds DESC, job_id;

-- name: ReportBacklogByPriority :many
SELECT * FROM baton.backlog_by_priority WHERE (@queue::text = '' OR queue = @queue) ORDER BY queue, priority;

-- name: ReportGroups :many
-- At most max_groups, those with the most due jobs first: the dashboard
-- shows a queue's busiest, baton report all of them.
SELECT * FROM baton.groups WHERE (@queue::text = '' OR queue = @queue)
ORDER BY queue, due_jobs DESC, running_jobs DESC, "group"
LIMIT @max_groups::integer;

-- name: GroupMetrics :many
-- Every group's jobs, busiest first: /metrics names the busiest.
SELECT queue, "group", (due_jobs + later_jobs)::bigint AS waiting_jobs, running_jobs FROM baton.groups
ORDER BY due_jobs + later_jobs + running_jobs DESC, queue, "group";

-- name: ReportWorkerActivity :many
-- --queue does not apply: a worker's figures span its queues.
SELECT * FROM baton.worker_activity ORDER BY last_ended_at DESC, worker;

-- name: ReportSince :exec
-- Sets the window of the reporting views for the rest of the transaction.
SELECT set_config('baton.since', @since::text, true);

-- name: ReportPeriodic :many
SELECT * FROM baton.periodic WHERE (@queue::text = '' OR queue = @queue) ORDER BY name;

-- name: ReportTag :exec
-- Sets the tag the reporting views count (only jobs with it) for the rest
-- of the transaction.
SELECT set_config('baton.tag', @tag::text, true);
