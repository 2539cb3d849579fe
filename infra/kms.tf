# One customer-managed key for StreamLine's data at rest: the lake and DAG buckets, the feed
# streams and queues, the connection secrets, the Firehose log groups and the MWAA environment.
# Who may use it is decided by IAM policies (each role below is scoped with kms:ViaService) and
# by the service statements here, which are each bound to this account's resources.

resource "aws_kms_key" "streamline" {
  description             = "StreamLine: lake, DAG bucket, Firehose, SQS, secrets, logs, MWAA"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "streamline" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.streamline.key_id
}

data "aws_iam_policy_document" "kms" {
  # In a key policy, Resource "*" means "this key". The account statement is AWS's default key
  # policy: it lets IAM policies grant use of the key (without it, only the key policy could),
  # and keeps the key manageable (a key no one can administer cannot be recovered).
  #checkov:skip=CKV_AWS_109:Key policy: "*" is this key; the account root statement is AWS's default that delegates to IAM.
  #checkov:skip=CKV_AWS_111:Key policy: "*" is this key; the account root statement is AWS's default that delegates to IAM.
  #checkov:skip=CKV_AWS_356:Key policy: "*" is this key, not every resource.
  statement {
    sid       = "AccountAdministersKeyAndDelegatesToIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts the MWAA log groups (airflow-<name>-*) and the Firehose ones.
  statement {
    sid       = "CloudWatchLogsForStreamLineLogGroups"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = concat(
        [local.mwaa_log_groups],
        [for f in values(var.feeds) : "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/aws/kinesisfirehose/${f.stream_name}"],
      )
    }
  }

  # S3 sends the lake's event notifications to the feed queues, which are encrypted with this key.
  statement {
    sid       = "LakeNotificationsToEncryptedQueues"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [local.lake_bucket_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}
