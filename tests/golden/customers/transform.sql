{%- set claim = ti.xcom_pull(task_ids="claim", key="claim") %}
-- StreamLine transform for feed customers: templates/transforms/merge_latest.sql.j2 and the ledger, in one transaction.
BEGIN;
-- StreamLine transform merge_latest for feed customers: upsert the latest row per key.
MERGE INTO "STREAMLINE"."MART"."CUSTOMERS" AS t
USING (
  SELECT
    "CUSTOMER_ID",
    "EMAIL",
    "FULL_NAME",
    "COUNTRY",
    "TIER",
    "CREATED_AT",
    "UPDATED_AT",
    "BATCH_ID"
  FROM "STREAMLINE"."RAW"."CUSTOMERS"
  WHERE "BATCH_ID" = '{{ claim.batch_id }}'
    AND "CUSTOMER_ID" IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY "CUSTOMER_ID"
    ORDER BY "UPDATED_AT" DESC, "SOURCE_FILE" DESC, "SOURCE_ROW_NUMBER" DESC
  ) = 1
) AS s
ON t."CUSTOMER_ID" = s."CUSTOMER_ID"
WHEN MATCHED AND s."UPDATED_AT" >= t."UPDATED_AT" THEN UPDATE SET
  "EMAIL" = s."EMAIL",
  "FULL_NAME" = s."FULL_NAME",
  "COUNTRY" = s."COUNTRY",
  "TIER" = s."TIER",
  "CREATED_AT" = s."CREATED_AT",
  "UPDATED_AT" = s."UPDATED_AT",
  "BATCH_ID" = s."BATCH_ID",
  "MERGED_AT" = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN INSERT (
  "CUSTOMER_ID",
  "EMAIL",
  "FULL_NAME",
  "COUNTRY",
  "TIER",
  "CREATED_AT",
  "UPDATED_AT",
  "BATCH_ID", "MERGED_AT"
) VALUES (
  s."CUSTOMER_ID",
  s."EMAIL",
  s."FULL_NAME",
  s."COUNTRY",
  s."TIER",
  s."CREATED_AT",
  s."UPDATED_AT",
  s."BATCH_ID", CURRENT_TIMESTAMP()
);
UPDATE "STREAMLINE"."RAW"."STREAMLINE_BATCHES" SET
  "STATUS" = 'transformed',
  "TRANSFORM_STARTED_AT" = CAST('{{ ti.start_date.isoformat() }}' AS TIMESTAMP_LTZ),
  "TRANSFORMED_AT" = CURRENT_TIMESTAMP(),
  "FAILED_STEP" = NULL,
  "ERROR" = NULL,
  "UPDATED_AT" = CURRENT_TIMESTAMP()
WHERE "FEED" = 'customers' AND "BATCH_ID" = '{{ claim.batch_id }}'
  AND "RUN_ID" = {{ claim.ledger.run_id }};
COMMIT;
