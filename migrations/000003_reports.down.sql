DROP VIEW baton.pipeline_lineage, baton.stuck_jobs, baton.failures, baton.throughput_hourly, baton.stage_latency;
DROP FUNCTION baton.report_since(interval);

CREATE OR REPLACE VIEW baton.queue_summary AS
SELECT q.name AS queue,
       count(j.id) FILTER (WHERE j.state = 'scheduled') AS scheduled,
       count(j.id) FILTER (WHERE j.state = 'available') AS available,
       count(j.id) FILTER (WHERE j.state = 'running')   AS running,
       count(j.id) FILTER (WHERE j.state = 'retrying')  AS retrying,
       count(j.id) FILTER (WHERE j.state = 'succeeded') AS succeeded,
       count(j.id) FILTER (WHERE j.state = 'dead')      AS dead,
       count(j.id) FILTER (WHERE j.state = 'canceled')  AS canceled,
       coalesce(now() - min(j.run_at) FILTER (
           WHERE j.state IN ('scheduled', 'available', 'retrying') AND j.run_at <= now()
       ), interval '0') AS oldest_available_age
FROM baton.queues q
LEFT JOIN baton.jobs j ON j.queue = q.name
GROUP BY q.name;

DROP INDEX baton.job_events_at_brin, baton.jobs_created_at_brin, baton.jobs_finished_at_brin;
DROP TRIGGER jobs_count_truncate ON baton.jobs;
DROP TRIGGER jobs_count_delete ON baton.jobs;
DROP TRIGGER jobs_count_update ON baton.jobs;
DROP TRIGGER jobs_count_insert ON baton.jobs;
DROP FUNCTION baton.count_truncated_jobs(), baton.count_deleted_jobs(), baton.count_updated_jobs(),
    baton.count_inserted_jobs();
DROP TABLE baton.job_count_deltas, baton.job_counts;
