import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import autocannon from "autocannon";
import postgres from "postgres";
import { type Config, loadConfig } from "../../src/config.js";
import { freePort } from "../../test/support/services.js";

/** Helpers shared by the benchmarks: child-process servers, a fresh database, autocannon runs. */

export interface RunningServer {
  base: string;
  stop(): Promise<void>;
}

/** Starts a server entry point in its own process, so the load generator does not share its core. */
export async function startServer(entry: string, env: NodeJS.ProcessEnv): Promise<RunningServer> {
  const port = await freePort();
  // BENCH_SERVER_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the servers under load.
  const extra = (process.env.BENCH_SERVER_NODE_ARGS ?? "").split(" ").filter((arg) => arg !== "");
  const child: ChildProcess = spawn(process.execPath, [...extra, "--import", "tsx", entry], {
    env: { ...process.env, ...env, PORT: String(port), HOST: "127.0.0.1" },
    stdio: ["ignore", process.env.BENCH_SERVER_LOG ? "pipe" : "ignore", "pipe"],
  });
  // BENCH_SERVER_LOG=file keeps the servers' logs (warnings and errors) for a look after the run.
  if (process.env.BENCH_SERVER_LOG) {
    const log = createWriteStream(process.env.BENCH_SERVER_LOG, { flags: "a" });
    child.stdout?.pipe(log);
  }
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${entry} exited: ${stderr}`);
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`${entry} did not start: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    base,
    stop: () =>
      new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** A fresh database on the given server for one benchmark run, dropped afterwards. */
export async function freshDatabase(adminUrl: string, name: string): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists "${name}" with (force)`);
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    },
  };
}

/** The engine's configuration for an in-process bench: its own database and key prefix, no rate limits, silent. */
export function benchConfig(databaseUrl: string, redisUrl: string, prefix: string): Config {
  return loadConfig({
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    BSS_REDIS_KEY_PREFIX: prefix,
    BSS_SECRETS_KEY: "0".repeat(64),
    BSS_MIGRATE_ON_START: "true",
    BSS_CATALOG_REFRESH_SECONDS: "0",
    BSS_RATE_LIMIT_PER_MINUTE: "0",
    LOG_LEVEL: "silent",
  });
}

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

export async function load(options: autocannon.Options): Promise<LoadResult> {
  const result = await autocannon({ connections: 10, duration: 8, ...options });
  return {
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
  };
}

export function table(rows: Record<string, string | number>[]): string {
  const first = rows[0];
  if (first === undefined) return "";
  const columns = Object.keys(first);
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => String(row[column]).length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [
    line(columns),
    line(widths.map((width) => "-".repeat(width))),
    ...rows.map((row) => line(columns.map((column) => String(row[column])))),
  ].join("\n");
}
