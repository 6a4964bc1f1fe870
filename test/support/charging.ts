import { type ChildProcess, spawn } from "node:child_process";
import { type Engine, startEngine } from "./engine.js";
import { orderReadyAccount } from "./fixtures.js";
import { RecordingProvisioning } from "./recording-provisioning.js";

/** Helpers of the charging tests: an engine with an account and a CDR source, voice CDRs, worker processes. */

export async function chargingEngine(
  t: Parameters<typeof startEngine>[0],
  driver: Engine["driver"],
  accountType: "prepaid" | "postpaid" = "postpaid",
) {
  const network = new RecordingProvisioning();
  const engine = await startEngine(t, { driver, provisioning: network });
  const { accountId } = await orderReadyAccount(engine, { accountType });
  await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
  return { engine, accountId, network };
}

let sequence = 0;

/** A voice CDR from source msc-1 with a new cdrId. */
export function voiceCdr(msisdn: string, calledNumber: string, duration: number, at = "2026-03-15T10:05:00Z") {
  sequence += 1;
  return {
    recordType: "voice",
    cdrId: `v-${process.pid}-${sequence}`,
    source: "msc-1",
    servedMSISDN: msisdn,
    calledNumber,
    recordOpeningTime: at,
    duration,
  };
}

/** Posts CDRs as the network and insists every one is accepted. */
export async function postCdrs(engine: Engine, records: unknown[]) {
  const answer = await engine.request("POST", "/api/v1/cdrs", { key: engine.keys.network, body: records });
  if (answer.statusCode !== 200 || answer.json().accepted !== records.length) throw new Error(answer.body);
  return answer.json();
}

/** `npm run worker` as a child process on the engine's database and Redis, with more settings if given. */
export function spawnWorker(
  engine: Engine,
  logLevel = "error",
  env: Record<string, string> = {},
  stderr: "inherit" | "pipe" = "inherit",
): { child: ChildProcess; exited: Promise<number | null> } {
  const config = engine.config;
  const child = spawn(process.execPath, ["--import", "tsx", "src/worker.ts"], {
    env: {
      ...process.env,
      DATABASE_URL: config.databaseUrl,
      REDIS_URL: config.redisUrl,
      BSS_REDIS_KEY_PREFIX: config.redisKeyPrefix,
      BSS_SECRETS_KEY: config.secretsKey?.toString("hex"),
      BSS_MIGRATE_ON_START: "false",
      BSS_RATING_SHARDS: String(config.ratingShards),
      BSS_REDIS_CLUSTER: String(config.redisCluster),
      LOG_LEVEL: logLevel,
      ...env,
    },
    stdio: ["ignore", "ignore", stderr],
  });
  return { child, exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))) };
}
