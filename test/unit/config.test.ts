import t from "tap";
import { ConfigError, loadConfig } from "../../src/config.js";

t.test("defaults run the embedded engine with no configuration", async (t) => {
  const config = loadConfig({});
  t.equal(config.port, 3000);
  t.equal(config.host, "127.0.0.1");
  t.equal(config.databaseUrl, undefined);
  t.equal(config.redisUrl, undefined);
  t.equal(config.migrateOnStart, true);
  t.ok(Object.isFrozen(config));
});

t.test("every problem is listed at once", async (t) => {
  const error = t.throws(() =>
    loadConfig({
      PORT: "99999",
      DATABASE_URL: "mysql://x",
      REDIS_URL: "not a url",
      ADMIN_API_KEY: "short",
      LOG_LEVEL: "loud",
      BSS_MIGRATE_ON_START: "maybe",
      BSS_BODY_LIMIT_BYTES: "12",
    }),
  ) as ConfigError;
  t.ok(error instanceof ConfigError);
  t.equal(error.problems.length, 8, error.message);
  t.match(error.message, "BSS_SECRETS_KEY is required with DATABASE_URL");
  for (const name of [
    "PORT",
    "DATABASE_URL",
    "REDIS_URL",
    "ADMIN_API_KEY",
    "LOG_LEVEL",
    "BSS_MIGRATE_ON_START",
    "BSS_BODY_LIMIT_BYTES",
  ]) {
    t.match(error.message, name);
  }
  t.notMatch(error.message, "short", "the key's value is not echoed");
});

t.test("valid settings are read", async (t) => {
  const config = loadConfig({
    PORT: "8080",
    HOST: "0.0.0.0",
    DATABASE_URL: "postgres://bss@db:5432/bss",
    REDIS_URL: "redis://cache:6379",
    ADMIN_API_KEY: "a".repeat(40),
    LOG_LEVEL: "warn",
    BSS_MIGRATE_ON_START: "false",
    BSS_SECRETS_KEY: "ab".repeat(32),
  });
  t.match(config, { port: 8080, host: "0.0.0.0", logLevel: "warn", migrateOnStart: false });
});

t.test("the test clock's start: an ISO instant with its zone, and only with the test clock", async (t) => {
  const started = loadConfig({ BSS_TEST_CLOCK: "true", BSS_TEST_CLOCK_START: "2027-01-17T08:59:00Z" });
  t.equal(started.testClockStart?.toISOString(), "2027-01-17T08:59:00.000Z");
  t.equal(loadConfig({}).testClockStart, null);
  for (const [env, problem] of [
    [
      { BSS_TEST_CLOCK: "true", BSS_TEST_CLOCK_START: "2027-01-17" },
      /BSS_TEST_CLOCK_START must be an ISO 8601 instant/,
    ],
    [{ BSS_TEST_CLOCK: "true", BSS_TEST_CLOCK_START: "2027-02-30T00:00:00Z" }, /BSS_TEST_CLOCK_START must be/],
    [{ BSS_TEST_CLOCK_START: "2027-01-17T08:59:00Z" }, /BSS_TEST_CLOCK_START needs BSS_TEST_CLOCK=true/],
  ] as const) {
    const error = t.throws(() => loadConfig(env)) as ConfigError;
    t.match(error.message, problem);
  }
});
