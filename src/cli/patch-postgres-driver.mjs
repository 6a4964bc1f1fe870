// Runs after `npm install` / `npm ci` (package.json "postinstall"): guards postgres.js 3.4.x's write scheduler,
// whose unguarded `socket.write` throws an uncatchable TypeError ("Cannot read properties of null (reading
// 'write')") from a setImmediate when a connection closes with a small write buffered, taking the whole process
// down (porsager/postgres#1066, #1154, #1208; fixes proposed in #1168, #1176, #1209, none released). The guard:
// a write on a closed connection settles its query with CONNECTION_CLOSED (the caller's catch sees it; our pool
// then heals) instead of throwing, and closing drops the buffered write and its timer. Idempotent; a driver that
// no longer has the unguarded code is left alone. Plain JavaScript: it runs before anything is compiled.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const MARK = "/* bss: guarded nextWrite */";
const UNGUARDED = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`;
const GUARDED = `  function nextWrite(fn) {
    ${MARK}
    if (socket === null) {
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options, socket))
      return false
    }
    const x = socket.write(chunk, fn)`;
const CLEARS = "    clearImmediate(nextWriteTimer)\n";
const CLEARS_AND_FORGETS = "    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n";

let root;
try {
  // The package's exports hide package.json: find its folder from its entry point.
  root = path.dirname(createRequire(import.meta.url).resolve("postgres"));
  const isPackage = (folder) =>
    existsSync(path.join(folder, "package.json")) &&
    JSON.parse(readFileSync(path.join(folder, "package.json"), "utf8")).name === "postgres";
  while (!isPackage(root) && path.dirname(root) !== root) root = path.dirname(root);
} catch {
  console.log("[patch-postgres-driver] postgres is not installed: nothing to guard");
  process.exit(0);
}
for (const relative of ["src/connection.js", "cjs/src/connection.js", "cf/src/connection.js"]) {
  const file = path.join(root, relative);
  if (!existsSync(file)) continue;
  const text = readFileSync(file, "utf8");
  if (text.includes(MARK)) continue;
  if (!text.includes(UNGUARDED)) {
    console.log(`[patch-postgres-driver] ${relative}: no unguarded nextWrite (another version?); left as it is`);
    continue;
  }
  writeFileSync(file, text.replace(UNGUARDED, GUARDED).replaceAll(CLEARS, CLEARS_AND_FORGETS));
  console.log(`[patch-postgres-driver] ${relative}: nextWrite guarded`);
}
