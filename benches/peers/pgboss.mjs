// pg-boss on Postgres (see common.mjs).
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
import { args, run } from "./common.mjs";

const opts = args({ url: "", workers: 4, batchSize: 100 });
const boss = new PgBoss({ connectionString: opts.url, useListenNotify: true, max: opts.workers + 6 });
boss.on("error", (e) => process.stderr.write(`pg-boss: ${e}\n`));
await boss.start();
const name = "steady";
await boss.createQueue(name, { notify: true });

await run("pg-boss", opts, {
  async submit(jobs) {
    await boss.insert(name, jobs.map((data) => ({ data })));
  },
  async start(onStarted, onCompleted) {
    await boss.work(
      name,
      {
        batchSize: opts.batchSize,
        localConcurrency: opts.workers,
        burstWhenBatchFull: true,
        pollingIntervalSeconds: 0.5,
      },
      async (jobs) => {
        for (const job of jobs) onStarted(job.data);
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
