import t from "tap";
import { spawnWorker } from "../support/charging.js";
import { hasServers, startEngine } from "../support/engine.js";
import { activateLine, orderReadyAccount } from "../support/fixtures.js";

/**
 * Two and three `npm run worker` processes sharing the shards through leases: every accepted CDR rated exactly
 * once, each account's events rated in the order they were accepted, ledger = Redis for every account.
 */

for (const workers of [2, 3]) {
  t.test(
    `${workers} worker processes rate every record exactly once, in order per account`,
    { skip: !hasServers && "needs PostgreSQL and Redis" },
    async (t) => {
      const engine = await startEngine(t, { driver: "postgres" });
      await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
      const lines: Array<{ accountId: string; msisdn: string }> = [];
      for (let i = 0; i < 4; i++) {
        const { accountId } = await orderReadyAccount(engine, {
          numbers: [`+49151000005${i}0`, `+49151000005${i}9`],
          sims: i === 0 ? 10 : 0,
        });
        lines.push({ accountId, msisdn: (await activateLine(engine, accountId)).msisdn });
      }
      const running = Array.from({ length: workers }, () => spawnWorker(engine));
      t.teardown(() => {
        for (const worker of running) if (worker.child.exitCode === null) worker.child.kill("SIGKILL");
      });
      let sequence = 0;
      for (let batch = 0; batch < 10; batch++) {
        const records = Array.from({ length: 20 }, (_, index) => {
          sequence += 1;
          const line = lines[index % lines.length] as { msisdn: string };
          return {
            recordType: "voice",
            cdrId: `mw-${sequence}`,
            source: "msc-1",
            servedMSISDN: line.msisdn,
            calledNumber: "+33123456789",
            recordOpeningTime: "2026-03-15T10:05:00Z",
            duration: 30 + (sequence % 7) * 30,
          };
        });
        const posted = await engine.request("POST", "/api/v1/cdrs", { key: engine.keys.network, body: records });
        t.equal(posted.json().accepted, 20);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const deadline = Date.now() + 60_000;
      while ((await engine.count("rated_usage")) < 200 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      t.equal(await engine.count("rated_usage"), 200, "every accepted record rated once");
      const order = await engine.sql<{ account: string; ordered: boolean }>(
        `select billing_account_id::text as account,
         bool_and(rated_at >= coalesce(previous, rated_at)) as ordered
       from (select billing_account_id, rated_at,
               lag(rated_at) over (partition by billing_account_id order by usage_id) as previous
             from rated_usage) x
       group by billing_account_id`,
      );
      t.equal(order.length, 4);
      t.ok(
        order.every((row) => row.ordered),
        "each account's events rated in acceptance order",
      );
      const report = await engine.app.services.charging.reconcile.run("check");
      t.same(report.mismatched, [], "ledger = Redis for every account");
      for (const worker of running) worker.child.kill("SIGTERM");
      t.same(
        await Promise.all(running.map((worker) => worker.exited)),
        running.map(() => 0),
        "all stop cleanly",
      );
    },
  );
}
