-- Back to a stored row per change: store the implied ones (they sort after
-- the rows stored before them, but nothing is lost), then drop the view.
INSERT INTO baton.job_events (job_id, at, from_state, to_state, attempt, lease_token, worker)
SELECT h.job_id, h.at, h.from_state, h.to_state, h.attempt, h.lease_token, h.worker
FROM baton.job_history h
WHERE NOT EXISTS (SELECT 1 FROM baton.job_events e
                  WHERE e.job_id = h.job_id AND e.to_state = h.to_state AND e.lease_token = h.lease_token
                    AND e.at = h.at)
ORDER BY h.job_id, h.seq;
DROP VIEW baton.job_history;
ALTER TABLE baton.job_events DROP COLUMN claimed_at;
