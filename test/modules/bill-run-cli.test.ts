import t from "tap";
import { billRunCli, formatProgress, parseArguments } from "../../src/cli/bill-run.js";
import { ManualClock } from "../../src/platform/clock.js";
import { startEngine } from "../support/engine.js";
import { activateLine, billingAccountBody, createCustomer, orderReadyAccount } from "../support/fixtures.js";

/** `npm run bill-run`: starts a run through the API and follows it to its end with a progress line. */

t.test("the command starts a run, shows its progress and lists what failed", async (t) => {
  const clock = new ManualClock("2027-03-17T09:00:00Z");
  const engine = await startEngine(t, { clock, env: { BSS_BILL_RUN_BATCH: "1" } });
  const { accountId } = await orderReadyAccount(engine);
  await activateLine(engine, accountId);
  const customer = await createCustomer(engine);
  const french = (
    await engine.request("POST", "/tmf-api/accountManagement/v4/billingAccount", {
      body: billingAccountBody(customer.id, { taxJurisdiction: "FR" }),
    })
  ).json().id as string;
  await activateLine(engine, french);
  clock.set("2027-04-01T08:00:00Z");

  const output: string[] = [];
  const io = {
    async call(method: string, path: string, body?: unknown) {
      const answer = await engine.request(method, path, {
        key: engine.keys.finance,
        ...(body === undefined ? {} : { body }),
      });
      return { status: answer.statusCode, body: answer.json() };
    },
    write: (text: string) => {
      output.push(text);
    },
    // Between two reports the engine works one batch (one account): the command sees the run progress.
    wait: async () => {
      await engine.app.services.billRuns.work();
    },
    interactive: false,
  };
  const code = await billRunCli(["--cycle-day", "1", "--period-end", "2027-04-01"], io);
  t.equal(code, 1, "an account failed");
  const text = output.join("");
  t.match(text, /^bill run [0-9a-f-]{36}\n/);
  t.match(text, /\[-{30}\] 0\/2 done, 0 failed · nothing invoiced/, "the run as it started");
  t.match(text, /\[#{30}\] 2\/2 done, 1 failed · 44\.64 EUR · [0-9.]+\/s · completedWithFailures/, "and as it ended");
  t.match(text, new RegExp(`failed: ${french} no_issuing_entity: `));

  // Started again: the same run, reported as such; following it ends at once.
  const again: string[] = [];
  t.equal(
    await billRunCli(["--cycle-day", "1", "--period-end", "2027-04-01"], { ...io, write: (text) => again.push(text) }),
    1,
  );
  t.match(again.join(""), /\(started before\)/);

  // Refusals and usage errors: exit 2 with the reason.
  const refused: string[] = [];
  t.equal(
    await billRunCli(["--cycle-day", "1", "--period-end", "2027-05-01"], {
      ...io,
      write: (text) => refused.push(text),
    }),
    2,
  );
  t.match(refused.join(""), /refused \(422\): periodEnd: periods ending on 2027-05-01 have not ended yet/);
  t.type(parseArguments([]), "string", "nothing asked: the usage");
  t.type(parseArguments(["--cycle-day", "x", "--period-end", "2027-04-01"]), "string");
  t.same(parseArguments(["--accounts", "a,b"]), { start: { billingAccountIds: ["a", "b"] } });
});

t.test("the progress line", async (t) => {
  const run = {
    id: "r",
    state: "running",
    total: 20,
    done: 7,
    failed: 1,
    pending: 12,
    invoicedAmount: [{ unit: "EUR", value: "312.48" }],
    ratePerSecond: 3.5,
    secondsLeft: 125,
    failures: [],
  };
  t.equal(
    formatProgress(run),
    "[############------------------] 8/20 done, 1 failed · 312.48 EUR · 3.5/s · 2 min 5 s left · running",
  );
});
