import SerializerSelector from "@fastify/fast-json-stringify-compiler";

type Serializer = (document: unknown) => string;
type RouteDefinition = Parameters<ReturnType<ReturnType<typeof SerializerSelector>>>[0];

/** Serializers built so far in this process, by the schema's content (with the shared schemas it may refer to). */
const built = new Map<string, Serializer>();

/**
 * Fastify's response serializer factory (fast-json-stringify, as Fastify's default), with each serializer built once
 * per process for a given schema: every app instance (the tests start hundreds; the CLI and workers start their
 * own) registers about 150 routes whose response schemas repeat, and building a serializer costs a millisecond or
 * more while its text is a few microseconds to key. A serializer is a pure function of its schema, so sharing it
 * between instances changes nothing but the start-up time.
 */
export function cachedSerializerFactory() {
  const build = SerializerSelector();
  return (externalSchemas?: unknown, options?: Parameters<ReturnType<typeof SerializerSelector>>[1]) => {
    const compile = build(externalSchemas, options);
    const context = JSON.stringify([externalSchemas ?? null, options ?? null]);
    return (route: RouteDefinition): Serializer => {
      const key = `${context}\u0000${JSON.stringify(route.schema ?? null)}`;
      let serializer = built.get(key);
      if (serializer === undefined) {
        serializer = compile(route);
        built.set(key, serializer);
      }
      return serializer;
    };
  };
}
