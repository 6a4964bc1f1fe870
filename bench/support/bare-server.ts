import Fastify from "fastify";

/** The ceiling: a bare Fastify hello-world on the same machine, runtime and loader as the engine. */
const app = Fastify({ logger: false });
app.get("/health", async () => ({ status: "ok" }));
app.get("/hello", async () => ({ hello: "world" }));
await app.listen({ port: Number(process.env.PORT), host: "127.0.0.1" });
process.on("SIGTERM", () => {
  app.close().then(() => process.exit(0));
});
