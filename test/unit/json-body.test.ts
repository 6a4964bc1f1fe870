import t from "tap";
import { AppError } from "../../src/platform/errors.js";
import { parseJsonBody } from "../../src/platform/json-body.js";

const parse = (text: string) => parseJsonBody(Buffer.from(text, "utf8"));

function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error("expected a refusal");
}

t.test("valid JSON parses, escaped keys and strings included", async (t) => {
  t.same(parse('{"a":[1,{"b":"x\\"y"}],"c":null}'), { a: [1, { b: 'x"y' }], c: null });
  t.same(parse('{"a":{"k":1},"b":{"k":2}}'), { a: { k: 1 }, b: { k: 2 } }, "the same key in sibling objects is fine");
  t.same(parse('[{"k":1},{"k":2}]'), [{ k: 1 }, { k: 2 }]);
  t.same(parse('{"ключ":"значение ✓"}'), { ключ: "значение ✓" });
});

t.test("duplicate keys are found at any depth, escaped or not", async (t) => {
  t.equal(refusal(() => parse('{"a":1,"a":2}')).field, "a");
  t.equal(refusal(() => parse('{"x":{"a":1,"\\u0061":2}}')).field, "x.a");
  t.equal(refusal(() => parse('{"list":[{"k":1},{"k":1,"k":2}]}')).field, "list[1].k");
});

t.test("NUL, lone surrogates, invalid UTF-8 and prototype keys are refused", async (t) => {
  t.equal(refusal(() => parse('{"list":["ok","a\\u0000"]}')).field, "list[1]");
  t.equal(refusal(() => parse('{"s":"\\udc00"}')).code, "invalid_string");
  t.equal(refusal(() => parseJsonBody(Buffer.from([0x22, 0xff, 0x22]))).code, "invalid_encoding");
  t.equal(refusal(() => parse('{"__proto__":{}}')).code, "malformed_json");
  t.equal(refusal(() => parse('{"constructor":{"prototype":{}}}')).code, "malformed_json");
  t.equal(refusal(() => parse("   ")).code, "malformed_json");
  t.equal(refusal(() => parse("{'a':1}")).code, "malformed_json");
});
