// Drives a real Baton server through the generated client: submit, batch,
// get, list with paging, cancel, retry and a typed error. The Go test
// api/typescript_test.go runs it with BATON_URL and BATON_API_TOKEN set; it
// exits non-zero on the first assertion that fails.
import assert from "node:assert/strict";
import { batonClient, type Job } from "./index.js";

const url = process.env.BATON_URL;
assert.ok(url, "set BATON_URL");
const baton = batonClient(url, process.env.BATON_API_TOKEN);
const queue = { path: { queue: "emails" } };

const one = await baton.POST("/v1/queues/{queue}/jobs", {
  params: queue,
  body: { payload: { to: "ada@example.com" }, priority: 5 },
});
assert.equal(one.response.status, 201, JSON.stringify(one.error));
assert.ok(one.data);
const first: Job = one.data;
assert.equal(first.state, "available");
assert.equal(first.priority, 5);

const batch = await baton.POST("/v1/queues/{queue}/jobs/batch", {
  params: queue,
  body: { jobs: [{ payload: 1 }, { payload: "two" }, { payload: null, delay: "1h" }] },
});
assert.equal(batch.response.status, 201, JSON.stringify(batch.error));
assert.ok(batch.data);
assert.equal(batch.data.count, 3);

const got = await baton.GET("/v1/jobs/{id}", { params: { path: { id: first.id } } });
assert.ok(got.data, JSON.stringify(got.error));
assert.deepEqual(got.data.payload, { to: "ada@example.com" });
assert.equal(got.data.history?.[0]?.from, null);
assert.equal(got.data.history?.[0]?.to, "available");

// Two pages of two, newest first.
const listed: number[] = [];
let cursor: string | undefined;
let pages = 0;
do {
  const page = await baton.GET("/v1/jobs", { params: { query: { queue: "emails", limit: 2, cursor } } });
  assert.ok(page.data, JSON.stringify(page.error));
  listed.push(...page.data.jobs.map((j) => j.id));
  cursor = page.data.next_cursor ?? undefined;
  pages++;
} while (cursor);
assert.deepEqual(listed, [first.id, ...batch.data.ids].sort((a, b) => b - a));
assert.equal(pages, 2);

const canceled = await baton.POST("/v1/jobs/{id}/cancel", { params: { path: { id: first.id } } });
assert.equal(canceled.data?.state, "canceled", JSON.stringify(canceled.error));
const retried = await baton.POST("/v1/jobs/{id}/retry", { params: { path: { id: first.id } } });
assert.equal(retried.data?.state, "available", JSON.stringify(retried.error));

// Errors are typed problems.
const missing = await baton.GET("/v1/jobs/{id}", { params: { path: { id: 999999 } } });
assert.equal(missing.response.status, 404);
assert.equal(missing.error?.code, "not_found");
const again = await baton.POST("/v1/jobs/{id}/retry", { params: { path: { id: first.id } } });
assert.equal(again.response.status, 409);
assert.equal(again.error?.status, 409);

console.log(JSON.stringify({ job: first.id, batch: batch.data.ids, listed, pages }));
