{%- set claim = ti.xcom_pull(task_ids="claim", key="claim") %}
-- StreamLine checks for feed orders: one row; every column must be TRUE.
SELECT
  (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}') >= 1 AS "ROW_COUNT",
  (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND ("ORDER_ID" IS NULL OR "CUSTOMER_ID" IS NULL OR "STATUS" IS NULL OR "ORDERED_AT" IS NULL OR "UPDATED_AT" IS NULL)) = 0 AS "NOT_NULL__ORDER_ID__CUSTOMER_ID__STATUS__ORDERED_AT__UPDATED_AT",
  (SELECT COUNT(*) FROM (
    SELECT m."ORDER_ID"
    FROM "STREAMLINE"."MART"."ORDERS" AS m
    JOIN (SELECT DISTINCT "ORDER_ID" FROM "STREAMLINE"."MART"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}') AS b
      ON m."ORDER_ID" = b."ORDER_ID"
    GROUP BY m."ORDER_ID"
    HAVING COUNT(*) > 1
  )) = 0 AS "UNIQUE__ORDER_ID",
  (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND "STATUS" NOT IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled')) = 0 AS "ACCEPTED_VALUES__STATUS",
  (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND ("AMOUNT" < 0)) = 0 AS "RANGE__AMOUNT",
  (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS" AS r
    WHERE r."BATCH_ID" = '{{ claim.batch_id }}' AND r."CUSTOMER_ID" IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM "STREAMLINE"."MART"."CUSTOMERS" AS p WHERE p."CUSTOMER_ID" = r."CUSTOMER_ID")
  ) <= 0.2 * (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}') AS "REFERENCES__CUSTOMER_ID"
;
