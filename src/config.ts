import path from "node:path";
import { FAULT_PATTERN } from "./platform/faults.js";
import { parseSecretsKey } from "./platform/secrets.js";
import { isTaxJurisdiction } from "./shared/contact.js";
import { isCurrencyCode } from "./shared/currency.js";
import {
  API_KEY_MAX_LENGTH,
  API_KEY_MIN_LENGTH,
  BODY_LIMIT_BYTES_DEFAULT,
  JOB_LEASE_SECONDS,
  LEASE_TTL_SECONDS,
  RATING_SHARDS_DEFAULT,
  SWEEP_AFTER_SECONDS,
  SWEEP_INTERVAL_MS,
  SWEEP_WINDOW_SECONDS,
} from "./shared/limits.js";

/**
 * The engine's configuration. This file is the only reader of process.env: everything else receives a
 * Config. Every problem is listed at once, so an operator fixes a deployment in one pass.
 */
export interface Config {
  readonly port: number;
  readonly host: string;
  /** PostgreSQL URL; unset, the engine runs on embedded PGlite under `dataDir`. */
  readonly databaseUrl: string | undefined;
  /** Redis URL; unset, the engine uses its in-process stores. */
  readonly redisUrl: string | undefined;
  readonly redisKeyPrefix: string;
  /** Becomes the first admin key when the engine starts with none (at least 32 characters). */
  readonly adminApiKey: string | undefined;
  readonly logLevel: LogLevel;
  readonly dataDir: string;
  /** The catalog folder published on first start and by `npm run catalog:publish`. */
  readonly catalogDir: string;
  /** How often each process re-checks for a newer catalog publication (a safety net under pub/sub); 0 disables. */
  readonly catalogRefreshSeconds: number;
  readonly bodyLimitBytes: number;
  readonly dbPoolMax: number;
  readonly migrateOnStart: boolean;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  /** AES-256 key for secrets at rest; required with DATABASE_URL, generated into dataDir when embedded. */
  readonly secretsKey: Buffer | undefined;
  /** Hosts, IP addresses or CIDR ranges a hub callback may reach although they are private or loopback. */
  readonly callbackAllow: readonly string[];
  /** PLMN ids (MCC+MNC) of the operator: imported IMSIs must belong to one of them. */
  readonly operatorPlmns: readonly string[];
  /** Days a released number rests in quarantine before it can be sold again. */
  readonly quarantineDays: number;
  /** How long a reservation holds a number or SIM unless the caller says otherwise. */
  readonly reservationSeconds: number;
  /** Where customer messages go (an HTTP SMS/e-mail gateway); unset, they are stored as undelivered. */
  readonly messageGatewayUrl: string | undefined;
  /** The provisioning endpoint of the network (HSS/UDM/PCRF adapter); unset, the simulated network runs. */
  readonly networkUrl: string | undefined;
  /** Shards of the rating queue; at least the most rating workers that will ever run (DESIGN.md §2). */
  readonly ratingShards: number;
  /** The sweeper re-enqueues accepted records with no rated or suspense row after this many seconds. */
  readonly sweepAfterSeconds: number;
  /** How often a worker (one at a time, by lease) runs the sweeper. */
  readonly sweepIntervalSeconds: number;
  /** How long a claimed scheduled-job slot stays its runner's unless renewed; a dead runner's is taken over after it. */
  readonly jobLeaseSeconds: number;
  /** The test clock (DESIGN.md §10): business time = wall clock + a stored offset an admin may move forward. */
  readonly testClock: boolean;
  /**
   * Where the test clock starts on a new data folder or database (BSS_TEST_CLOCK_START, an ISO 8601 instant, past or
   * future): acceptance tests begin on the dates their cases are written for. Ignored once the clock row exists.
   */
  readonly testClockStart: Date | null;
  /** Accounts a bill run claims at a time (one transaction issues them). */
  readonly billRunBatch: number;
  /** How long a bill run's claim holds; a dead process's accounts are taken again after it. */
  readonly billRunLeaseSeconds: number;
  /** How often every process looks for bill run work (milliseconds). */
  readonly billRunLoopMs: number;
  /** Days a final bill waits after an account's last line ended, for late CDRs. */
  readonly finalBillWaitDays: number;
  /** Days between the debtor's pre-notification and a direct debit's collection (EPC SDD rulebook: 14 unless agreed). */
  readonly sepaPrenotificationDays: number;
  /** The largest camt.053 statement accepted (it streams; this bounds one upload). */
  readonly statementMaxBytes: number;
  /** A rating worker's shard lease lasts this long unless renewed; a dead worker's shards free up after it. */
  readonly leaseSeconds: number;
  /** REDIS_URL names one node of a Redis Cluster. */
  readonly redisCluster: boolean;
  /** Requests per minute one staff or subscriber key may send to one API process; 0: no limit. */
  readonly rateLimitPerMinute: number;
  /** Requests per minute one network key may send to one API process; 0: no limit. */
  readonly rateLimitNetworkPerMinute: number;
  /** The currency of a billing account whose request names none (ISO 4217). */
  readonly defaultCurrency: string;
  /** The tax jurisdiction of a billing account whose request names none (ISO 3166 country, optional subdivision). */
  readonly defaultTaxJurisdiction: string;
  /** Open WebSocket connections one API key may hold on one API process. */
  readonly wsMaxSocketsPerKey: number;
  /** A crash point or fault to inject (fault tests only; see platform/faults.ts). */
  readonly fault: string | undefined;
}

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
}

type Env = Readonly<Record<string, string | undefined>>;

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const text = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return Number(raw);
  };
  const url = (name: string, protocols: readonly string[]): string | undefined => {
    const raw = text(name);
    if (raw === undefined) return undefined;
    try {
      const parsed = new URL(raw);
      if (!protocols.includes(parsed.protocol)) {
        problems.push(`${name} must use ${protocols.join(" or ")}, got "${parsed.protocol}"`);
      }
    } catch {
      // new URL throws TypeError on anything unparseable; the message would echo a password.
      problems.push(`${name} is not a valid URL`);
    }
    return raw;
  };
  const flag = (name: string, fallback: boolean): boolean => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    if (["1", "true", "yes"].includes(raw.toLowerCase())) return true;
    if (["0", "false", "no"].includes(raw.toLowerCase())) return false;
    problems.push(`${name} must be true or false, got "${raw}"`);
    return fallback;
  };

  const logLevel = (text("LOG_LEVEL") ?? "info").toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`);
  }
  const adminApiKey = text("ADMIN_API_KEY");
  if (adminApiKey !== undefined) {
    if (adminApiKey.length < API_KEY_MIN_LENGTH || adminApiKey.length > API_KEY_MAX_LENGTH) {
      problems.push(
        `ADMIN_API_KEY must be ${API_KEY_MIN_LENGTH} to ${API_KEY_MAX_LENGTH} characters, got ${adminApiKey.length}`,
      );
    } else if (!/^[\x21-\x7e]+$/.test(adminApiKey)) {
      problems.push("ADMIN_API_KEY must be printable ASCII without spaces");
    }
  }
  const host = text("HOST") ?? "127.0.0.1";
  const redisKeyPrefix = text("BSS_REDIS_KEY_PREFIX") ?? "";
  if (!/^[A-Za-z0-9:_-]{0,64}$/.test(redisKeyPrefix)) {
    problems.push("BSS_REDIS_KEY_PREFIX may hold only letters, digits, ':', '_' and '-' (at most 64)");
  }

  const secretsText = text("BSS_SECRETS_KEY");
  const secretsKey = secretsText === undefined ? undefined : parseSecretsKey(secretsText);
  if (secretsKey === null) problems.push("BSS_SECRETS_KEY must be 32 bytes as 64 hex digits or base64");
  if (secretsText === undefined && text("DATABASE_URL") !== undefined) {
    problems.push("BSS_SECRETS_KEY is required with DATABASE_URL (32 bytes as 64 hex digits or base64)");
  }
  const list = (name: string, fallback: string, pattern: RegExp, what: string): string[] => {
    const values = (text(name) ?? fallback)
      .split(",")
      .map((value) => value.trim())
      .filter((value) => value !== "");
    for (const value of values) if (!pattern.test(value)) problems.push(`${name}: "${value}" is not ${what}`);
    return values;
  };

  const instant = (name: string): Date | null => {
    const raw = text(name);
    if (raw === undefined) return null;
    const at = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(raw)
      ? new Date(raw)
      : null;
    // A calendar date that exists (Date would roll 30 February over into March).
    const [year, month, day] = raw.slice(0, 10).split("-").map(Number) as [number, number, number];
    const exists = month >= 1 && month <= 12 && day >= 1 && day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
    if (at === null || Number.isNaN(at.getTime()) || !exists) {
      problems.push(`${name} must be an ISO 8601 instant with its zone (2027-01-17T09:00:00Z), got "${raw}"`);
      return null;
    }
    return at;
  };

  const checked = (name: string, fallback: string, valid: (value: string) => boolean, what: string): string => {
    const raw = text(name) ?? fallback;
    if (!valid(raw)) problems.push(`${name} must be ${what}, got "${raw}"`);
    return raw;
  };

  const fault = text("BSS_FAULT");
  if (fault !== undefined && !FAULT_PATTERN.test(fault)) {
    problems.push('BSS_FAULT must be "crash:<after-step|mid-batch|after-commit>[@n]" or "poison:<account id>"');
  }

  const config: Config = {
    port: integer("PORT", 3000, 0, 65535),
    host,
    databaseUrl: url("DATABASE_URL", ["postgres:", "postgresql:"]),
    redisUrl: url("REDIS_URL", ["redis:", "rediss:"]),
    redisKeyPrefix,
    redisCluster: flag("BSS_REDIS_CLUSTER", false),
    adminApiKey,
    logLevel: logLevel as LogLevel,
    dataDir: path.resolve(text("BSS_DATA_DIR") ?? "data"),
    catalogDir: path.resolve(text("BSS_CATALOG_DIR") ?? "catalog"),
    catalogRefreshSeconds: integer("BSS_CATALOG_REFRESH_SECONDS", 30, 0, 3600),
    bodyLimitBytes: integer("BSS_BODY_LIMIT_BYTES", BODY_LIMIT_BYTES_DEFAULT, 1024, 64 * 1_048_576),
    dbPoolMax: integer("BSS_DB_POOL_MAX", 10, 1, 200),
    migrateOnStart: flag("BSS_MIGRATE_ON_START", true),
    requestTimeoutMs: integer("BSS_REQUEST_TIMEOUT_MS", 30_000, 1_000, 600_000),
    keepAliveTimeoutMs: integer("BSS_KEEP_ALIVE_TIMEOUT_MS", 72_000, 1_000, 600_000),
    shutdownTimeoutMs: integer("BSS_SHUTDOWN_TIMEOUT_MS", 10_000, 100, 600_000),
    secretsKey: secretsKey ?? undefined,
    callbackAllow: list("BSS_CALLBACK_ALLOW", "", /^[A-Za-z0-9.:/-]+$/, "a host, address or CIDR range"),
    operatorPlmns: list("BSS_OPERATOR_PLMNS", "26201,23415", /^\d{5,6}$/, "a PLMN id (MCC+MNC)"),
    quarantineDays: integer("BSS_QUARANTINE_DAYS", 90, 0, 3650),
    reservationSeconds: integer("BSS_RESERVATION_SECONDS", 900, 10, 86_400 * 30),
    messageGatewayUrl: url("BSS_MESSAGE_GATEWAY_URL", ["http:", "https:"]),
    networkUrl: url("BSS_NETWORK_URL", ["http:", "https:"]),
    ratingShards: integer("BSS_RATING_SHARDS", RATING_SHARDS_DEFAULT, 1, 1024),
    sweepAfterSeconds: integer("BSS_SWEEP_AFTER_SECONDS", SWEEP_AFTER_SECONDS, 1, SWEEP_WINDOW_SECONDS - 1),
    fault,
    sweepIntervalSeconds: integer("BSS_SWEEP_INTERVAL_SECONDS", SWEEP_INTERVAL_MS / 1000, 1, 3600),
    leaseSeconds: integer("BSS_LEASE_SECONDS", LEASE_TTL_SECONDS, 2, 300),
    testClock: flag("BSS_TEST_CLOCK", false),
    testClockStart: instant("BSS_TEST_CLOCK_START"),
    jobLeaseSeconds: integer("BSS_JOB_LEASE_SECONDS", JOB_LEASE_SECONDS, 2, 3600),
    billRunBatch: integer("BSS_BILL_RUN_BATCH", 200, 1, 5_000),
    billRunLeaseSeconds: integer("BSS_BILL_RUN_LEASE_SECONDS", 120, 2, 3600),
    billRunLoopMs: integer("BSS_BILL_RUN_LOOP_MS", 5_000, 100, 600_000),
    finalBillWaitDays: integer("BSS_FINAL_BILL_WAIT_DAYS", 3, 0, 90),
    sepaPrenotificationDays: integer("BSS_SEPA_PRENOTIFICATION_DAYS", 14, 1, 60),
    statementMaxBytes: integer("BSS_STATEMENT_MAX_BYTES", 512 * 1_048_576, 1024, 4 * 1024 * 1_048_576),
    rateLimitPerMinute: integer("BSS_RATE_LIMIT_PER_MINUTE", 1_200, 0, 10_000_000),
    rateLimitNetworkPerMinute: integer("BSS_RATE_LIMIT_NETWORK_PER_MINUTE", 600_000, 0, 100_000_000),
    defaultCurrency: checked("BSS_DEFAULT_CURRENCY", "EUR", isCurrencyCode, "an ISO 4217 currency code (EUR)"),
    defaultTaxJurisdiction: checked(
      "BSS_DEFAULT_TAX_JURISDICTION",
      "DE",
      isTaxJurisdiction,
      "an ISO 3166 country code, optionally with a subdivision (DE, US-CA)",
    ),
    wsMaxSocketsPerKey: integer("BSS_WS_MAX_SOCKETS_PER_KEY", 20, 1, 100_000),
  };
  // A movable clock is for acceptance testing; on a server database it would move production's business time.
  if (config.testClock && config.databaseUrl !== undefined && !flag("BSS_ALLOW_TEST_CLOCK_WITH_SERVER", false)) {
    problems.push(
      "BSS_TEST_CLOCK=true with DATABASE_URL is refused: it moves business time for everyone on that database; set BSS_ALLOW_TEST_CLOCK_WITH_SERVER=true for a test server",
    );
  }
  if (config.testClockStart !== null && !config.testClock) {
    problems.push("BSS_TEST_CLOCK_START needs BSS_TEST_CLOCK=true (the wall clock cannot start elsewhere)");
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

/** For entry points: the configuration, or every problem printed and exit code 2. */
export function loadConfigOrExit(env: Env = process.env): Config {
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}
