-- The shop's own tables, beside Baton's schema in the same database: a
-- handler's writes here can commit with its job's completion.
CREATE SCHEMA IF NOT EXISTS shop;

CREATE TABLE IF NOT EXISTS shop.users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per charge. No unique constraint on job_id on purpose: exactly
-- once comes from worker.CompleteTx, and the ledger test counts the rows a
-- handler that writes outside the completion's transaction leaves twice.
CREATE TABLE IF NOT EXISTS shop.ledger (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id   bigint NOT NULL,
    order_id bigint NOT NULL,
    cents    bigint NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
