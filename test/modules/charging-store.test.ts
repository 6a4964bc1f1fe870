import { randomBytes, randomUUID } from "node:crypto";
import fc from "fast-check";
import { Redis } from "ioredis";
import t, { type Test } from "tap";
import type { ChargeEvent, ChargingStore, Threshold } from "../../src/modules/charging/store/charging-store.js";
import { memoryChargingStore } from "../../src/modules/charging/store/memory-store.js";
import { redisChargingStore } from "../../src/modules/charging/store/redis-store.js";
import { hasServers, services } from "../support/engine.js";

/**
 * The charging store contract (DESIGN.md §4 step 3), run against both stores: the Redis one (Lua) on this
 * run's Redis, and the in-process one. Same calls, same answers.
 */

type Factory = () => Promise<{ store: ChargingStore; close(): Promise<void> }>;

const factories: Array<[string, Factory]> = [
  ["in-process", async () => ({ store: memoryChargingStore(), close: async () => {} })],
];
if (hasServers) {
  factories.push([
    "redis",
    async () => {
      const prefix = `t:store:${randomBytes(4).toString("hex")}:`;
      const client = new Redis(services.redisUrl as string, { keyPrefix: prefix });
      return {
        store: redisChargingStore(client),
        async close() {
          const cleaner = new Redis(services.redisUrl as string);
          const keys = await cleaner.keys(`${prefix}*`);
          if (keys.length > 0) await cleaner.del(...keys);
          cleaner.disconnect();
          client.disconnect();
        },
      };
    },
  ]);
}

const EUR = (amount: string) => BigInt(Math.round(Number(amount) * 1_000_000));

function event(usageId: string, overrides: Partial<ChargeEvent> = {}): ChargeEvent {
  return {
    usageId,
    productId: "line-1",
    period: "2026-03",
    draws: [],
    charge: 0n,
    prepaid: false,
    result: JSON.stringify({ usageId }),
    ...overrides,
  };
}

for (const [name, factory] of factories) {
  const setup = async (t: Test) => {
    const made = await factory();
    t.teardown(() => made.close());
    return made.store;
  };

  t.test(
    `[${name}] a shared bucket held by the account: lines draw from it, its thresholds watch every draw`,
    async (t) => {
      const store = await setup(t);
      const account = randomUUID();
      await store.grant(account, { productId: "line-1", balance: null, buckets: [] });
      await store.grant(account, { productId: "line-2", balance: null, buckets: [] });
      const v = await store.grant(account, {
        productId: account,
        balance: null,
        buckets: [{ id: "pool", granted: 1_000 }],
      });
      const watch: Threshold = {
        key: "allowance:pool:80%",
        metric: "bucket",
        direction: "up",
        value: 800n,
        productId: account,
        bucketId: "pool",
      };
      const first = await store.step({
        accountId: account,
        fence: 1,
        version: v,
        events: [
          event("u1", { draws: [{ bucketId: "pool", units: 500, holder: account }] }),
          event("u2", { productId: "line-2", draws: [{ bucketId: "pool", units: 400, holder: account }] }),
        ],
        thresholds: [watch],
      });
      t.equal(first.status, "applied");
      if (first.status !== "applied") return;
      t.same(
        first.outcomes.map((outcome) => outcome.crossings.map((crossing) => [crossing.key, crossing.usageId])),
        [[], [["allowance:pool:80%", "u2"]]],
        "the second line's draw crossed the shared bucket's threshold",
      );
      const state = await store.read(account);
      t.same(state.lines.get(account)?.buckets, [{ id: "pool", granted: 1_000, used: 900 }]);
      t.same(state.lines.get("line-1")?.buckets, [], "nothing on the line itself");
      const forRating = await store.readForRating(account, ["line-2", account, "no-such-line"], ["u2", "u9"]);
      t.same(
        [...forRating.state.lines.keys()].sort(),
        [account, "line-2"].sort(),
        "only the lines asked for that exist",
      );
      t.same(forRating.state.lines.get(account)?.buckets, [{ id: "pool", granted: 1_000, used: 900 }]);
      t.equal(forRating.state.version, state.version);
      t.same([...forRating.applied], ["u2"], "which usage ids were applied");
      const over = await store.step({
        accountId: account,
        fence: 1,
        version: first.version,
        events: [event("u3", { draws: [{ bucketId: "pool", units: 101, holder: account }] })],
        thresholds: [],
      });
      t.equal(over.status, "refused", "a draw past what the shared bucket has left is refused");
      const missing = await store.step({
        accountId: account,
        fence: 1,
        version: first.version,
        events: [event("u4", { draws: [{ bucketId: "pool", units: 1, holder: "nobody" }] })],
        thresholds: [],
      });
      t.equal(missing.status, "refused", "a holder with no state is refused");
      t.equal((await store.read(account)).version, first.version, "refusals changed nothing");
    },
  );

  t.test(`[${name}] a strict step refuses an applied event it was not told about, and changes nothing`, async (t) => {
    const store = await setup(t);
    const account = randomUUID();
    const v = await store.grant(account, { productId: "line-1", balance: null, buckets: [{ id: "b", granted: 100 }] });
    const first = await store.step({
      accountId: account,
      fence: 1,
      version: v,
      events: [event("u1", { draws: [{ bucketId: "b", units: 10 }] })],
      thresholds: [],
    });
    if (first.status !== "applied") throw new Error(JSON.stringify(first));
    // A worker pricing against kept state, unaware that u1 was applied, would plan u2 as if u1's draw were new.
    const unaware = await store.step({
      accountId: account,
      fence: 1,
      version: first.version,
      strict: true,
      events: [
        event("u1", { draws: [{ bucketId: "b", units: 10 }] }),
        event("u2", { draws: [{ bucketId: "b", units: 5 }] }),
      ],
      thresholds: [],
    });
    t.same(unaware, { status: "version_mismatch", version: first.version });
    t.same((await store.read(account)).lines.get("line-1")?.buckets, [{ id: "b", granted: 100, used: 10 }]);
    const told = await store.step({
      accountId: account,
      fence: 1,
      version: first.version,
      strict: true,
      events: [event("u1", { known: true }), event("u2", { draws: [{ bucketId: "b", units: 5 }] })],
      thresholds: [],
    });
    t.match(told, {
      status: "applied",
      outcomes: [
        { usageId: "u1", duplicate: true },
        { usageId: "u2", duplicate: false },
      ],
    });
    t.same((await store.read(account)).lines.get("line-1")?.buckets, [{ id: "b", granted: 100, used: 15 }]);
  });

  t.test(`[${name}] rollover moves what is left up to the cap, once`, async (t) => {
    const store = await setup(t);
    const account = randomUUID();
    const v = await store.grant(account, {
      productId: "line-1",
      balance: null,
      buckets: [{ id: "march", granted: 1_000 }],
    });
    await store.step({
      accountId: account,
      fence: 1,
      version: v,
      events: [event("u1", { draws: [{ bucketId: "march", units: 300 }] })],
      thresholds: [],
    });
    const request = {
      accountId: account,
      id: "roll-1",
      holder: "line-1",
      from: "march",
      to: "april-rollover",
      cap: 500,
    };
    const moved = await store.rollover(request);
    t.match(moved, { status: "applied", units: 500 }, "700 left, 500 carried (the cap)");
    t.match(
      await store.rollover({ ...request, cap: 5 }),
      { status: "duplicate", units: 500 },
      "a repeat answers the first",
    );
    t.same((await store.read(account)).lines.get("line-1")?.buckets, [
      { id: "april-rollover", granted: 500, used: 0 },
      { id: "march", granted: 500, used: 300 },
    ]);
    const none = await store.rollover({ ...request, id: "roll-2", from: "april-rollover", to: "x", cap: 10_000 });
    t.match(none, { status: "applied", units: 500 }, "under the cap: everything left");
    const empty = await store.rollover({ ...request, id: "roll-3", from: "april-rollover", to: "y", cap: 10 });
    t.match(empty, { status: "applied", units: 0 }, "nothing left: nothing carried, no bucket made");
    t.notOk((await store.read(account)).lines.get("line-1")?.buckets.some((bucket) => bucket.id === "y"));
    t.match(await store.rollover({ ...request, id: "roll-4", from: "gone" }), { status: "refused" });
  });

  t.test(`[${name}] grant, then a step consumes buckets before money and moves spend`, async (t) => {
    const store = await setup(t);
    const account = randomUUID();
    const v1 = await store.grant(account, {
      productId: "line-1",
      balance: EUR("10"),
      buckets: [
        { id: "voice", granted: 600 },
        { id: "data", granted: 1_000 },
      ],
    });
    t.equal(v1, 1);
    t.equal(
      await store.grant(account, { productId: "line-1", balance: EUR("99"), buckets: [{ id: "voice", granted: 1 }] }),
      1,
      "granting what exists changes nothing (not even the balance)",
    );
    const applied = await store.step({
      accountId: account,
      fence: 1,
      version: 1,
      events: [
        event("u1", { draws: [{ bucketId: "voice", units: 600 }], charge: EUR("0.19"), prepaid: true }),
        event("u2", { draws: [{ bucketId: "data", units: 400 }], charge: 0n, prepaid: true }),
      ],
      thresholds: [],
    });
    t.match(applied, { status: "applied", version: 2 });
    t.same(
      applied.status === "applied" ? applied.outcomes.map((outcome) => [outcome.usageId, outcome.duplicate]) : [],
      [
        ["u1", false],
        ["u2", false],
      ],
    );
    const state = await store.read(account);
    t.equal(state.version, 2);
    t.equal(state.fence, 1);
    t.equal(state.lines.get("line-1")?.balance, EUR("9.81"));
    t.same(state.lines.get("line-1")?.buckets, [
      { id: "data", granted: 1_000, used: 400 },
      { id: "voice", granted: 600, used: 600 },
    ]);
    t.equal(state.spend.get("2026-03"), EUR("0.19"));
  });

  t.test(`[${name}] a replay answers the stored result and changes nothing`, async (t) => {
    const store = await setup(t);
    const account = randomUUID();
    await store.grant(account, { productId: "line-1", balance: null, buckets: [{ id: "sms", granted: 10 }] });
    const first = event("u1", { draws: [{ bucketId: "sms", units: 1 }], charge: EUR("0.09"), result: "first" });
    await store.step({ accountId: account, fence: 1, version: 1, events: [first], thresholds: [] });
    const replay = await store.step({
      accountId: account,
      fence: 1,
      version: 1,
      events: [
        { ...first, result: "second", charge: EUR("5") },
        { ...first, result: "third" },
      ],
      thresholds: [],
    });
    t.match(replay, { status: "applied", version: 2 }, "a stale version is fine when nothing is new");
    t.same(replay.status === "applied" ? replay.outcomes : [], [
      { usageId: "u1", duplicate: true, result: "first", crossings: [] },
      { usageId: "u1", duplicate: true, result: "first", crossings: [] },
    ]);
    const state = await store.read(account);
    t.equal(state.spend.get("2026-03"), EUR("0.09"), "charged once");
    t.equal(state.lines.get("line-1")?.buckets[0]?.used, 1);

    const twice = await store.step({
      accountId: account,
      fence: 1,
      version: 2,
      events: [event("u2", { charge: 1n }), event("u2", { charge: 1n })],
      thresholds: [],
    });
    t.same(
      twice.status === "applied" ? twice.outcomes.map((outcome) => outcome.duplicate) : [],
      [false, true],
      "the same id twice in one call counts once",
    );
    t.equal((await store.read(account)).spend.get("2026-03"), EUR("0.09") + 1n);
  });

  t.test(`[${name}] version mismatch and fencing refuse the whole call`, async (t) => {
    const store = await setup(t);
    const account = randomUUID();
    await store.grant(account, { productId: "line-1", balance: EUR("1"), buckets: [] });
    t.same(
      await store.step({
        accountId: account,
        fence: 1,
        version: 0,
        events: [event("u1", { charge: 1n })],
        thresholds: [],
      }),
      { status: "version_mismatch", version: 1 },
    );
    await store.step({
      accountId: account,
      fence: 5,
      version: 1,
      events: [event("u1", { charge: 1n })],
      thresholds: [],
    });
    t.same(
      await store.step({
        accountId: account,
        fence: 4,
        version: 2,
        events: [event("u2", { charge: 1n })],
        thresholds: [],
      }),
      { status: "fenced", fence: 5 },
      "a worker with an older token cannot write",
    );
    t.match(
      await store.step({
        accountId: account,
        fence: 6,
        version: 2,
        events: [event("u3", { charge: 1n })],
        thresholds: [],
      }),
      { status: "applied", version: 3 },
    );
    const state = await store.read(account);
    t.equal(state.fence, 6);
    t.equal(state.spend.get("2026-03"), 2n);
  });

  t.test(`[${name}] a step that cannot apply refuses and changes nothing`, async (t) => {
    const store = await setup(t);
    const account = randomUUID();
    await store.grant(account, { productId: "line-1", balance: null, buckets: [{ id: "voice", granted: 60 }] });
    const before = await store.read(account);
    for (const [events, reason] of [
      [
        [
          event("u1", { draws: [{ bucketId: "voice", units: 30 }] }),
          event("u2", { draws: [{ bucketId: "voice", units: 31 }] }),
        ],
        /cannot cover/,
      ],
      [[event("u1", { draws: [{ bucketId: "sms", units: 1 }] })], /cannot cover/],
      [[event("u1", { productId: "line-9" })], /no state/],
      [[event("u1", { charge: 1n, prepaid: true })], /no prepaid balance/],
      [[event("u1", { charge: -1n })], /negative/],
    ] as const) {
      const answer = await store.step({
        accountId: account,
        fence: 1,
        version: 1,
        events: [...events],
        thresholds: [],
      });
      t.match(answer, { status: "refused", reason });
    }
    t.same(await store.read(account), before, "nothing moved");
  });

  t.test(`[${name}] overshoot past a limit is charged; each threshold fires once per period`, async (t) => {
    const store = await setup(t);
    const account = randomUUID();
    await store.grant(account, { productId: "line-1", balance: EUR("1"), buckets: [{ id: "data", granted: 100 }] });
    const thresholds: Threshold[] = [
      { key: "low:line-1:0.50", metric: "balance", direction: "down", value: EUR("0.5"), productId: "line-1" },
      { key: "empty:line-1", metric: "balance", direction: "down", value: 0n, productId: "line-1" },
      { key: "spend:2026-03:80", metric: "spend", direction: "up", value: EUR("0.8"), period: "2026-03" },
      { key: "bucket:data:80", metric: "bucket", direction: "up", value: 80n, productId: "line-1", bucketId: "data" },
      { key: "spend:2026-04:80", metric: "spend", direction: "up", value: EUR("0.8"), period: "2026-04" },
    ];
    const step = async (version: number, events: ChargeEvent[]) =>
      store.step({ accountId: account, fence: 1, version, events, thresholds });
    const first = await step(1, [
      event("u1", { draws: [{ bucketId: "data", units: 80 }], charge: EUR("0.6"), prepaid: true }),
      event("u2", { charge: EUR("0.75"), prepaid: true }),
    ]);
    const crossingsOf = (answer: Awaited<ReturnType<typeof step>>) =>
      answer.status === "applied"
        ? answer.outcomes
            .filter((outcome) => !outcome.duplicate)
            .flatMap((outcome) => outcome.crossings)
            .map((crossing) => [crossing.key, crossing.usageId, crossing.value] as const)
            .sort((a, b) => a[0].localeCompare(b[0]))
        : null;
    t.same(
      crossingsOf(first),
      [
        ["bucket:data:80", "u1", 80n],
        ["empty:line-1", "u2", EUR("-0.35")],
        ["low:line-1:0.50", "u1", EUR("0.4")],
        ["spend:2026-03:80", "u2", EUR("1.35")],
      ],
      "the event that crosses is charged in full; the balance goes negative",
    );
    const state = await store.read(account);
    t.equal(state.lines.get("line-1")?.balance, EUR("-0.35"), "overshoot is a debt");
    const again = await step(2, [event("u3", { charge: EUR("0.1"), prepaid: true })]);
    t.same(crossingsOf(again), [], "nothing fires twice");
    const replayed = await step(3, [event("u2")]);
    t.same(
      replayed.status === "applied" ? replayed.outcomes[0]?.crossings.map((crossing) => crossing.key).sort() : null,
      ["empty:line-1", "spend:2026-03:80"],
      "a replay answers the crossings its event made, so a crash before the ledger loses none",
    );

    // A top-up re-arms the low-balance thresholds it lifts the balance above, once.
    const topUp = {
      accountId: account,
      productId: "line-1",
      id: "t1",
      balance: EUR("2"),
      rearm: thresholds.filter((th) => th.metric === "balance").map((th) => ({ key: th.key, value: th.value })),
    };
    t.match(await store.adjust(topUp), { status: "applied", balance: EUR("1.55") });
    t.match(await store.adjust(topUp), { status: "duplicate", balance: EUR("1.55") }, "a top-up applies once");
    const after = await store.read(account);
    t.notOk(after.crossed.has("low:line-1:0.50"), "re-armed");
    t.ok(after.crossed.has("spend:2026-03:80"), "other thresholds stay fired");
    const low = await step(after.version, [event("u4", { charge: EUR("1.2"), prepaid: true })]);
    t.same(
      crossingsOf(low)?.map(([key]) => key),
      ["low:line-1:0.50"],
      "the low-balance alert fires again after the top-up (the balance stays above zero)",
    );
    const nextPeriod = await step(low.status === "applied" ? low.version : 0, [
      event("u5", { period: "2026-04", charge: EUR("0.9") }),
    ]);
    t.same(
      crossingsOf(nextPeriod)?.map(([key]) => key),
      ["spend:2026-04:80"],
    );
    t.match(await store.adjust({ ...topUp, id: "t2", productId: "nobody" }), { status: "refused", reason: /no state/ });
  });

  t.test(
    `[${name}] adjustments: debits, spend credits and grants that would break something are refused`,
    async (t) => {
      const store = await setup(t);
      const account = randomUUID();
      await store.grant(account, { productId: "pre", balance: EUR("1"), buckets: [{ id: "b", granted: 100 }] });
      await store.grant(account, { productId: "post", balance: null, buckets: [] });
      await store.step({
        accountId: account,
        fence: 1,
        version: 2,
        events: [
          event("u1", { productId: "pre", draws: [{ bucketId: "b", units: 60 }] }),
          event("u2", { productId: "post", charge: EUR("5") }),
        ],
        thresholds: [],
      });
      const before = await store.read(account);
      const refusals: Array<[Parameters<ChargingStore["adjust"]>[0], RegExp]> = [
        [{ accountId: account, id: "a1", productId: "pre", balance: EUR("-1.01"), rearm: [] }, /below zero/],
        [{ accountId: account, id: "a2", productId: "post", balance: EUR("1"), rearm: [] }, /no prepaid balance/],
        [
          {
            accountId: account,
            id: "a3",
            productId: "post",
            spend: { period: "2026-03", delta: EUR("-5.01") },
            rearm: [],
          },
          /larger than the spend/,
        ],
        [
          { accountId: account, id: "a4", productId: "pre", bucket: { bucketId: "b", delta: -41 }, rearm: [] },
          /less than the 60 used/,
        ],
        [
          { accountId: account, id: "a5", productId: "pre", bucket: { bucketId: "x", delta: 1 }, rearm: [] },
          /no state/,
        ],
      ];
      for (const [adjustment, reason] of refusals) {
        t.match(await store.adjust(adjustment), { status: "refused", reason });
      }
      t.same(await store.read(account), before, "refusals change nothing");
      t.match(await store.adjust({ accountId: account, id: "a6", productId: "pre", balance: EUR("-1"), rearm: [] }), {
        status: "applied",
        balance: 0n,
      });
      t.match(
        await store.adjust({
          accountId: account,
          id: "a7",
          productId: "post",
          spend: { period: "2026-03", delta: EUR("-2") },
          rearm: [],
        }),
        { status: "applied", spend: EUR("3") },
      );
      t.match(
        await store.adjust({
          accountId: account,
          id: "a8",
          productId: "pre",
          bucket: { bucketId: "b", delta: -40 },
          rearm: [],
        }),
        {
          status: "applied",
          bucket: { granted: 60, used: 60 },
        },
      );
    },
  );

  t.test(`[${name}] property: conservation of buckets and money over random steps`, async (t) => {
    const store = await setup(t);
    const eventArb = fc.record({
      units: fc.integer({ min: 0, max: 50 }),
      charge: fc.bigInt({ min: 0n, max: 5_000_000n }),
      topUp: fc.bigInt({ min: 0n, max: 3_000_000n }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(eventArb, { minLength: 1, maxLength: 25 }), async (events) => {
        const account = randomUUID();
        const granted = 400;
        const opening = 10_000_000n;
        await store.grant(account, { productId: "line-1", balance: opening, buckets: [{ id: "b", granted }] });
        let used = 0;
        let charged = 0n;
        let credited = 0n;
        for (const [index, item] of events.entries()) {
          const state = await store.read(account);
          const available = granted - (state.lines.get("line-1")?.buckets[0]?.used ?? 0);
          const draw = Math.min(available, item.units);
          const answer = await store.step({
            accountId: account,
            fence: 1,
            version: state.version,
            events: [
              event(`u${index}`, {
                draws: draw > 0 ? [{ bucketId: "b", units: draw }] : [],
                charge: item.charge,
                prepaid: true,
              }),
            ],
            thresholds: [],
          });
          if (answer.status !== "applied") return false;
          used += draw;
          charged += item.charge;
          if (item.topUp > 0n) {
            await store.adjust({
              accountId: account,
              productId: "line-1",
              id: `t${index}`,
              balance: item.topUp,
              rearm: [],
            });
            credited += item.topUp;
          }
        }
        const final = await store.read(account);
        const bucket = final.lines.get("line-1")?.buckets[0];
        return (
          bucket?.used === used &&
          (bucket?.granted ?? 0) - (bucket?.used ?? 0) === granted - used &&
          final.lines.get("line-1")?.balance === opening + credited - charged &&
          final.spend.get("2026-03") === charged
        );
      }),
      { numRuns: 30 },
    );
    t.pass("opening + top-ups − charges = balance; used + remaining = granted");
  });
}
