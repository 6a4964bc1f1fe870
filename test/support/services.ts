import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import postgres from "postgres";

/**
 * Throwaway PostgreSQL and Redis servers from the binaries Debian installs, for test runs on machines
 * without running services and for fault tests that must kill a server no other test is using
 * (DESIGN.md §5). Each lives in a temp directory and dies with its process group.
 */

export interface Throwaway {
  url: string;
  stop(): Promise<void>;
}

/** A throwaway server a fault test may take down and bring back. */
export interface Killable extends Throwaway {
  /** PostgreSQL: a fast shutdown, `ms` down, then the same data directory again. Redis: SIGKILL, then a new,
   * empty server on the same port. Resolves once it answers again. */
  restart(ms: number): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

export async function canReachPostgres(url: string): Promise<boolean> {
  const client = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await client`select 1`;
    return true;
  } catch {
    // Unreachable, refused or asking for a password: all mean "not usable as configured".
    return false;
  } finally {
    await client.end({ timeout: 1 });
  }
}

export async function canReachRedis(url: string): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    // Refused or timed out: Redis is not there.
    return false;
  } finally {
    client.disconnect();
  }
}

function postgresBinDir(): string | null {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = path.join(root, version, "bin");
    if (existsSync(path.join(bin, "initdb"))) return bin;
  }
  return null;
}

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** initdb refuses to run as root, so as root the server runs as the postgres user. */
function asPostgresUser(command: string, args: string[]): [string, string[]] {
  return isRoot ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args];
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

async function stopChild(child: ChildProcess, directory: string): Promise<void> {
  if (child.exitCode === null) {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    killGroup(child, "SIGTERM");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
    killGroup(child, "SIGKILL");
  }
  rmSync(directory, { recursive: true, force: true });
}

export async function startThrowawayPostgres(): Promise<Killable | null> {
  const bin = postgresBinDir();
  if (bin === null) return null;
  const directory = mkdtempSync(path.join(tmpdir(), "bss-pg-"));
  const dataDir = path.join(directory, "data");
  if (isRoot) {
    try {
      chownSync(
        directory,
        Number(execFileSync("id", ["-u", "postgres"]).toString().trim()),
        Number(execFileSync("id", ["-g", "postgres"]).toString().trim()),
      );
    } catch {
      // No postgres user: this machine cannot run a throwaway server as root.
      rmSync(directory, { recursive: true, force: true });
      return null;
    }
  }
  try {
    const [initCommand, initArgs] = asPostgresUser(path.join(bin, "initdb"), [
      "-D",
      dataDir,
      "-A",
      "trust",
      "-U",
      "postgres",
      "--no-sync",
    ]);
    execFileSync(initCommand, initArgs, { stdio: "ignore" });
  } catch {
    // initdb failed (disk, permissions): report no throwaway server rather than a half-made one.
    rmSync(directory, { recursive: true, force: true });
    return null;
  }
  const port = await freePort();
  const [command, args] = asPostgresUser(path.join(bin, "postgres"), [
    "-D",
    dataDir,
    "-p",
    String(port),
    "-k",
    directory,
    "-c",
    "listen_addresses=127.0.0.1",
    "-c",
    "max_connections=200",
  ]);
  let child = spawn(command, args, { detached: true, stdio: "ignore" });
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  if (!(await waitUntil(() => canReachPostgres(url), 20_000))) {
    await stopChild(child, directory);
    return null;
  }
  return {
    url,
    stop: () => stopChild(child, directory),
    async restart(ms) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      killGroup(child, "SIGINT");
      await exited;
      await new Promise((resolve) => setTimeout(resolve, ms));
      child = spawn(command, args, { detached: true, stdio: "ignore" });
      if (!(await waitUntil(() => canReachPostgres(url), 20_000))) throw new Error("PostgreSQL did not come back");
    },
  };
}

export async function startThrowawayRedis(): Promise<Killable | null> {
  const binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].find((candidate) => existsSync(candidate));
  if (binary === undefined) return null;
  const directory = mkdtempSync(path.join(tmpdir(), "bss-redis-"));
  const port = await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory];
  let child = spawn(binary, args, { detached: true, stdio: "ignore" });
  const url = `redis://127.0.0.1:${port}`;
  if (!(await waitUntil(() => canReachRedis(url), 10_000))) {
    await stopChild(child, directory);
    return null;
  }
  return {
    url,
    stop: () => stopChild(child, directory),
    async restart(ms) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      killGroup(child, "SIGKILL");
      await exited;
      await new Promise((resolve) => setTimeout(resolve, ms));
      child = spawn(binary, args, { detached: true, stdio: "ignore" });
      if (!(await waitUntil(() => canReachRedis(url), 10_000))) throw new Error("Redis did not come back");
    },
  };
}

/** A throwaway three-node Redis Cluster on loopback (no replicas), every slot assigned, for the cluster test. */
export async function startThrowawayRedisCluster(): Promise<(Throwaway & { nodes: string[] }) | null> {
  const binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].find((candidate) => existsSync(candidate));
  const cli = ["/usr/bin/redis-cli", "/usr/local/bin/redis-cli"].find((candidate) => existsSync(candidate));
  if (binary === undefined || cli === undefined) return null;
  const directory = mkdtempSync(path.join(tmpdir(), "bss-redis-cluster-"));
  const ports = [await freePort(), await freePort(), await freePort()];
  const children = ports.map((port) =>
    spawn(
      binary,
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        path.join(directory, `nodes-${port}.conf`),
        "--cluster-node-timeout",
        "5000",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        directory,
      ],
      { detached: true, stdio: "ignore" },
    ),
  );
  const nodes = ports.map((port) => `redis://127.0.0.1:${port}`);
  const stop = async () => {
    await Promise.all(children.map((child) => stopChild(child, directory)));
  };
  if (!(await waitUntil(async () => (await Promise.all(nodes.map(canReachRedis))).every(Boolean), 10_000))) {
    await stop();
    return null;
  }
  try {
    execFileSync(
      cli,
      ["--cluster", "create", ...ports.map((port) => `127.0.0.1:${port}`), "--cluster-replicas", "0", "--cluster-yes"],
      {
        stdio: "ignore",
      },
    );
  } catch {
    await stop();
    return null;
  }
  const ready = await waitUntil(async () => {
    const states = await Promise.all(
      nodes.map(async (url) => {
        const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        client.on("error", () => {});
        try {
          await client.connect();
          return /cluster_state:ok/.test(String(await client.call("CLUSTER", "INFO")));
        } catch {
          return false;
        } finally {
          client.disconnect();
        }
      }),
    );
    return states.every(Boolean);
  }, 20_000);
  if (!ready) {
    await stop();
    return null;
  }
  return { url: nodes[0] as string, nodes, stop };
}
