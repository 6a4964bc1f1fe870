import { AppError, invalidField } from "../../platform/errors.js";
import { roundMoney } from "../../shared/money.js";
import type { CatalogService, Offering } from "../catalog/index.js";
import { type CompiledTariff, compileTariff, TariffError } from "../catalog/index.js";
import { destinationOf, priceEvent, RatingError, type RatingEvent, roamingZoneOf } from "./pricer.js";
import type { Quote, QuoteRequest } from "./quote.schemas.js";

const UNITS = { voice: "second", sms: "message", data: "byte" } as const;

/** The usage event a quote describes, in the pricer's terms (3GPP field names in, units out). */
function ratingEvent(request: QuoteRequest): RatingEvent {
  const event = request.event;
  const quantity =
    event.recordType === "voice"
      ? event.duration
      : event.recordType === "sms"
        ? (event.messages ?? 1)
        : event.dataVolumeUplink === undefined && event.dataVolumeDownlink === undefined
          ? undefined
          : (event.dataVolumeUplink ?? 0) + (event.dataVolumeDownlink ?? 0);
  if (quantity === undefined) {
    throw invalidField(
      event.recordType === "voice" ? "event.duration" : "event.dataVolumeDownlink",
      `is required for a ${event.recordType} event`,
    );
  }
  return {
    service: event.recordType,
    direction: event.direction ?? "outgoing",
    startMs: Date.parse(event.recordOpeningTime),
    quantity,
    ...(event.calledNumber !== undefined ? { calledNumber: event.calledNumber } : {}),
    ...(event.visitedNetwork !== undefined ? { visitedNetwork: event.visitedNetwork } : {}),
  };
}

/** The plan's allowances that cover the event, summed at their full grant (DESIGN.md §4). */
function planAllowanceUnits(plan: Offering, tariff: CompiledTariff, event: RatingEvent): number {
  if (event.direction === "incoming") return 0;
  const roaming = roamingZoneOf(tariff, event.visitedNetwork);
  const destination = destinationOf(tariff, event.calledNumber);
  return (plan.allowances ?? [])
    .filter((allowance) => allowance.service === event.service)
    .filter((allowance) =>
      roaming === "home" ? allowance.roaming === undefined : (allowance.roaming ?? []).includes(roaming),
    )
    .filter(
      (allowance) =>
        event.service === "data" ||
        allowance.destinations === undefined ||
        (destination !== null && allowance.destinations.includes(destination)),
    )
    .reduce((sum, allowance) => sum + allowance.units, 0);
}

/** Prices hypothetical events against a plan, a catalog tariff or an inline tariff. Charges nothing. */
export class QuoteService {
  constructor(private readonly catalog: CatalogService) {}

  private async resolve(request: QuoteRequest): Promise<{ tariff: CompiledTariff; version?: number; plan?: Offering }> {
    const sources = [request.plan, request.tariff, request.inlineTariff].filter((source) => source !== undefined);
    if (sources.length !== 1) throw invalidField("plan", "name exactly one of plan, tariff or inlineTariff");
    if (request.applyPlanAllowances && request.plan === undefined) {
      throw invalidField("applyPlanAllowances", "needs a plan");
    }
    if (request.applyPlanAllowances && request.allowanceUnits !== undefined) {
      throw invalidField("allowanceUnits", "cannot be combined with applyPlanAllowances");
    }
    if (request.inlineTariff !== undefined) {
      try {
        return { tariff: compileTariff(request.inlineTariff) };
      } catch (error) {
        if (!(error instanceof TariffError)) throw error;
        const first = error.problems[0];
        throw new AppError(
          "bad_request",
          "invalid_tariff",
          `inlineTariff has ${error.problems.length} problem(s): ${error.message}`,
          first ? `inlineTariff.${first.path}` : "inlineTariff",
        );
      }
    }
    const snapshot = await this.catalog.snapshot();
    if (request.tariff !== undefined) {
      const entry = snapshot.tariffs.get(request.tariff);
      if (entry === undefined)
        throw new AppError(
          "unprocessable",
          "unknown_tariff",
          `tariff: the catalog has no tariff ${request.tariff}`,
          "tariff",
        );
      return { tariff: entry.compiled, version: entry.info.version };
    }
    const planId = request.plan as string;
    const plan = snapshot.offerings.get(planId)?.content;
    if (plan === undefined || plan.kind !== "plan") {
      throw new AppError("unprocessable", "unknown_plan", `plan: the catalog has no plan ${planId}`, "plan");
    }
    const currencies = Object.keys(plan.tariffs ?? {});
    const currency = request.currency ?? (currencies.length === 1 ? currencies[0] : undefined);
    if (currency === undefined)
      throw invalidField("currency", `is required: plan ${planId} is sold in ${currencies.join(", ")}`);
    const tariffId = plan.tariffs?.[currency];
    const entry = tariffId === undefined ? undefined : snapshot.tariffs.get(tariffId);
    if (entry === undefined) {
      throw new AppError(
        "unprocessable",
        "unknown_tariff",
        `currency: plan ${planId} has no tariff in ${currency}`,
        "currency",
      );
    }
    return { tariff: entry.compiled, version: entry.info.version, plan };
  }

  async quote(request: QuoteRequest): Promise<Quote> {
    const { tariff, version, plan } = await this.resolve(request);
    const event = ratingEvent(request);
    try {
      const allowance =
        request.applyPlanAllowances && plan ? planAllowanceUnits(plan, tariff, event) : (request.allowanceUnits ?? 0);
      const priced = priceEvent(tariff, event, allowance);
      return {
        "@type": "RatingQuote",
        tariff: { id: tariff.id, ...(version !== undefined ? { version } : {}) },
        currency: priced.currency,
        unit: UNITS[event.service],
        quantity: priced.quantity,
        roaming: priced.roaming,
        ...(priced.destination !== null ? { destination: priced.destination } : {}),
        allowanceUnits: priced.allowanceUnits,
        chargedUnits: priced.chargedUnits,
        parts: priced.parts.map((part) => ({
          rateId: part.rateId,
          band: part.band,
          fromUnit: part.fromUnit,
          toUnit: part.toUnit,
          increments: part.increments,
          incrementUnits: part.incrementUnits,
          chargedUnits: part.chargedUnits,
          price: part.price.toFixed(),
          per: part.per,
          amount: roundMoney(part.amount, 12, "halfEven").toFixed(),
        })),
        connectionFee: priced.connectionFee.toFixed(),
        subtotal: roundMoney(priced.subtotal, 12, "halfEven").toFixed(),
        minimumApplied: priced.minimumApplied,
        maximumApplied: priced.maximumApplied,
        maximumExceeded: priced.maximumExceeded,
        rounding: priced.rounding,
        total: priced.total.toFixed(priced.rounding.decimals),
      };
    } catch (error) {
      if (error instanceof RatingError) {
        throw new AppError(
          "unprocessable",
          error.code,
          error.message,
          error.code === "no_roaming_zone" ? "event.visitedNetwork" : "event",
        );
      }
      throw error;
    }
  }
}
