CREATE TABLE "outbox_events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "outbox_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"event_id" uuid NOT NULL,
	"event_type" text NOT NULL,
	"api" text NOT NULL,
	"resource_type" text NOT NULL,
	"resource_id" text NOT NULL,
	"event_time" timestamp with time zone NOT NULL,
	"payload" jsonb NOT NULL,
	CONSTRAINT "outbox_events_event_id_unique" UNIQUE("event_id")
);
--> statement-breakpoint
CREATE TABLE "hub_deliveries" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "hub_deliveries_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"subscription_id" uuid NOT NULL,
	"outbox_id" bigint NOT NULL,
	"status" text NOT NULL,
	"attempts" integer NOT NULL,
	"next_attempt_at" timestamp with time zone NOT NULL,
	"locked_until" timestamp with time zone,
	"last_status_code" integer,
	"last_error" text,
	"delivered_at" timestamp with time zone,
	CONSTRAINT "hub_deliveries_status_check" CHECK ("hub_deliveries"."status" in ('pending', 'sending', 'delivered', 'failed'))
);
--> statement-breakpoint
CREATE TABLE "hub_delivery_attempts" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "hub_delivery_attempts_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"delivery_id" bigint NOT NULL,
	"attempt" integer NOT NULL,
	"attempted_at" timestamp with time zone NOT NULL,
	"status_code" integer,
	"error" text,
	"duration_ms" integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE "hub_subscriptions" (
	"id" uuid PRIMARY KEY NOT NULL,
	"api" text NOT NULL,
	"callback" text NOT NULL,
	"query" text,
	"sealed_secret" text NOT NULL,
	"status" text NOT NULL,
	"parked_reason" text,
	"created_by" uuid,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "hub_subscriptions_status_check" CHECK ("hub_subscriptions"."status" in ('active', 'parked'))
);
--> statement-breakpoint
CREATE TABLE "outbox_cursors" (
	"name" text PRIMARY KEY NOT NULL,
	"last_id" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "hub_deliveries" ADD CONSTRAINT "hub_deliveries_subscription_id_hub_subscriptions_id_fk" FOREIGN KEY ("subscription_id") REFERENCES "public"."hub_subscriptions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "hub_deliveries" ADD CONSTRAINT "hub_deliveries_outbox_id_outbox_events_id_fk" FOREIGN KEY ("outbox_id") REFERENCES "public"."outbox_events"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "hub_delivery_attempts" ADD CONSTRAINT "hub_delivery_attempts_delivery_id_hub_deliveries_id_fk" FOREIGN KEY ("delivery_id") REFERENCES "public"."hub_deliveries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "outbox_events_resource_idx" ON "outbox_events" USING btree ("resource_type","resource_id");--> statement-breakpoint
CREATE UNIQUE INDEX "hub_deliveries_once_idx" ON "hub_deliveries" USING btree ("subscription_id","outbox_id");--> statement-breakpoint
CREATE INDEX "hub_deliveries_due_idx" ON "hub_deliveries" USING btree ("status","next_attempt_at");--> statement-breakpoint
CREATE INDEX "hub_delivery_attempts_delivery_idx" ON "hub_delivery_attempts" USING btree ("delivery_id");--> statement-breakpoint
CREATE INDEX "hub_subscriptions_api_idx" ON "hub_subscriptions" USING btree ("api");