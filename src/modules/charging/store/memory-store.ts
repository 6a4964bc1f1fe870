import {
  type AccountState,
  type ChargingStore,
  type Crossing,
  checkMicro,
  crossed,
  type EventOutcome,
  metricOf,
  type StepRequest,
  type StepResult,
  watches,
} from "./charging-store.js";

interface Stored {
  state: AccountState;
  dedupe: Map<string, { result: string; crossings: Crossing[] }>;
}

/**
 * The embedded charging store: the same step as the Lua script, in the process. JavaScript runs one call at a
 * time between awaits and the step has none, so each call is atomic like a Lua script.
 */
export function memoryChargingStore(): ChargingStore {
  const accounts = new Map<string, Stored>();
  let initialized = false;
  const load = (accountId: string): Stored => {
    let stored = accounts.get(accountId);
    if (stored === undefined) {
      stored = {
        state: { accountId, version: 0, fence: 0, spend: new Map(), lines: new Map(), crossed: new Set() },
        dedupe: new Map(),
      };
      accounts.set(accountId, stored);
    }
    return stored;
  };
  /** A copy of an account's state; with `only`, of those lines alone. */
  const copy = (state: AccountState, only?: readonly string[]): AccountState => {
    const ids = only ?? [...state.lines.keys()];
    const lines = ids.flatMap((id) => {
      const line = state.lines.get(id);
      return line === undefined
        ? []
        : [[id, { ...line, buckets: line.buckets.map((bucket) => ({ ...bucket })) }] as const];
    });
    return { ...state, spend: new Map(state.spend), lines: new Map(lines), crossed: new Set(state.crossed) };
  };

  return {
    kind: "in-process",
    async read(accountId) {
      const state = copy(load(accountId).state);
      for (const line of state.lines.values()) line.buckets.sort((a, b) => a.id.localeCompare(b.id));
      return state;
    },
    async readForRating(accountId, productIds, usageIds) {
      const stored = load(accountId);
      // Only the lines asked for are copied (an account can hold many).
      const state = copy(stored.state, productIds);
      for (const line of state.lines.values()) line.buckets.sort((a, b) => a.id.localeCompare(b.id));
      return { state, applied: new Set(usageIds.filter((id) => stored.dedupe.has(id))) };
    },
    async grant(accountId, line) {
      if (line.balance !== null) checkMicro(line.balance, "balance");
      const { state } = load(accountId);
      const existing = state.lines.get(line.productId);
      let changed = false;
      if (existing === undefined) {
        state.lines.set(line.productId, {
          productId: line.productId,
          balance: line.balance,
          buckets: line.buckets.map((bucket) => ({ id: bucket.id, granted: bucket.granted, used: 0 })),
        });
        changed = true;
      } else {
        for (const bucket of line.buckets) {
          if (!existing.buckets.some((candidate) => candidate.id === bucket.id)) {
            existing.buckets.push({ id: bucket.id, granted: bucket.granted, used: 0 });
            changed = true;
          }
        }
      }
      if (changed) state.version += 1;
      return state.version;
    },
    async step(request: StepRequest): Promise<StepResult> {
      const stored = load(request.accountId);
      const { state, dedupe } = stored;
      if (request.fence < state.fence) return { status: "fenced", fence: state.fence };
      const seen = new Set<string>();
      if (request.strict && request.events.some((event) => !event.known && dedupe.has(event.usageId))) {
        return { status: "version_mismatch", version: state.version };
      }
      const fresh = request.events.filter((event) => {
        const repeat = dedupe.has(event.usageId) || seen.has(event.usageId);
        seen.add(event.usageId);
        return !repeat;
      });
      if (fresh.length > 0 && request.version !== state.version) {
        return { status: "version_mismatch", version: state.version };
      }
      // Check everything before changing anything: a refused step changes nothing.
      const planned = copy(state);
      for (const event of fresh) {
        checkMicro(event.charge, "charge");
        if (event.charge < 0n) return { status: "refused", reason: `${event.usageId}: negative charge` };
        const line = planned.lines.get(event.productId);
        if (line === undefined)
          return { status: "refused", reason: `${event.usageId}: line ${event.productId} has no state` };
        if (event.prepaid && line.balance === null) {
          return { status: "refused", reason: `${event.usageId}: line ${event.productId} has no prepaid balance` };
        }
        for (const draw of event.draws) {
          const holder = draw.holder === undefined ? line : planned.lines.get(draw.holder);
          const bucket = holder?.buckets.find((candidate) => candidate.id === draw.bucketId);
          if (bucket === undefined || draw.units < 0 || bucket.used + draw.units > bucket.granted) {
            return {
              status: "refused",
              reason: `${event.usageId}: bucket ${draw.bucketId} cannot cover ${draw.units}`,
            };
          }
          bucket.used += draw.units;
        }
        if (event.prepaid) line.balance = (line.balance as bigint) - event.charge;
        const spend = (planned.spend.get(event.period) ?? 0n) + event.charge;
        checkMicro(spend, "spend");
        planned.spend.set(event.period, spend);
      }
      // Apply for real, event by event, watching thresholds.
      const results = new Map<string, { result: string; crossings: Crossing[] }>();
      for (const event of fresh) {
        const watched = request.thresholds.filter((threshold) => watches(threshold, event));
        const before = watched.map((threshold) => metricOf(state, threshold));
        const crossings: Crossing[] = [];
        const line = state.lines.get(event.productId);
        if (line === undefined) continue;
        for (const draw of event.draws) {
          const holder = draw.holder === undefined ? line : state.lines.get(draw.holder);
          const bucket = holder?.buckets.find((candidate) => candidate.id === draw.bucketId);
          if (bucket) bucket.used += draw.units;
        }
        if (event.prepaid && line.balance !== null) line.balance -= event.charge;
        state.spend.set(event.period, (state.spend.get(event.period) ?? 0n) + event.charge);
        watched.forEach((threshold, index) => {
          const was = before[index];
          const now = metricOf(state, threshold);
          if (was === null || was === undefined || now === null) return;
          if (crossed(threshold, was, now) && !state.crossed.has(threshold.key)) {
            state.crossed.add(threshold.key);
            crossings.push({ key: threshold.key, usageId: event.usageId, value: now });
          }
        });
        dedupe.set(event.usageId, { result: event.result, crossings });
        results.set(event.usageId, { result: event.result, crossings });
      }
      if (fresh.length > 0) state.version += 1;
      state.fence = Math.max(state.fence, request.fence);
      const outcomes: EventOutcome[] = [];
      const answered = new Set<string>();
      for (const event of request.events) {
        const own = results.get(event.usageId);
        const first = own !== undefined && !answered.has(event.usageId);
        answered.add(event.usageId);
        const stored = own ?? (dedupe.get(event.usageId) as { result: string; crossings: Crossing[] });
        outcomes.push({
          usageId: event.usageId,
          duplicate: !first,
          result: stored.result,
          crossings: stored.crossings,
        });
      }
      return { status: "applied", version: state.version, outcomes };
    },
    async adjust(adjustment) {
      const { state, dedupe } = load(adjustment.accountId);
      const line = state.lines.get(adjustment.productId);
      const mark = `adjust:${adjustment.id}`;
      const answer = (status: "applied" | "duplicate") => {
        const bucket = line?.buckets.find((candidate) => candidate.id === adjustment.bucket?.bucketId);
        return {
          status,
          version: state.version,
          balance: line?.balance ?? null,
          spend: adjustment.spend ? (state.spend.get(adjustment.spend.period) ?? 0n) : null,
          bucket: bucket ? { granted: bucket.granted, used: bucket.used } : null,
        };
      };
      if (line === undefined) return { status: "refused", reason: `line ${adjustment.productId} has no state` };
      if (dedupe.has(mark)) return answer("duplicate");
      let balance = line.balance;
      if (adjustment.balance !== undefined) {
        checkMicro(adjustment.balance, "balance change");
        if (balance === null)
          return { status: "refused", reason: `line ${adjustment.productId} has no prepaid balance` };
        balance += adjustment.balance;
        if (adjustment.balance < 0n && balance < 0n)
          return { status: "refused", reason: "the debit would take the balance below zero" };
        checkMicro(balance, "balance");
      }
      let spend: bigint | null = null;
      if (adjustment.spend !== undefined) {
        checkMicro(adjustment.spend.delta, "spend change");
        spend = (state.spend.get(adjustment.spend.period) ?? 0n) + adjustment.spend.delta;
        if (spend < 0n)
          return { status: "refused", reason: "the credit is larger than the spend to date of the period" };
      }
      const bucket = adjustment.bucket
        ? line.buckets.find((candidate) => candidate.id === adjustment.bucket?.bucketId)
        : undefined;
      if (adjustment.bucket !== undefined) {
        if (bucket === undefined)
          return { status: "refused", reason: `bucket ${adjustment.bucket.bucketId} has no state` };
        const granted = bucket.granted + adjustment.bucket.delta;
        if (granted < bucket.used || granted < 0) {
          return { status: "refused", reason: `the bucket would grant ${granted}, less than the ${bucket.used} used` };
        }
      }
      line.balance = balance;
      if (adjustment.spend !== undefined && spend !== null) {
        state.spend.set(adjustment.spend.period, spend);
        for (const threshold of adjustment.rearmSpend ?? []) {
          if (spend < threshold.value) state.crossed.delete(threshold.key);
        }
      }
      if (bucket !== undefined && adjustment.bucket !== undefined) bucket.granted += adjustment.bucket.delta;
      if (balance !== null) {
        for (const threshold of adjustment.rearm) if (balance >= threshold.value) state.crossed.delete(threshold.key);
      }
      dedupe.set(mark, { result: "", crossings: [] });
      state.version += 1;
      return answer("applied");
    },
    async rollover(rollover) {
      const { state, dedupe } = load(rollover.accountId);
      const mark = `adjust:${rollover.id}`;
      const done = dedupe.get(mark);
      if (done !== undefined) return { status: "duplicate", version: state.version, units: Number(done.result) };
      const holder = state.lines.get(rollover.holder);
      const from = holder?.buckets.find((bucket) => bucket.id === rollover.from);
      if (holder === undefined || from === undefined) {
        return { status: "refused", reason: `bucket ${rollover.from} has no state` };
      }
      const units = Math.max(0, Math.min(rollover.cap, from.granted - from.used));
      if (units > 0) {
        from.granted -= units;
        holder.buckets.push({ id: rollover.to, granted: units, used: 0 });
      }
      dedupe.set(mark, { result: String(units), crossings: [] });
      state.version += 1;
      return { status: "applied", version: state.version, units };
    },
    async applied(accountId, usageIds) {
      const { dedupe } = load(accountId);
      return new Set(usageIds.filter((id) => dedupe.has(id)));
    },
    async replace(snapshot) {
      const dedupe = new Map<string, { result: string; crossings: Crossing[] }>();
      for (const mark of snapshot.marks) dedupe.set(mark.id, { result: mark.result, crossings: mark.crossings });
      for (const id of snapshot.adjustments) dedupe.set(`adjust:${id}`, { result: "", crossings: [] });
      accounts.set(snapshot.accountId, {
        state: {
          accountId: snapshot.accountId,
          version: snapshot.version,
          fence: snapshot.fence,
          spend: new Map(snapshot.spend),
          lines: new Map(
            snapshot.lines.map((line) => [
              line.productId,
              { ...line, buckets: line.buckets.map((bucket) => ({ ...bucket })) },
            ]),
          ),
          crossed: new Set(snapshot.crossed),
        },
        dedupe,
      });
    },
    async initialized() {
      return initialized;
    },
    async markInitialized() {
      initialized = true;
    },
    async close() {
      accounts.clear();
    },
  };
}
