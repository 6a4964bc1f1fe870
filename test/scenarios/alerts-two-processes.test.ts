import { spawn } from "node:child_process";
import t from "tap";
import { postCdrs, voiceCdr } from "../support/charging.js";
import { hasServers, startEngine } from "../support/engine.js";
import { activateLine, orderReadyAccount } from "../support/fixtures.js";
import { freePort } from "../support/services.js";
import { connectLive } from "../support/ws.js";

/**
 * Two API processes on one PostgreSQL and Redis: a subscriber's WebSocket is open on the second (`npm start` as
 * a child process); the crossing is rated in the first. The alert crosses processes through Redis pub/sub.
 */

t.test("an alert rated in one API process reaches a client connected to another", { skip: !hasServers }, async (t) => {
  const engine = await startEngine(t);
  const { accountId } = await orderReadyAccount(engine, { accountType: "prepaid" });
  await engine.request("POST", "/api/v1/cdr-sources", { body: { id: "msc-1", countryCode: "49" } });
  const { msisdn } = await activateLine(engine, accountId, "plan-prepaid-payg");
  const issuedKey = await engine.request("POST", "/api/v1/api-keys", {
    body: { name: "subscriber on two processes", role: "subscriber", billingAccountId: accountId },
  });
  const { key: own, href: ownHref } = issuedKey.json();

  const port = await freePort();
  const config = engine.config;
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      DATABASE_URL: config.databaseUrl,
      REDIS_URL: config.redisUrl,
      BSS_REDIS_KEY_PREFIX: config.redisKeyPrefix,
      BSS_SECRETS_KEY: config.secretsKey?.toString("hex"),
      BSS_MIGRATE_ON_START: "false",
      ADMIN_API_KEY: "second-process-admin-key-0123456789abcdef",
      LOG_LEVEL: "error",
    },
    stdio: ["ignore", "ignore", "inherit"],
    detached: true,
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  t.teardown(async () => {
    if (child.exitCode === null) process.kill(-(child.pid as number), "SIGTERM");
    await exited;
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ready = await fetch(`${base}/ready`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error("the second API process did not start");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  // The ticket from the second process (its own clock), the connection to it.
  const issued = await fetch(`${base}/api/v1/ws/tickets`, {
    method: "POST",
    headers: { authorization: `Bearer ${own}`, "content-type": "application/json" },
    body: "{}",
  });
  t.equal(issued.status, 201);
  const { ticket } = (await issued.json()) as { ticket: string };
  const client = await connectLive(base, `?ticket=${ticket}`);
  await client.waitFor("ready");

  // Rated here, in the first process: the balance falls below zero (exhausted, then barred).
  await postCdrs(engine, [voiceCdr(msisdn, "+33123456789", 120)]);
  await engine.app.services.charging.rating.rateOnce("test");
  await client.waitFor("alert", 2, 10_000);
  t.same(
    client.alerts().map((alert) => alert.kind),
    ["balanceExhausted", "lineBarred"],
    "both alerts crossed to the other process",
  );
  t.equal(engine.app.services.live.connections, 0, "the client is on the other process, not this one");

  // Revoked here, in the first process: the socket on the second closes at once (pub/sub), not at its re-check.
  t.equal((await engine.request("DELETE", ownHref)).statusCode, 204);
  const closed = await Promise.race([
    client.closed,
    new Promise((resolve) => setTimeout(() => resolve("still open"), 2_000)),
  ]);
  t.same(closed, { code: 4401, reason: "the API key was revoked or expired" }, "revocation crossed the processes");
});
