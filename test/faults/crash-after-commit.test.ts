import t from "tap";
import { hasServers } from "../support/engine.js";
import { crashScenario } from "../support/faults.js";

/** DESIGN.md §5: a rating worker killed at the crash point `after-commit` loses nothing and charges nothing twice. */
t.test("a worker killed at after-commit", { skip: !hasServers && "needs PostgreSQL and Redis" }, (t) =>
  crashScenario(t, "after-commit"),
);
