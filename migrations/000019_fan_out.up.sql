-- Fan-out and join. A fan_out stage's job whose result is an array of n
-- elements hands off n jobs (parent_seq 0 .. n-1) and records here how many
-- are pending. A join stage's completion of one of them takes one from the
-- count, under this row's lock; the completion that takes it to zero makes
-- the one joined job (parent_seq -1 under jobs_handoff_once, so never two),
-- in the same transaction (queries/jobs.sql, JobJoin), and deletes the row.
-- A row that stays is a join waiting for siblings that have not succeeded
-- (dead or canceled ones wait for a re-drive). The parent's prune deletes it.
CREATE TABLE baton.fan_outs (
    parent_id bigint PRIMARY KEY,
    children integer NOT NULL,
    pending integer NOT NULL
);
COMMENT ON TABLE baton.fan_outs IS
    'A fan-out whose join is still to come: its parent job, how many jobs it handed off, how many have not yet succeeded.';
