{%- set claim = ti.xcom_pull(task_ids="claim", key="claim") %}
-- StreamLine load for feed orders: record the claimed batch; then, in one transaction, COPY
-- the batch's rows as text into the landing table, convert them, and put each row in raw, or in
-- quarantine with the reason it was rejected (on_error: continue). A file the CSV parser
-- cannot read (broken quoting, bad encoding) is skipped by the COPY: finalize sets it aside in quarantine/ with the parser's error.
UPDATE "STREAMLINE"."RAW"."STREAMLINE_BATCHES" SET
  "STATUS" = 'claimed',
  "DAG_ID" = {{ claim.ledger.dag_id }},
  "RUN_ID" = {{ claim.ledger.run_id }},
  "FILES" = {{ claim.ledger.files }},
  "BYTES" = {{ claim.ledger.bytes }},
  "EMPTY_FILES" = {{ claim.ledger.empty_files }},
  "CLAIM_STARTED_AT" = CAST({{ claim.ledger.claim_started_at }} AS TIMESTAMP_LTZ),
  "CLAIMED_AT" = CAST({{ claim.ledger.claimed_at }} AS TIMESTAMP_LTZ),
  "SCHEMA_VERSION" = {{ claim.ledger.schema_version }},
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
INSERT INTO "STREAMLINE"."RAW"."STREAMLINE_BATCHES" ("FEED", "BATCH_ID", "STATUS", "DAG_ID", "RUN_ID", "FILES", "BYTES", "EMPTY_FILES", "CLAIM_STARTED_AT", "CLAIMED_AT", "SCHEMA_VERSION", "FAILED_STEP", "ERROR", "FILES_LOADED", "FILES_SKIPPED", "FILES_DEFERRED", "ROWS_PARSED", "ROWS_LOADED", "ROWS_REJECTED", "CHECKS", "LOAD_STARTED_AT", "LOADED_AT", "TRANSFORM_STARTED_AT", "TRANSFORMED_AT", "CHECKED_AT", "PUBLISHED_AT", "FAILED_AT", "RUNS", "UPDATED_AT")
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
  {{ claim.ledger.schema_version }},
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
DELETE FROM "STREAMLINE"."RAW"."ORDERS_LANDING" WHERE "BATCH_ID" = '{{ claim.batch_id }}';
COPY INTO "STREAMLINE"."RAW"."ORDERS_LANDING" (
  "ORDER_ID",
  "CUSTOMER_ID",
  "STATUS",
  "QUANTITY",
  "AMOUNT",
  "CURRENCY",
  "ORDERED_AT",
  "UPDATED_AT",
  "EXTRA_FIELD", "MORE_FIELDS", "BATCH_ID", "SOURCE_FILE", "SOURCE_ROW_NUMBER"
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
    $9, $10, '{{ claim.batch_id }}', METADATA$FILENAME, METADATA$FILE_ROW_NUMBER
  FROM @"STREAMLINE"."RAW"."ORDERS_STAGE"/processing/{{ claim.batch_id }}/orders/
)
FILES = ({{ claim.copy_files }})
FILE_FORMAT = (FORMAT_NAME = '"STREAMLINE"."RAW"."ORDERS_CSV_FORMAT"')
ON_ERROR = SKIP_FILE
FORCE = TRUE;
DELETE FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}';
-- The quarantine rows of the files read again; those of files the batch keeps set aside stay.
DELETE FROM "STREAMLINE"."RAW"."ORDERS_QUARANTINE" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND "SOURCE_FILE" IN ({{ claim.source_files }});
INSERT INTO "STREAMLINE"."RAW"."ORDERS_QUARANTINE" (
  "BATCH_ID", "SOURCE_FILE", "SOURCE_ROW_NUMBER", "RECORD",
  "ERROR_CODE", "ERROR", "COLUMN_NAME", "QUARANTINED_AT"
)
SELECT
  '{{ claim.batch_id }}', c."SOURCE_FILE", c."SOURCE_ROW_NUMBER",
  CASE WHEN CONTAINS(c."F1", ',') OR CONTAINS(c."F1", '"') OR CONTAINS(c."F1", CHR(10)) THEN '"' || REPLACE(c."F1", '"', '""') || '"' ELSE c."F1" END ||
  COALESCE(',' || CASE WHEN CONTAINS(c."F2", ',') OR CONTAINS(c."F2", '"') OR CONTAINS(c."F2", CHR(10)) THEN '"' || REPLACE(c."F2", '"', '""') || '"' ELSE c."F2" END, '') ||
  COALESCE(',' || CASE WHEN CONTAINS(c."F3", ',') OR CONTAINS(c."F3", '"') OR CONTAINS(c."F3", CHR(10)) THEN '"' || REPLACE(c."F3", '"', '""') || '"' ELSE c."F3" END, '') ||
  COALESCE(',' || CASE WHEN CONTAINS(c."F4", ',') OR CONTAINS(c."F4", '"') OR CONTAINS(c."F4", CHR(10)) THEN '"' || REPLACE(c."F4", '"', '""') || '"' ELSE c."F4" END, '') ||
  COALESCE(',' || CASE WHEN CONTAINS(c."F5", ',') OR CONTAINS(c."F5", '"') OR CONTAINS(c."F5", CHR(10)) THEN '"' || REPLACE(c."F5", '"', '""') || '"' ELSE c."F5" END, '') ||
  COALESCE(',' || CASE WHEN CONTAINS(c."F6", ',') OR CONTAINS(c."F6", '"') OR CONTAINS(c."F6", CHR(10)) THEN '"' || REPLACE(c."F6", '"', '""') || '"' ELSE c."F6" END, '') ||
  COALESCE(',' || CASE WHEN CONTAINS(c."F7", ',') OR CONTAINS(c."F7", '"') OR CONTAINS(c."F7", CHR(10)) THEN '"' || REPLACE(c."F7", '"', '""') || '"' ELSE c."F7" END, '') ||
  COALESCE(',' || CASE WHEN CONTAINS(c."F8", ',') OR CONTAINS(c."F8", '"') OR CONTAINS(c."F8", CHR(10)) THEN '"' || REPLACE(c."F8", '"', '""') || '"' ELSE c."F8" END, '') ||
  COALESCE(',' || CASE WHEN CONTAINS(c."EXTRA_FIELD", ',') OR CONTAINS(c."EXTRA_FIELD", '"') OR CONTAINS(c."EXTRA_FIELD", CHR(10)) THEN '"' || REPLACE(c."EXTRA_FIELD", '"', '""') || '"' ELSE c."EXTRA_FIELD" END, '') ||
  IFF(c."MORE_FIELDS" IS NULL, '', ',...'),
  CASE
    WHEN c."PROBLEM" = 1 THEN 'too_many_fields'
    WHEN c."PROBLEM" = 2 THEN 'too_few_fields'
    WHEN MOD(c."PROBLEM", 10) = 1 THEN 'not_a_value'
    WHEN MOD(c."PROBLEM", 10) = 2 THEN 'too_long'
    ELSE 'null_value'
  END,
  CASE c."PROBLEM"
    WHEN 1 THEN 'more than 8 fields; expected 8 (a delimiter too many?)'
    WHEN 2 THEN TO_VARCHAR(IFF(c."F1" IS NULL, 0, 1) + IFF(c."F2" IS NULL, 0, 1) + IFF(c."F3" IS NULL, 0, 1) + IFF(c."F4" IS NULL, 0, 1) + IFF(c."F5" IS NULL, 0, 1) + IFF(c."F6" IS NULL, 0, 1) + IFF(c."F7" IS NULL, 0, 1) + IFF(c."F8" IS NULL, 0, 1)) || ' fields; expected 8'
    WHEN 12 THEN 'order_id: ' || TO_VARCHAR(LENGTH(c."V1")) || ' characters, longer than VARCHAR(20)'
    WHEN 13 THEN 'order_id: NULL, but it is part of the key'
    WHEN 22 THEN 'customer_id: ' || TO_VARCHAR(LENGTH(c."V2")) || ' characters, longer than VARCHAR(16)'
    WHEN 23 THEN 'customer_id: NULL, but the column is not nullable'
    WHEN 32 THEN 'status: ' || TO_VARCHAR(LENGTH(c."V3")) || ' characters, longer than VARCHAR(16)'
    WHEN 33 THEN 'status: NULL, but the column is not nullable'
    WHEN 41 THEN 'quantity: \'' || LEFT(c."V4", 100) || '\' is not a NUMBER(9,0)'
    WHEN 51 THEN 'amount: \'' || LEFT(c."V5", 100) || '\' is not a NUMBER(12,2)'
    WHEN 62 THEN 'currency: ' || TO_VARCHAR(LENGTH(c."V6")) || ' characters, longer than CHAR(3)'
    WHEN 71 THEN 'ordered_at: \'' || LEFT(c."V7", 100) || '\' is not a TIMESTAMP_NTZ(3)'
    WHEN 73 THEN 'ordered_at: NULL, but the column is not nullable'
    WHEN 81 THEN 'updated_at: \'' || LEFT(c."V8", 100) || '\' is not a TIMESTAMP_NTZ(3)'
    WHEN 83 THEN 'updated_at: NULL, but it is the ordering column'
  END,
  CASE FLOOR(c."PROBLEM" / 10) WHEN 1 THEN 'ORDER_ID' WHEN 2 THEN 'CUSTOMER_ID' WHEN 3 THEN 'STATUS' WHEN 4 THEN 'QUANTITY' WHEN 5 THEN 'AMOUNT' WHEN 6 THEN 'CURRENCY' WHEN 7 THEN 'ORDERED_AT' WHEN 8 THEN 'UPDATED_AT' END,
  CURRENT_TIMESTAMP()
FROM (
  SELECT
    t.*,
    CASE
      WHEN t."EXTRA_FIELD" IS NOT NULL THEN 1
      WHEN t."F8" IS NULL THEN 2
      WHEN LENGTH(t."V1") > 20 THEN 12
      WHEN t."T1" IS NULL THEN 13
      WHEN LENGTH(t."V2") > 16 THEN 22
      WHEN t."T2" IS NULL THEN 23
      WHEN LENGTH(t."V3") > 16 THEN 32
      WHEN t."T3" IS NULL THEN 33
      WHEN t."V4" IS NOT NULL AND t."T4" IS NULL THEN 41
      WHEN t."V5" IS NOT NULL AND t."T5" IS NULL THEN 51
      WHEN LENGTH(t."V6") > 3 THEN 62
      WHEN t."V7" IS NOT NULL AND t."T7" IS NULL THEN 71
      WHEN t."T7" IS NULL THEN 73
      WHEN t."V8" IS NOT NULL AND t."T8" IS NULL THEN 81
      WHEN t."T8" IS NULL THEN 83
    END AS "PROBLEM"
  FROM (
    SELECT
      l.*,
      l."V1" AS "T1",
      l."V2" AS "T2",
      l."V3" AS "T3",
      TRY_CAST(l."V4" AS NUMBER(9,0)) AS "T4",
      TRY_CAST(l."V5" AS NUMBER(12,2)) AS "T5",
      l."V6" AS "T6",
      TRY_TO_TIMESTAMP_NTZ(l."V7", 'YYYY-MM-DD HH24:MI:SS.FF3') AS "T7",
      TRY_TO_TIMESTAMP_NTZ(l."V8", 'YYYY-MM-DD HH24:MI:SS.FF3') AS "T8"
    FROM (
      SELECT
        "SOURCE_FILE", "SOURCE_ROW_NUMBER", "EXTRA_FIELD", "MORE_FIELDS",
        "ORDER_ID" AS "F1",
        CASE WHEN "ORDER_ID" IN ('', 'NULL') THEN NULL ELSE "ORDER_ID" END AS "V1",
        "CUSTOMER_ID" AS "F2",
        CASE WHEN "CUSTOMER_ID" IN ('', 'NULL') THEN NULL ELSE "CUSTOMER_ID" END AS "V2",
        "STATUS" AS "F3",
        CASE WHEN "STATUS" IN ('', 'NULL') THEN NULL ELSE "STATUS" END AS "V3",
        "QUANTITY" AS "F4",
        CASE WHEN "QUANTITY" IN ('', 'NULL') THEN NULL ELSE "QUANTITY" END AS "V4",
        "AMOUNT" AS "F5",
        CASE WHEN "AMOUNT" IN ('', 'NULL') THEN NULL ELSE "AMOUNT" END AS "V5",
        "CURRENCY" AS "F6",
        CASE WHEN "CURRENCY" IN ('', 'NULL') THEN NULL ELSE "CURRENCY" END AS "V6",
        "ORDERED_AT" AS "F7",
        CASE WHEN "ORDERED_AT" IN ('', 'NULL') THEN NULL ELSE "ORDERED_AT" END AS "V7",
        "UPDATED_AT" AS "F8",
        CASE WHEN "UPDATED_AT" IN ('', 'NULL') THEN NULL ELSE "UPDATED_AT" END AS "V8"
      FROM "STREAMLINE"."RAW"."ORDERS_LANDING"
      WHERE "BATCH_ID" = '{{ claim.batch_id }}'
    ) AS l
  ) AS t
) AS c
WHERE c."PROBLEM" IS NOT NULL;
INSERT INTO "STREAMLINE"."RAW"."ORDERS" (
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
SELECT
  c."T1",
  c."T2",
  c."T3",
  c."T4",
  c."T5",
  c."T6",
  c."T7",
  c."T8",
  '{{ claim.batch_id }}', c."SOURCE_FILE", c."SOURCE_ROW_NUMBER", CURRENT_TIMESTAMP()
FROM (
  SELECT
    t.*,
    CASE
      WHEN t."EXTRA_FIELD" IS NOT NULL THEN 1
      WHEN t."F8" IS NULL THEN 2
      WHEN LENGTH(t."V1") > 20 THEN 12
      WHEN t."T1" IS NULL THEN 13
      WHEN LENGTH(t."V2") > 16 THEN 22
      WHEN t."T2" IS NULL THEN 23
      WHEN LENGTH(t."V3") > 16 THEN 32
      WHEN t."T3" IS NULL THEN 33
      WHEN t."V4" IS NOT NULL AND t."T4" IS NULL THEN 41
      WHEN t."V5" IS NOT NULL AND t."T5" IS NULL THEN 51
      WHEN LENGTH(t."V6") > 3 THEN 62
      WHEN t."V7" IS NOT NULL AND t."T7" IS NULL THEN 71
      WHEN t."T7" IS NULL THEN 73
      WHEN t."V8" IS NOT NULL AND t."T8" IS NULL THEN 81
      WHEN t."T8" IS NULL THEN 83
    END AS "PROBLEM"
  FROM (
    SELECT
      l.*,
      l."V1" AS "T1",
      l."V2" AS "T2",
      l."V3" AS "T3",
      TRY_CAST(l."V4" AS NUMBER(9,0)) AS "T4",
      TRY_CAST(l."V5" AS NUMBER(12,2)) AS "T5",
      l."V6" AS "T6",
      TRY_TO_TIMESTAMP_NTZ(l."V7", 'YYYY-MM-DD HH24:MI:SS.FF3') AS "T7",
      TRY_TO_TIMESTAMP_NTZ(l."V8", 'YYYY-MM-DD HH24:MI:SS.FF3') AS "T8"
    FROM (
      SELECT
        "SOURCE_FILE", "SOURCE_ROW_NUMBER", "EXTRA_FIELD", "MORE_FIELDS",
        "ORDER_ID" AS "F1",
        CASE WHEN "ORDER_ID" IN ('', 'NULL') THEN NULL ELSE "ORDER_ID" END AS "V1",
        "CUSTOMER_ID" AS "F2",
        CASE WHEN "CUSTOMER_ID" IN ('', 'NULL') THEN NULL ELSE "CUSTOMER_ID" END AS "V2",
        "STATUS" AS "F3",
        CASE WHEN "STATUS" IN ('', 'NULL') THEN NULL ELSE "STATUS" END AS "V3",
        "QUANTITY" AS "F4",
        CASE WHEN "QUANTITY" IN ('', 'NULL') THEN NULL ELSE "QUANTITY" END AS "V4",
        "AMOUNT" AS "F5",
        CASE WHEN "AMOUNT" IN ('', 'NULL') THEN NULL ELSE "AMOUNT" END AS "V5",
        "CURRENCY" AS "F6",
        CASE WHEN "CURRENCY" IN ('', 'NULL') THEN NULL ELSE "CURRENCY" END AS "V6",
        "ORDERED_AT" AS "F7",
        CASE WHEN "ORDERED_AT" IN ('', 'NULL') THEN NULL ELSE "ORDERED_AT" END AS "V7",
        "UPDATED_AT" AS "F8",
        CASE WHEN "UPDATED_AT" IN ('', 'NULL') THEN NULL ELSE "UPDATED_AT" END AS "V8"
      FROM "STREAMLINE"."RAW"."ORDERS_LANDING"
      WHERE "BATCH_ID" = '{{ claim.batch_id }}'
    ) AS l
  ) AS t
) AS c
WHERE c."PROBLEM" IS NULL
;
-- Gate: rejected rows. on_error abort_statement allows none; continue and skip_file allow at
-- most copy.max_rejected_ratio (0.1) of the batch's rows.
SELECT
  'rejected_rows' AS "STREAMLINE_CHECK",
  'error' AS "SEVERITY",
  COUNT(*) <= 0.1 * (COUNT(*) + (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}')) AS "PASSED",
  COUNT(*) AS "FAILING_ROWS",
  TO_VARCHAR(COUNT(*)) || ' of ' || TO_VARCHAR(COUNT(*) + (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}')) || ' rows, at most 0.1 allowed (copy.max_rejected_ratio); ' ||
  (
    SELECT 'first: ' || "SOURCE_FILE" || ', row ' || TO_VARCHAR("SOURCE_ROW_NUMBER") || ': ' || "ERROR"
    FROM "STREAMLINE"."RAW"."ORDERS_QUARANTINE"
    WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND "ERROR_CODE" NOT IN ('file_unreadable', 'file_set_aside', 'columns_discarded')
    ORDER BY "ERROR_CODE" = 'file_skipped', "SOURCE_FILE", "SOURCE_ROW_NUMBER"
    LIMIT 1
  ) AS "DETAIL"
FROM "STREAMLINE"."RAW"."ORDERS_QUARANTINE"
WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND "ERROR_CODE" NOT IN ('file_unreadable', 'file_set_aside', 'columns_discarded');
-- Gate: every row read is in raw or in quarantine, file by file.
SELECT
  'rows_reconciled' AS "STREAMLINE_CHECK",
  'error' AS "SEVERITY",
  COUNT(*) = 0 AS "PASSED",
  CAST(COALESCE(SUM(ABS(l.rows_ - COALESCE(r.rows_, 0) - COALESCE(q.rows_, 0))), 0) AS INTEGER) AS "FAILING_ROWS",
  MIN(l.file_ || ': ' || TO_VARCHAR(l.rows_) || ' rows read, ' || TO_VARCHAR(COALESCE(r.rows_, 0)) || ' in raw, ' || TO_VARCHAR(COALESCE(q.rows_, 0)) || ' quarantined') AS "DETAIL"
FROM (SELECT "SOURCE_FILE" AS file_, COUNT(*) AS rows_ FROM "STREAMLINE"."RAW"."ORDERS_LANDING" WHERE "BATCH_ID" = '{{ claim.batch_id }}' GROUP BY 1) AS l
LEFT JOIN (SELECT "SOURCE_FILE" AS file_, COUNT(*) AS rows_ FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}' GROUP BY 1) AS r ON r.file_ = l.file_
LEFT JOIN (SELECT "SOURCE_FILE" AS file_, COUNT(*) AS rows_ FROM "STREAMLINE"."RAW"."ORDERS_QUARANTINE" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND "ERROR_CODE" NOT IN ('file_unreadable', 'file_set_aside', 'columns_discarded') GROUP BY 1) AS q ON q.file_ = l.file_
WHERE l.rows_ <> COALESCE(r.rows_, 0) + COALESCE(q.rows_, 0);
UPDATE "STREAMLINE"."RAW"."STREAMLINE_BATCHES" SET
  "STATUS" = 'loaded',
  "LOAD_STARTED_AT" = CAST('{{ ti.start_date.isoformat() }}' AS TIMESTAMP_LTZ),
  "LOADED_AT" = CURRENT_TIMESTAMP(),
  "ROWS_PARSED" = (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS_LANDING" WHERE "BATCH_ID" = '{{ claim.batch_id }}')
    + (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS_QUARANTINE" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND "ERROR_CODE" NOT IN ('file_unreadable', 'file_set_aside', 'columns_discarded') AND "SOURCE_FILE" NOT IN ({{ claim.source_files }})),
  "ROWS_LOADED" = (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}'),
  "ROWS_REJECTED" = (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS_QUARANTINE" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND "ERROR_CODE" NOT IN ('file_unreadable', 'file_set_aside', 'columns_discarded')),
  "FAILED_STEP" = NULL,
  "ERROR" = NULL,
  "UPDATED_AT" = CURRENT_TIMESTAMP()
WHERE "FEED" = 'orders' AND "BATCH_ID" = '{{ claim.batch_id }}'
  AND "RUN_ID" = {{ claim.ledger.run_id }};DELETE FROM "STREAMLINE"."RAW"."ORDERS_LANDING" WHERE "BATCH_ID" = '{{ claim.batch_id }}';

COMMIT;
