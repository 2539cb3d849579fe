# One Firehose delivery stream per feed (DirectPut): records from the edge are buffered and
# written to landing/<prefix>/ of the lake; failed deliveries go to errors/<prefix>/. Each stream
# has its own role, which may write its own prefixes only.

resource "aws_cloudwatch_log_group" "firehose" {
  for_each          = var.feeds
  name              = "/aws/kinesisfirehose/${each.value.stream_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.streamline.arn
}

resource "aws_cloudwatch_log_stream" "firehose" {
  for_each       = var.feeds
  name           = "DestinationDelivery"
  log_group_name = aws_cloudwatch_log_group.firehose[each.key].name
}

data "aws_iam_policy_document" "firehose_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "firehose" {
  for_each           = var.feeds
  name_prefix        = "${var.name}-fh-"
  description        = "Firehose stream ${each.value.stream_name}: writes landing/${each.value.prefix}/ only"
  assume_role_policy = data.aws_iam_policy_document.firehose_assume.json
}

data "aws_iam_policy_document" "firehose" {
  for_each = var.feeds

  statement {
    sid     = "WriteOwnLandingAndErrorPrefixes"
    actions = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [
      "${local.lake_bucket_arn}/landing/${each.value.prefix}/*",
      "${local.lake_bucket_arn}/errors/${each.value.prefix}/*",
    ]
  }

  statement {
    sid       = "LocateLakeBucket"
    actions   = ["s3:GetBucketLocation"]
    resources = [local.lake_bucket_arn]
  }

  statement {
    sid       = "ListOwnPrefixesOnly"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["landing/${each.value.prefix}/*", "errors/${each.value.prefix}/*"]
    }
  }

  statement {
    sid       = "EncryptLakeObjects"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.streamline.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
    # With S3 bucket keys (lake.tf) the context is the bucket ARN; without, the object ARN.
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values = [
        local.lake_bucket_arn,
        "${local.lake_bucket_arn}/landing/${each.value.prefix}/*",
        "${local.lake_bucket_arn}/errors/${each.value.prefix}/*",
      ]
    }
  }

  statement {
    sid       = "DeliveryErrorLogs"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.firehose[each.key].arn}:log-stream:${aws_cloudwatch_log_stream.firehose[each.key].name}"]
  }
}

resource "aws_iam_role_policy" "firehose" {
  for_each = var.feeds
  name     = "write-own-landing-prefix"
  role     = aws_iam_role.firehose[each.key].id
  policy   = data.aws_iam_policy_document.firehose[each.key].json
}

resource "aws_kinesis_firehose_delivery_stream" "feed" {
  for_each    = var.feeds
  name        = each.value.stream_name
  destination = "extended_s3"

  server_side_encryption {
    enabled  = true
    key_type = "CUSTOMER_MANAGED_CMK"
    key_arn  = aws_kms_key.streamline.arn
  }

  extended_s3_configuration {
    role_arn            = aws_iam_role.firehose[each.key].arn
    bucket_arn          = aws_s3_bucket.lake.arn
    prefix              = "landing/${each.value.prefix}/"
    error_output_prefix = "errors/${each.value.prefix}/"
    buffering_size      = local.buffering[each.key].size_mb
    buffering_interval  = local.buffering[each.key].interval_seconds
    compression_format  = each.value.compression
    kms_key_arn         = aws_kms_key.streamline.arn

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.firehose[each.key].name
      log_stream_name = aws_cloudwatch_log_stream.firehose[each.key].name
    }
  }

  # The role's policy must exist before Firehose checks that it can write to the bucket.
  depends_on = [aws_iam_role_policy.firehose]
}
