import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import t from "tap";

/**
 * postgres.js 3.4.x throws an uncatchable TypeError from its write scheduler when a connection closes with a small
 * write buffered (porsager/postgres#1154, #1208): the process dies. `npm install` runs src/cli/patch-postgres-driver.mjs,
 * which guards it; every build of the driver we load (ESM, CommonJS, Workers) must carry the guard.
 */
t.test("the installed postgres.js carries the nextWrite guard", async (t) => {
  // The package's exports hide package.json; its entry point is two folders below the package.
  const root = path.resolve(path.dirname(createRequire(import.meta.url).resolve("postgres")), "../..");
  t.match(readFileSync(path.join(root, "package.json"), "utf8"), /"name": "postgres"/);
  for (const build of ["src", "cjs/src", "cf/src"]) {
    const source = readFileSync(path.join(root, build, "connection.js"), "utf8");
    t.match(
      source,
      /bss: guarded nextWrite \*\/\n\s+if \(socket === null\) \{/,
      `${build}: a write on a closed connection settles`,
    );
    t.notMatch(
      source,
      /clearImmediate\(nextWriteTimer\)\n(?!\s+chunk = nextWriteTimer = null)/,
      `${build}: closing forgets the buffered write`,
    );
  }
});
