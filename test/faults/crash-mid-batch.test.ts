import t from "tap";
import { hasServers } from "../support/engine.js";
import { crashScenario } from "../support/faults.js";

/** DESIGN.md §5: a rating worker killed at the crash point `mid-batch` loses nothing and charges nothing twice. */
t.test("a worker killed at mid-batch", { skip: !hasServers && "needs PostgreSQL and Redis" }, (t) =>
  crashScenario(t, "mid-batch"),
);
