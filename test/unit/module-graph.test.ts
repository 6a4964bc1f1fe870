import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import t from "tap";

/**
 * The house rules of STYLE.md, checked over src/modules: a module reaches another only through that module's
 * index.ts (its service and the types the service speaks in), never its repository, tables, routes or pure files;
 * the one exception is a tables file naming another module's table in a foreign key. And the modules form no
 * cycle. A new import that breaks either rule fails here with the file and the import.
 */

const MODULES = "src/modules";

interface ModuleImport {
  from: string;
  file: string;
  to: string;
  target: string;
}

function moduleImports(): ModuleImport[] {
  const found: ModuleImport[] = [];
  for (const entry of readdirSync(MODULES, { recursive: true }) as string[]) {
    if (!entry.endsWith(".ts")) continue;
    const file = path.join(MODULES, entry);
    const from = entry.split(path.sep)[0] as string;
    const source = readFileSync(file, "utf8");
    for (const match of source.matchAll(/(?:import|export)\s[^;]*?from\s+"([^"]+)"/g)) {
      const specifier = match[1] as string;
      if (!specifier.startsWith(".")) continue;
      const resolved = path.relative(MODULES, path.resolve(path.dirname(file), specifier));
      if (resolved.startsWith("..")) continue; // platform/ and shared/ are below every module
      const to = resolved.split(path.sep)[0] as string;
      if (to !== from) found.push({ from, file, to, target: resolved.split(path.sep).slice(1).join("/") });
    }
  }
  return found;
}

const imports = moduleImports();

t.test("a module reaches another only through its index.ts (foreign keys between tables excepted)", async (t) => {
  const offending = imports.filter(
    (entry) =>
      entry.target !== "index.js" && !(entry.file.endsWith(".tables.ts") && entry.target.endsWith(".tables.js")),
  );
  t.same(
    offending.map((entry) => `${entry.file} imports ${entry.to}/${entry.target}`),
    [],
    "no import of another module's internals",
  );
  t.ok(imports.length > 10, `the check saw the modules' imports (${imports.length})`);
});

t.test("the modules form no cycle", async (t) => {
  const edges = new Map<string, Set<string>>();
  for (const entry of imports) {
    if (!edges.has(entry.from)) edges.set(entry.from, new Set());
    edges.get(entry.from)?.add(entry.to);
  }
  const cycles: string[] = [];
  const visit = (module: string, trail: string[]) => {
    for (const next of edges.get(module) ?? []) {
      const at = trail.indexOf(next);
      if (at >= 0) cycles.push([...trail.slice(at), next].join(" → "));
      else visit(next, [...trail, next]);
    }
  };
  for (const module of edges.keys()) visit(module, [module]);
  t.same([...new Set(cycles)], [], "no module depends on itself through others");
  const graph = [...edges]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([module, to]) => `${module} → ${[...to].sort().join(", ")}`);
  t.comment(`module graph:\n${graph.join("\n")}`);
});
