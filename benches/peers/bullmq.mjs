// BullMQ on Valkey or Redis (see common.mjs).
//
//   node bullmq.mjs --url redis://127.0.0.1:6379 [--workers 4] [--concurrency 50] [--scenario latency --rate R]
//
// Tuned as BullMQ's documentation recommends for throughput: several
// Worker instances with a high `concurrency`, bulk adds (`addBulk`, one
// MULTI per batch), and completed jobs trimmed to the last 1,000
// (`removeOnComplete`), as most deployments keep it; failed ones are kept.
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { args, run } from "./common.mjs";

const opts = args({ url: "redis://127.0.0.1:6379", workers: 4, concurrency: 50, keep: 1000 });
const url = new URL(opts.url);
// BullMQ 6 under ESM takes constructed clients; a worker's blocking
// connection is its own (maxRetriesPerRequest: null, as BullMQ requires).
// BullMQ leaves clients it was given open: they are closed at the end.
const clients = [];
const connect = () => {
  const client = new Redis({ host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null });
  clients.push(client);
  return client;
};
const connection = connect();
const name = `steady-${process.pid}`;
const queue = new Queue(name, {
  connection,
  defaultJobOptions: { removeOnComplete: { count: opts.keep }, removeOnFail: false },
});
const workers = [];

await run("bullmq", opts, {
  async submit(jobs) {
    await queue.addBulk(jobs.map((data) => ({ name: "noop", data })));
  },
  async start(onStarted, onCompleted) {
    for (let w = 0; w < opts.workers; w++) {
      const worker = new Worker(name, async (job) => onStarted(job.data), {
        connection: connect(),
        concurrency: opts.concurrency,
      });
      worker.on("completed", () => onCompleted(1));
      worker.on("error", (e) => process.stderr.write(`bullmq worker: ${e}\n`));
      workers.push(worker);
    }
    await Promise.all(workers.map((w) => w.waitUntilReady()));
  },
  async stop() {
    await Promise.all(workers.map((w) => w.close()));
    await queue.close();
    clients.forEach((c) => c.disconnect());
  },
});
