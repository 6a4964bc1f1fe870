CREATE TABLE "audit_log" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "audit_log_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"occurred_at" timestamp with time zone NOT NULL,
	"request_id" text,
	"actor_key_id" uuid,
	"actor_role" text NOT NULL,
	"action" text NOT NULL,
	"entity_type" text NOT NULL,
	"entity_id" text NOT NULL,
	"before" jsonb,
	"after" jsonb
);
--> statement-breakpoint
CREATE TABLE "api_keys" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"prefix" text NOT NULL,
	"secret_hash" text NOT NULL,
	"role" text NOT NULL,
	"billing_account_id" uuid,
	"created_at" timestamp with time zone NOT NULL,
	"created_by" uuid,
	"expires_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_keys_role_check" CHECK ("api_keys"."role" in ('admin', 'crm', 'network', 'finance', 'subscriber')),
	CONSTRAINT "api_keys_subscriber_binding_check" CHECK (("api_keys"."role" = 'subscriber') = ("api_keys"."billing_account_id" is not null))
);
--> statement-breakpoint
CREATE TABLE "billing_accounts" (
	"id" uuid PRIMARY KEY NOT NULL,
	"customer_id" uuid NOT NULL,
	"name" text NOT NULL,
	"description" text,
	"account_type" text NOT NULL,
	"state" text NOT NULL,
	"currency" text NOT NULL,
	"bill_cycle_day" smallint NOT NULL,
	"payment_terms_days" smallint NOT NULL,
	"time_zone" text NOT NULL,
	"tax_jurisdiction" text NOT NULL,
	"credit_limit" numeric(24, 6),
	"bill_limit" numeric(24, 6),
	"contacts" jsonb NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "billing_accounts_type_check" CHECK ("billing_accounts"."account_type" in ('prepaid', 'postpaid')),
	CONSTRAINT "billing_accounts_state_check" CHECK ("billing_accounts"."state" in ('active', 'suspended', 'closed')),
	CONSTRAINT "billing_accounts_currency_check" CHECK ("billing_accounts"."currency" ~ '^[A-Z]{3}$'),
	CONSTRAINT "billing_accounts_cycle_day_check" CHECK ("billing_accounts"."bill_cycle_day" between 1 and 31),
	CONSTRAINT "billing_accounts_terms_check" CHECK ("billing_accounts"."payment_terms_days" between 0 and 365),
	CONSTRAINT "billing_accounts_credit_limit_check" CHECK ("billing_accounts"."credit_limit" is null or "billing_accounts"."credit_limit" >= 0),
	CONSTRAINT "billing_accounts_bill_limit_check" CHECK ("billing_accounts"."bill_limit" is null or "billing_accounts"."bill_limit" > 0),
	CONSTRAINT "billing_accounts_prepaid_limits_check" CHECK ("billing_accounts"."account_type" = 'postpaid' or ("billing_accounts"."credit_limit" is null and "billing_accounts"."bill_limit" is null))
);
--> statement-breakpoint
CREATE TABLE "customers" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"status" text NOT NULL,
	"status_reason" text,
	"individual_id" uuid,
	"organization_id" uuid,
	"contact_medium" jsonb NOT NULL,
	"valid_from" timestamp with time zone,
	"valid_to" timestamp with time zone,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "customers_status_check" CHECK ("customers"."status" in ('initialized', 'approved', 'suspended', 'closed')),
	CONSTRAINT "customers_one_party_check" CHECK (("customers"."individual_id" is null) <> ("customers"."organization_id" is null))
);
--> statement-breakpoint
CREATE TABLE "individuals" (
	"id" uuid PRIMARY KEY NOT NULL,
	"given_name" text NOT NULL,
	"family_name" text NOT NULL,
	"middle_name" text,
	"title" text,
	"gender" text,
	"birth_date" date,
	"nationality" text,
	"status" text NOT NULL,
	"contact_medium" jsonb NOT NULL,
	"identifications" jsonb NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "individuals_status_check" CHECK ("individuals"."status" in ('initialized', 'validated', 'deceased'))
);
--> statement-breakpoint
CREATE TABLE "organizations" (
	"id" uuid PRIMARY KEY NOT NULL,
	"trading_name" text NOT NULL,
	"name" text,
	"is_legal_entity" boolean,
	"organization_type" text,
	"status" text NOT NULL,
	"contact_medium" jsonb NOT NULL,
	"identifications" jsonb NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "organizations_status_check" CHECK ("organizations"."status" in ('initialized', 'validated', 'closed'))
);
--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_billing_account_id_billing_accounts_id_fk" FOREIGN KEY ("billing_account_id") REFERENCES "public"."billing_accounts"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "billing_accounts" ADD CONSTRAINT "billing_accounts_customer_id_customers_id_fk" FOREIGN KEY ("customer_id") REFERENCES "public"."customers"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "customers" ADD CONSTRAINT "customers_individual_id_individuals_id_fk" FOREIGN KEY ("individual_id") REFERENCES "public"."individuals"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "customers" ADD CONSTRAINT "customers_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "audit_log_entity_idx" ON "audit_log" USING btree ("entity_type","entity_id");--> statement-breakpoint
CREATE INDEX "audit_log_occurred_idx" ON "audit_log" USING btree ("occurred_at");--> statement-breakpoint
CREATE UNIQUE INDEX "api_keys_secret_hash_idx" ON "api_keys" USING btree ("secret_hash");--> statement-breakpoint
CREATE UNIQUE INDEX "api_keys_live_name_idx" ON "api_keys" USING btree ("name") WHERE "api_keys"."revoked_at" is null;--> statement-breakpoint
CREATE INDEX "api_keys_billing_account_idx" ON "api_keys" USING btree ("billing_account_id");--> statement-breakpoint
CREATE INDEX "billing_accounts_customer_idx" ON "billing_accounts" USING btree ("customer_id");--> statement-breakpoint
CREATE INDEX "customers_individual_idx" ON "customers" USING btree ("individual_id");--> statement-breakpoint
CREATE INDEX "customers_organization_idx" ON "customers" USING btree ("organization_id");--> statement-breakpoint
CREATE INDEX "individuals_family_name_idx" ON "individuals" USING btree ("family_name");--> statement-breakpoint
CREATE INDEX "organizations_trading_name_idx" ON "organizations" USING btree ("trading_name");