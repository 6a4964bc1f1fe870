import { buildApp } from "../app.js";
import { ConfigError, loadConfig } from "../config.js";
import { CatalogError, loadCatalog } from "../modules/catalog/catalog-load.js";
import { SYSTEM_ACTOR } from "../platform/audit.js";
import { DataFolderInUse } from "../platform/database.js";

/**
 * `npm run catalog:validate [dir]`: checks the catalog files and lists every problem with file and path.
 * `npm run catalog:publish [dir]`: validates, then publishes what changed as new versions (DATABASE_URL, or
 * the embedded database). Exit code 1 when the catalog has problems; nothing is published then.
 */
const [command, directoryArgument] = process.argv.slice(2);

try {
  const config = loadConfig();
  const directory = directoryArgument ?? config.catalogDir;
  if (command === "validate") {
    const catalog = loadCatalog(directory);
    process.stdout.write(
      `catalog ${catalog.root.id} is valid: ${catalog.offerings.length} offerings, ${catalog.tariffs.length} tariffs, ` +
        `currencies ${catalog.root.currencies.join(", ")}\n`,
    );
  } else if (command === "publish") {
    const app = await buildApp(
      { ...config, catalogRefreshSeconds: 0 },
      { logger: false, holder: "npm run catalog:publish" },
    );
    try {
      const result = await app.services.catalog.publish(SYSTEM_ACTOR, directory);
      process.stdout.write(
        result.publicationId === null
          ? "nothing changed; no new publication\n"
          : `publication ${result.publicationId}: ${result.created} created, ${result.changed} changed, ${result.retired} retired\n`,
      );
    } finally {
      await app.close();
    }
  } else {
    process.stderr.write("usage: catalog (validate|publish) [directory]\n");
    process.exit(2);
  }
} catch (error) {
  if (error instanceof CatalogError || error instanceof ConfigError || error instanceof DataFolderInUse) {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  throw error;
}
