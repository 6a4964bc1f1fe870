import t from "tap";

/**
 * A test process that ends its tests but does not exit (a handle left open) or a teardown step that never
 * finishes would otherwise show only as tap's bare "timeout!" two minutes later. These say which step hung and
 * what was still open, and fail at once.
 */

/** What keeps the event loop alive: sockets with their addresses, servers, timers, child processes. */
export function openHandles(): string[] {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.map((handle) => {
    const name = (handle as object).constructor?.name ?? typeof handle;
    const socket = handle as { remoteAddress?: string; remotePort?: number; localPort?: number; fd?: number };
    if (name === "Socket" && socket.remotePort !== undefined)
      return `Socket ${socket.remoteAddress}:${socket.remotePort} (local ${socket.localPort})`;
    if (name === "Server") {
      const address = (handle as { address(): unknown }).address();
      return `Server ${JSON.stringify(address)}`;
    }
    if (name === "ChildProcess") return `ChildProcess ${(handle as { pid?: number }).pid}`;
    return name;
  });
}

/** Resolves with `step` or throws, naming the step and the open handles, when it takes longer than `ms`. */
export async function within<T>(label: string, ms: number, step: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${label} did not finish in ${ms} ms; open: ${openHandles().join(", ")}`)),
      ms,
    );
    timer.unref();
  });
  try {
    return await Promise.race([step, expired]);
  } finally {
    clearTimeout(timer);
  }
}

let armed = false;
/** Once per process: after the file's last test, exit with the open handles listed if the process lingers. */
export function armExitWatchdog(ms = 20_000): void {
  if (armed) return;
  armed = true;
  t.teardown(() => {
    const timer = setTimeout(() => {
      process.stderr.write(
        `[watchdog] the tests ended ${ms} ms ago but the process is still running; open: ${openHandles().join(", ")}\n`,
      );
      process.exit(1);
    }, ms);
    timer.unref();
  });
}
