import { notFound } from "../../platform/errors.js";
import { SERVICES } from "../catalog/index.js";
import { USAGE_SPECIFICATION_PATH } from "./usage.service.js";

type Service = (typeof SERVICES)[number];

const COMMON = [
  ["cdrId", "string", 1, "the element's own id of the record; with source, the idempotency key"],
  ["source", "string", 1, "the registered element that produced the record"],
  ["servedMSISDN", "string", 0, "the charged subscriber's number, normalized to E.164 with the source's rules"],
  ["servedIMSI", "string", 0, "the charged subscriber's IMSI (servedMSISDN or servedIMSI is required)"],
  ["recordOpeningTime", "string", 1, "ISO 8601 with an offset"],
  ["direction", "string", 0, "outgoing (default) or incoming"],
  ["visitedNetwork", "string", 0, "PLMN id (MCC+MNC) when roaming"],
  ["ratingGroup", "integer", 0, "the rating group of the service"],
] as const;

const BY_SERVICE: Record<Service, ReadonlyArray<readonly [string, string, number, string]>> = {
  voice: [
    ["calledNumber", "string", 1, "the other party: the called number, or the caller for incoming calls"],
    ["duration", "integer", 1, "seconds charged (0 to 86400)"],
  ],
  sms: [
    ["calledNumber", "string", 1, "the recipient (or sender for incoming messages)"],
    ["messages", "integer", 0, "messages in the record (1 to 100, default 1)"],
  ],
  data: [
    ["dataVolumeUplink", "integer", 0, "bytes sent"],
    ["dataVolumeDownlink", "integer", 0, "bytes received (one of the two volumes is required)"],
    ["duration", "integer", 0, "seconds of the session, recorded"],
  ],
};

/** TMF635 usage specifications: the three record types and the characteristics each carries (API.md). */
export function usageSpecifications() {
  return SERVICES.map((service) => usageSpecification(service));
}

export function usageSpecification(id: string) {
  if (!(SERVICES as readonly string[]).includes(id)) throw notFound("usageSpecification", id);
  const service = id as Service;
  return {
    id: service,
    href: `${USAGE_SPECIFICATION_PATH}/${service}`,
    "@type": "UsageSpecification" as const,
    name: service,
    description: `a ${service} CDR as network elements send it (POST /api/v1/cdrs or usage)`,
    lifecycleStatus: "Active",
    specCharacteristic: [...COMMON, ...BY_SERVICE[service]].map(([name, valueType, min, description]) => ({
      name,
      valueType,
      configurable: false,
      description,
      minCardinality: min,
    })),
  };
}
