import { pathToFileURL } from "node:url";

/**
 * `npm run bill-run -- --cycle-day 15 --period-end 2027-01-15` (or `--accounts <id>,<id>`, `--follow <run id>`,
 * `--retry <run id>`): starts a bill run through the running engine's API (BSS_URL, default http://localhost:3000;
 * BSS_API_KEY, a finance or admin key) and shows its progress until it ends: a bar, done and failed accounts, the
 * amount invoiced, the rate and the time left. It never opens the database itself (DESIGN.md §10: command-line
 * tools talk to the running engine). Exit 0 when the run completed, 1 when accounts failed (listed), 2 on a usage
 * or API error.
 */

export interface RunView {
  id: string;
  state: string;
  total: number;
  done: number;
  failed: number;
  pending: number;
  invoicedAmount: Array<{ unit: string; value: string }>;
  ratePerSecond: number;
  secondsLeft?: number;
  failures: Array<{ billingAccountId: string; code: string; reason: string }>;
}

export interface CliIo {
  /** An HTTP call to the engine: method, path, JSON body → status and parsed body. */
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  write(text: string): void;
  wait(ms: number): Promise<void>;
  /** Whether the output is a terminal (the bar redraws in place) or a log (a line per report). */
  interactive: boolean;
}

const USAGE = `usage: npm run bill-run -- --cycle-day <1-31> --period-end <YYYY-MM-DD>
       npm run bill-run -- --accounts <id>[,<id>…]
       npm run bill-run -- --follow <run id>
       npm run bill-run -- --retry <run id>
environment: BSS_URL (default http://localhost:3000), BSS_API_KEY (a finance or admin key)
`;

const BAR_WIDTH = 30;

/** One line of progress: `[#######-------]  7/20 done, 1 failed · 312.48 EUR · 3.5/s · 4 s left`. */
export function formatProgress(run: RunView): string {
  const settled = run.done + run.failed;
  const filled = run.total === 0 ? BAR_WIDTH : Math.round((settled / run.total) * BAR_WIDTH);
  const bar = `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}]`;
  const amounts = run.invoicedAmount.map((amount) => `${amount.value} ${amount.unit}`).join(", ") || "nothing invoiced";
  const left =
    run.state === "running" && run.secondsLeft !== undefined ? ` · ${formatSeconds(run.secondsLeft)} left` : "";
  return `${bar} ${settled}/${run.total} done, ${run.failed} failed · ${amounts} · ${run.ratePerSecond}/s${left} · ${run.state}`;
}

function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes} min ${seconds % 60} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Parses the arguments into the request to make; a string is the usage error. */
export function parseArguments(
  args: readonly string[],
):
  | { start: { billCycleDay: number; periodEnd: string } | { billingAccountIds: string[] } }
  | { follow: string }
  | { retry: string }
  | string {
  const value = (name: string) => {
    const index = args.indexOf(name);
    return index >= 0 ? args[index + 1] : undefined;
  };
  const cycleDay = value("--cycle-day");
  const periodEnd = value("--period-end");
  const accounts = value("--accounts");
  const follow = value("--follow");
  const retry = value("--retry");
  const given = [cycleDay ?? periodEnd, accounts, follow, retry].filter((entry) => entry !== undefined).length;
  if (given !== 1) return USAGE;
  if (follow !== undefined) return { follow };
  if (retry !== undefined) return { retry };
  if (accounts !== undefined) {
    const ids = accounts.split(",").filter((id) => id.length > 0);
    return ids.length === 0 ? USAGE : { start: { billingAccountIds: ids } };
  }
  const day = Number(cycleDay);
  if (!Number.isInteger(day) || periodEnd === undefined) return USAGE;
  return { start: { billCycleDay: day, periodEnd } };
}

/** The command: start (or retry, or follow) a run and report its progress until it ends. Answers the exit code. */
export async function billRunCli(args: readonly string[], io: CliIo): Promise<number> {
  const parsed = parseArguments(args);
  if (typeof parsed === "string") {
    io.write(parsed);
    return 2;
  }
  const answer =
    "start" in parsed
      ? await io.call("POST", "/api/v1/bill-runs", parsed.start)
      : "retry" in parsed
        ? await io.call("POST", `/api/v1/bill-runs/${encodeURIComponent(parsed.retry)}/retry`)
        : await io.call("GET", `/api/v1/bill-runs/${encodeURIComponent(parsed.follow)}`);
  if (answer.status >= 300) {
    const error = answer.body as { message?: string } | null;
    io.write(`the engine refused (${answer.status}): ${error?.message ?? JSON.stringify(answer.body)}\n`);
    return 2;
  }
  let run = answer.body as RunView;
  io.write(`bill run ${run.id}${answer.status === 200 && "start" in parsed ? " (started before)" : ""}\n`);
  let last = "";
  for (;;) {
    const line = formatProgress(run);
    if (io.interactive) io.write(`\r${line}`);
    else if (line !== last) io.write(`${line}\n`);
    last = line;
    if (run.state !== "running") break;
    await io.wait(1_000);
    const polled = await io.call("GET", `/api/v1/bill-runs/${run.id}`);
    if (polled.status !== 200) {
      io.write(`\nthe engine answered ${polled.status} while following the run\n`);
      return 2;
    }
    run = polled.body as RunView;
  }
  if (io.interactive) io.write("\n");
  for (const failure of run.failures)
    io.write(`failed: ${failure.billingAccountId} ${failure.code}: ${failure.reason}\n`);
  if (run.failed > run.failures.length) io.write(`… and ${run.failed - run.failures.length} more\n`);
  return run.failed > 0 ? 1 : 0;
}

async function main(): Promise<void> {
  const base = (process.env.BSS_URL ?? "http://localhost:3000").replace(/\/$/, "");
  const key = process.env.BSS_API_KEY;
  if (key === undefined || key === "") {
    process.stderr.write("set BSS_API_KEY to a finance or admin key of the running engine\n");
    process.exit(2);
  }
  const code = await billRunCli(process.argv.slice(2), {
    async call(method, path, body) {
      const response = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      return { status: response.status, body: text === "" ? null : JSON.parse(text) };
    },
    write: (text) => process.stdout.write(text),
    wait: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    interactive: process.stdout.isTTY === true,
  }).catch((error: unknown) => {
    process.stderr.write(
      `cannot reach the engine at ${base}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 2;
  });
  process.exit(code);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main();
