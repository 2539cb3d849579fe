{%- set claim = ti.xcom_pull(task_ids="claim", key="claim") %}
-- StreamLine checks for feed customers: one row; every column must be TRUE.
SELECT
  (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."CUSTOMERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}') >= 1 AS "ROW_COUNT",
  (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."CUSTOMERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND ("CUSTOMER_ID" IS NULL OR "CREATED_AT" IS NULL OR "UPDATED_AT" IS NULL)) = 0 AS "NOT_NULL__CUSTOMER_ID__CREATED_AT__UPDATED_AT",
  (SELECT COUNT(*) FROM (
    SELECT m."CUSTOMER_ID"
    FROM "STREAMLINE"."MART"."CUSTOMERS" AS m
    JOIN (SELECT DISTINCT "CUSTOMER_ID" FROM "STREAMLINE"."MART"."CUSTOMERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}') AS b
      ON m."CUSTOMER_ID" = b."CUSTOMER_ID"
    GROUP BY m."CUSTOMER_ID"
    HAVING COUNT(*) > 1
  )) = 0 AS "UNIQUE__CUSTOMER_ID",
  (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."CUSTOMERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND "TIER" NOT IN ('free', 'plus', 'pro')) = 0 AS "ACCEPTED_VALUES__TIER"
;
