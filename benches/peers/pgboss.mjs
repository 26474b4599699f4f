// pg-boss on Postgres, steady (see common.mjs).
//
//   node pgboss.mjs --url postgres://… [--workers 4] [--batch-size 100]
//
// Tuned as pg-boss's documentation recommends for throughput: batch
// fetches (`batchSize`, completed together when the handler returns),
// several local workers (`localConcurrency`), fetching without a pause
// while batches come back full (`burstWhenBatchFull`), LISTEN/NOTIFY
// wake-ups, bulk inserts (`insert`). pg-boss keeps completed jobs (with
// their output) until its retention deletes them.
import { PgBoss } from "pg-boss";
import { args, steady } from "./common.mjs";

const opts = args({ url: "", workers: 4, batchSize: 100 });
const boss = new PgBoss({ connectionString: opts.url, useListenNotify: true, max: opts.workers + 6 });
boss.on("error", (e) => process.stderr.write(`pg-boss: ${e}\n`));
await boss.start();
const name = "steady";
await boss.createQueue(name, { notify: true });

await steady("pg-boss", opts, {
  async submit(n, payload) {
    const jobs = [];
    for (let i = 0; i < n; i++) jobs.push({ data: { p: payload } });
    await boss.insert(name, jobs);
  },
  async start(onCompleted) {
    await boss.work(
      name,
      {
        batchSize: opts.batchSize,
        localConcurrency: opts.workers,
        burstWhenBatchFull: true,
        pollingIntervalSeconds: 0.5,
      },
      async (jobs) => {
        // pg-boss completes the batch when this returns; counted here,
        // a batch per worker early at most.
        onCompleted(jobs.length);
      },
    );
  },
  async stop() {
    await boss.stop({ graceful: true, timeout: 10000 });
  },
});
