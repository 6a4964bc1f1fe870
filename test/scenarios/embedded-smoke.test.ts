import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import t from "tap";
import { freePort } from "../support/services.js";

/**
 * The newcomer's path: the server process started with no configuration runs on embedded PGlite,
 * prints a generated admin key once, serves a customer and account over real HTTP, shuts down cleanly on
 * SIGTERM, and on the next start keeps its data and its key.
 */

interface Server {
  child: ChildProcess;
  base: string;
  stderr: () => string;
}

async function startServer(dataDir: string, port: number): Promise<Server> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), BSS_DATA_DIR: dataDir, LOG_LEVEL: "warn" };
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  delete env.ADMIN_API_KEY;
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdout?.resume();
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited early: ${stderr}`);
    try {
      if ((await fetch(`${base}/ready`)).ok) return { child, base, stderr: () => stderr };
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  child.kill("SIGKILL");
  throw new Error(`server did not become ready: ${stderr}`);
}

async function stopServer(server: Server): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => server.child.once("exit", (code) => resolve(code)));
  server.child.kill("SIGTERM");
  return exited;
}

t.test("npm start with no configuration: embedded engine, generated key, real HTTP, clean restart", async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), "bss-smoke-"));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const port = await freePort();

  const first = await startServer(dataDir, port);
  t.teardown(() => first.child.kill("SIGKILL"));
  const key = /\n\s+(bss_[0-9a-f]{8}_[A-Za-z0-9_-]{43})\n/.exec(first.stderr())?.[1];
  t.ok(key, "the first start printed a generated admin key");
  const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" };

  const ready = (await (await fetch(`${first.base}/ready`)).json()) as { checks: { redis: unknown } };
  t.same(ready.checks.redis, { status: "embedded" });
  const party = await fetch(`${first.base}/tmf-api/party/v4/individual`, {
    method: "POST",
    headers: auth,
    body: JSON.stringify({ givenName: "Ada", familyName: "Lovelace" }),
  });
  t.equal(party.status, 201);
  const customer = await fetch(`${first.base}/tmf-api/customerManagement/v4/customer`, {
    method: "POST",
    headers: auth,
    body: JSON.stringify({
      name: "Ada",
      engagedParty: { id: ((await party.json()) as { id: string }).id, "@referredType": "Individual" },
    }),
  });
  t.equal(customer.status, 201);
  const account = await fetch(`${first.base}/tmf-api/accountManagement/v4/billingAccount`, {
    method: "POST",
    headers: auth,
    body: JSON.stringify({
      name: "Main",
      relatedParty: [{ id: ((await customer.json()) as { id: string }).id, "@referredType": "Customer" }],
      currency: "EUR",
      taxJurisdiction: "DE",
      creditLimit: { unit: "EUR", value: 49.99 },
    }),
  });
  t.equal(account.status, 201);
  const accountHref = ((await account.json()) as { href: string }).href;
  t.equal(await stopServer(first), 0, "SIGTERM shuts down cleanly");

  const second = await startServer(dataDir, port);
  t.teardown(() => second.child.kill("SIGKILL"));
  t.notMatch(second.stderr(), /admin API key was generated/, "no second key on restart");
  const again = await fetch(`${second.base}${accountHref}`, { headers: auth });
  t.equal(again.status, 200, "the key and the data survived the restart");
  t.same(((await again.json()) as { creditLimit: unknown }).creditLimit, { unit: "EUR", value: 49.99 });

  // A command-line tool never opens the data folder the running server holds: it says who holds it.
  const publish = await runCli(["src/cli/catalog.ts", "publish"], dataDir);
  t.equal(publish.code, 1, "catalog:publish refuses while the server runs");
  t.match(publish.stderr, `in use by the engine on port ${port}`, "and names the server's port");
  t.match(publish.stderr, "stop it first", "and says what to do");
  t.equal(await stopServer(second), 0);
  const published = await runCli(["src/cli/catalog.ts", "publish"], dataDir);
  t.equal(published.code, 0, `with the server stopped it runs: ${published.stderr}`);
});

async function runCli(args: string[], dataDir: string): Promise<{ code: number | null; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, BSS_DATA_DIR: dataDir, LOG_LEVEL: "warn" };
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  const child = spawn(process.execPath, ["--import", "tsx", ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", (exitCode) => resolve(exitCode)));
  return { code, stderr };
}
