-- Maintenance takes turns across replicas (issue 26).
--
-- Every replica (baton worker, baton serve) runs a maintenance pass each
-- interval: the reaper, promotion, expired keys, folding the counters. Each
-- of its statements is safe on every replica at once, but run by every
-- replica the reaper's walk over the running jobs happened N times an
-- interval, and it grew with the jobs N replicas hold: at four replicas
-- it read as many pages as all the completions. A replica now runs the pass
-- only when it takes the step's turn: the row's ran_at is older than (most
-- of) an interval. No lock is held between passes, so a replica that dies
-- leaves nothing to clean up, and the next replica takes the turn.
--
-- Only adds a table: compatible_since stays (a binary before it runs its
-- pass every interval, as it did, beside replicas that take turns).
CREATE TABLE baton.maintenance_turns (
    step   text PRIMARY KEY,
    ran_at timestamptz NOT NULL
);
INSERT INTO baton.maintenance_turns (step, ran_at) VALUES ('pass', '-infinity');
