{%- set claim = ti.xcom_pull(task_ids="claim", key="claim") %}
-- StreamLine load for feed orders: record the claimed batch, then replace its raw rows in one transaction.
UPDATE "STREAMLINE"."RAW"."STREAMLINE_BATCHES" SET
  "STATUS" = 'claimed',
  "DAG_ID" = {{ claim.ledger.dag_id }},
  "RUN_ID" = {{ claim.ledger.run_id }},
  "FILES" = {{ claim.ledger.files }},
  "BYTES" = {{ claim.ledger.bytes }},
  "EMPTY_FILES" = {{ claim.ledger.empty_files }},
  "CLAIM_STARTED_AT" = CAST({{ claim.ledger.claim_started_at }} AS TIMESTAMP_LTZ),
  "CLAIMED_AT" = CAST({{ claim.ledger.claimed_at }} AS TIMESTAMP_LTZ),
  "FAILED_STEP" = NULL,
  "ERROR" = NULL,
  "FILES_LOADED" = NULL,
  "FILES_SKIPPED" = NULL,
  "FILES_DEFERRED" = NULL,
  "ROWS_PARSED" = NULL,
  "ROWS_LOADED" = NULL,
  "ROWS_REJECTED" = NULL,
  "CHECKS" = PARSE_JSON(NULL),
  "LOAD_STARTED_AT" = CAST(NULL AS TIMESTAMP_LTZ),
  "LOADED_AT" = CAST(NULL AS TIMESTAMP_LTZ),
  "TRANSFORM_STARTED_AT" = CAST(NULL AS TIMESTAMP_LTZ),
  "TRANSFORMED_AT" = CAST(NULL AS TIMESTAMP_LTZ),
  "CHECKED_AT" = CAST(NULL AS TIMESTAMP_LTZ),
  "PUBLISHED_AT" = CAST(NULL AS TIMESTAMP_LTZ),
  "FAILED_AT" = CAST(NULL AS TIMESTAMP_LTZ),
  "RUNS" = CASE WHEN "RUN_ID" = {{ claim.ledger.run_id }} THEN "RUNS" ELSE COALESCE("RUNS", 0) + 1 END,
  "UPDATED_AT" = CURRENT_TIMESTAMP()
WHERE "FEED" = 'orders' AND "BATCH_ID" = '{{ claim.batch_id }}'
  AND ("CLAIMED_AT" IS NULL OR "RUN_ID" = {{ claim.ledger.run_id }} OR "CLAIMED_AT" <= CAST({{ claim.ledger.claimed_at }} AS TIMESTAMP_LTZ));
INSERT INTO "STREAMLINE"."RAW"."STREAMLINE_BATCHES" ("FEED", "BATCH_ID", "STATUS", "DAG_ID", "RUN_ID", "FILES", "BYTES", "EMPTY_FILES", "CLAIM_STARTED_AT", "CLAIMED_AT", "FAILED_STEP", "ERROR", "FILES_LOADED", "FILES_SKIPPED", "FILES_DEFERRED", "ROWS_PARSED", "ROWS_LOADED", "ROWS_REJECTED", "CHECKS", "LOAD_STARTED_AT", "LOADED_AT", "TRANSFORM_STARTED_AT", "TRANSFORMED_AT", "CHECKED_AT", "PUBLISHED_AT", "FAILED_AT", "RUNS", "UPDATED_AT")
SELECT
  'orders',
  '{{ claim.batch_id }}',
  'claimed',
  {{ claim.ledger.dag_id }},
  {{ claim.ledger.run_id }},
  {{ claim.ledger.files }},
  {{ claim.ledger.bytes }},
  {{ claim.ledger.empty_files }},
  CAST({{ claim.ledger.claim_started_at }} AS TIMESTAMP_LTZ),
  CAST({{ claim.ledger.claimed_at }} AS TIMESTAMP_LTZ),
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  PARSE_JSON(NULL),
  CAST(NULL AS TIMESTAMP_LTZ),
  CAST(NULL AS TIMESTAMP_LTZ),
  CAST(NULL AS TIMESTAMP_LTZ),
  CAST(NULL AS TIMESTAMP_LTZ),
  CAST(NULL AS TIMESTAMP_LTZ),
  CAST(NULL AS TIMESTAMP_LTZ),
  CAST(NULL AS TIMESTAMP_LTZ),
  1,
  CURRENT_TIMESTAMP()
WHERE NOT EXISTS (SELECT 1 FROM "STREAMLINE"."RAW"."STREAMLINE_BATCHES" WHERE "FEED" = 'orders' AND "BATCH_ID" = '{{ claim.batch_id }}');
BEGIN;
DELETE FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}';
COPY INTO "STREAMLINE"."RAW"."ORDERS" (
  "ORDER_ID",
  "CUSTOMER_ID",
  "STATUS",
  "QUANTITY",
  "AMOUNT",
  "CURRENCY",
  "ORDERED_AT",
  "UPDATED_AT",
  "BATCH_ID", "SOURCE_FILE", "SOURCE_ROW_NUMBER", "LOADED_AT"
)
FROM (
  SELECT
    $1,
    $2,
    $3,
    $4,
    $5,
    $6,
    $7,
    $8,
    '{{ claim.batch_id }}', METADATA$FILENAME, METADATA$FILE_ROW_NUMBER, CURRENT_TIMESTAMP()
  FROM @"STREAMLINE"."RAW"."ORDERS_STAGE"/processing/{{ claim.batch_id }}/orders/
)
FILES = ({{ claim.copy_files }})
FILE_FORMAT = (FORMAT_NAME = '"STREAMLINE"."RAW"."ORDERS_CSV_FORMAT"')
ON_ERROR = ABORT_STATEMENT
TRUNCATECOLUMNS = FALSE
FORCE = TRUE;
UPDATE "STREAMLINE"."RAW"."STREAMLINE_BATCHES" SET
  "STATUS" = 'loaded',
  "LOAD_STARTED_AT" = CAST('{{ ti.start_date.isoformat() }}' AS TIMESTAMP_LTZ),
  "LOADED_AT" = CURRENT_TIMESTAMP(),
  "ROWS_LOADED" = (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}'),
  "FAILED_STEP" = NULL,
  "ERROR" = NULL,
  "UPDATED_AT" = CURRENT_TIMESTAMP()
WHERE "FEED" = 'orders' AND "BATCH_ID" = '{{ claim.batch_id }}'
  AND "RUN_ID" = {{ claim.ledger.run_id }};
COMMIT;
