CREATE TABLE "cdr_sources" (
	"id" text PRIMARY KEY NOT NULL,
	"description" text,
	"country_code" text NOT NULL,
	"national_prefix" text NOT NULL,
	"international_prefix" text NOT NULL,
	"time_zone" text NOT NULL,
	"status" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "cdr_sources_status_check" CHECK ("cdr_sources"."status" in ('active', 'disabled')),
	CONSTRAINT "cdr_sources_country_code_check" CHECK ("cdr_sources"."country_code" ~ '^[1-9][0-9]{0,2}$')
);
--> statement-breakpoint
CREATE TABLE "usage_keys" (
	"source" text NOT NULL,
	"cdr_id" text NOT NULL,
	"usage_id" uuid NOT NULL,
	"digest" text NOT NULL,
	CONSTRAINT "usage_keys_source_cdr_id_pk" PRIMARY KEY("source","cdr_id")
);
--> statement-breakpoint
CREATE TABLE "usage_records" (
	"id" uuid PRIMARY KEY NOT NULL,
	"source" text NOT NULL,
	"cdr_id" text NOT NULL,
	"format" text NOT NULL,
	"record_type" text NOT NULL,
	"served_msisdn" text,
	"served_imsi" text,
	"called_number" text,
	"direction" text NOT NULL,
	"visited_network" text,
	"rating_group" bigint,
	"started_at" timestamp with time zone NOT NULL,
	"duration" integer,
	"volume_uplink" bigint,
	"volume_downlink" bigint,
	"messages" integer,
	"chargeable" boolean NOT NULL,
	"note" text,
	"product_id" uuid,
	"billing_account_id" uuid,
	"received_at" timestamp with time zone NOT NULL,
	"guided_at" timestamp with time zone,
	CONSTRAINT "usage_records_type_check" CHECK ("usage_records"."record_type" in ('voice', 'sms', 'data')),
	CONSTRAINT "usage_records_format_check" CHECK ("usage_records"."format" in ('native', 'tmf635', 'freeswitch', 'asterisk')),
	CONSTRAINT "usage_records_direction_check" CHECK ("usage_records"."direction" in ('outgoing', 'incoming')),
	CONSTRAINT "usage_records_guided_check" CHECK (("usage_records"."product_id" is null) = ("usage_records"."billing_account_id" is null))
);
--> statement-breakpoint
CREATE TABLE "usage_suspense" (
	"usage_id" uuid PRIMARY KEY NOT NULL,
	"reason" text NOT NULL,
	"message" text NOT NULL,
	"since" timestamp with time zone NOT NULL,
	"attempts" integer NOT NULL,
	"last_attempt_at" timestamp with time zone NOT NULL,
	"resolved_at" timestamp with time zone,
	"resolution" text,
	CONSTRAINT "usage_suspense_resolution_check" CHECK (("usage_suspense"."resolved_at" is null) = ("usage_suspense"."resolution" is null))
);
--> statement-breakpoint
CREATE INDEX "usage_records_account_idx" ON "usage_records" USING btree ("billing_account_id","started_at");--> statement-breakpoint
CREATE INDEX "usage_records_product_idx" ON "usage_records" USING btree ("product_id","started_at");--> statement-breakpoint
CREATE INDEX "usage_records_received_idx" ON "usage_records" USING btree ("received_at");--> statement-breakpoint
CREATE INDEX "usage_suspense_open_idx" ON "usage_suspense" USING btree ("reason","usage_id") WHERE "usage_suspense"."resolved_at" is null;