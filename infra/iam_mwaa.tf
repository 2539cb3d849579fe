# The MWAA execution role: what the scheduler, workers and tasks may do. Everything is scoped to
# StreamLine's own resources; the only "*" resources are actions that have no resource-level
# permissions (marked below).

data "aws_iam_policy_document" "mwaa_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "mwaa" {
  name               = "${var.name}-mwaa-execution"
  description        = "MWAA environment ${var.name}: DAG bucket, lake zones, feed queues, own secrets"
  assume_role_policy = data.aws_iam_policy_document.mwaa_assume.json
}

data "aws_iam_policy_document" "mwaa" {
  statement {
    sid       = "PublishEnvironmentMetrics"
    actions   = ["airflow:PublishMetrics"]
    resources = [local.mwaa_env_arn]
  }

  # --- DAG bucket: read only -------------------------------------------------------------------
  statement {
    sid       = "ReadDagBucket"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${local.dag_bucket_arn}/*"]
  }
  statement {
    sid       = "ListDagBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:GetBucketPublicAccessBlock"]
    resources = [local.dag_bucket_arn]
  }
  statement {
    sid       = "CheckAccountPublicAccessBlock" # MWAA checks its bucket is not public; no resource ARN
    actions   = ["s3:GetAccountPublicAccessBlock"]
    resources = ["*"]
  }

  # --- Lake: move objects between the three zones ----------------------------------------------
  statement {
    sid       = "ReadWriteDeleteLakeZones"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [for zone in local.lake_zones : "${local.lake_bucket_arn}/${zone}/*"]
  }
  # Not narrowed with s3:prefix: S3 answers HeadObject/GetObject of a missing key with 404 only
  # to a caller allowed to list the bucket (otherwise 403), and the claim/finalize tasks rely on
  # the 404 to resume a half-done move. Listing shows key names, not data.
  statement {
    sid       = "ListLake"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [local.lake_bucket_arn]
  }

  # --- Feed queues: receive and delete only ----------------------------------------------------
  statement {
    sid       = "ConsumeFeedQueues"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [for q in aws_sqs_queue.feed : q.arn]
  }

  # --- MWAA's own Celery queues (in the service's account, hence the * account) ----------------
  statement {
    sid       = "MwaaCeleryQueues"
    actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:SendMessage"]
    resources = ["arn:${local.partition}:sqs:${var.region}:*:airflow-celery-*"]
  }

  # --- Secrets: only the connections the specs name, and the lake bucket Variable --------------
  # (Secrets Manager appends 6 random characters to a secret's ARN, hence -??????.)
  statement {
    sid       = "ReadOwnConnectionSecrets"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [for id in sort(tolist(local.conn_ids)) : "arn:${local.partition}:secretsmanager:${var.region}:${local.account_id}:secret:${local.secret_prefix}/${id}-??????"]
  }
  statement {
    sid       = "ReadOwnVariableSecrets"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [for s in aws_secretsmanager_secret.variable : s.arn]
  }

  # --- CloudWatch --------------------------------------------------------------------------------
  statement {
    sid = "WriteOwnLogs"
    actions = [
      "logs:CreateLogStream", "logs:CreateLogGroup", "logs:PutLogEvents", "logs:GetLogEvents",
      "logs:GetLogRecord", "logs:GetLogGroupFields", "logs:GetQueryResults",
    ]
    resources = [local.mwaa_log_groups]
  }
  statement {
    sid       = "DescribeLogGroups" # no resource-level permissions
    actions   = ["logs:DescribeLogGroups"]
    resources = ["*"]
  }
  statement {
    sid       = "PutMwaaMetrics" # no resource-level permissions: limited to MWAA's namespace
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["AmazonMWAA"]
    }
  }

  # --- The StreamLine key, through the services above only -------------------------------------
  statement {
    sid       = "UseKeyViaServices"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey", "kms:Encrypt"]
    resources = [aws_kms_key.streamline.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "s3.${var.region}.amazonaws.com",
        "sqs.${var.region}.amazonaws.com",
        "secretsmanager.${var.region}.amazonaws.com",
        "logs.${var.region}.amazonaws.com",
      ]
    }
  }
}

resource "aws_iam_role_policy" "mwaa" {
  name   = "streamline-execution"
  role   = aws_iam_role.mwaa.id
  policy = data.aws_iam_policy_document.mwaa.json
}
