# Per feed: an SQS queue of the lake's "object created" notifications under landing/<prefix>/,
# which wakes event-mode DAGs (trigger.mode: event) through an Airflow asset watcher, and a
# dead-letter queue. Poll-mode feeds get their queue too, so switching a feed's trigger mode needs
# no infrastructure change; nothing reads it and messages expire after the retention period.

resource "aws_sqs_queue" "dlq" {
  for_each                          = var.feeds
  name                              = each.value.dlq_name
  message_retention_seconds         = var.dlq_message_retention_seconds
  kms_master_key_id                 = aws_kms_key.streamline.arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue" "feed" {
  for_each                          = var.feeds
  name                              = each.value.queue_name
  message_retention_seconds         = var.queue_message_retention_seconds
  visibility_timeout_seconds        = var.queue_visibility_timeout_seconds
  kms_master_key_id                 = aws_kms_key.streamline.arn
  kms_data_key_reuse_period_seconds = 300
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = var.dlq_max_receive_count
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  for_each  = var.feeds
  queue_url = aws_sqs_queue.dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.feed[each.key].arn]
  })
}

data "aws_iam_policy_document" "feed_queue" {
  for_each = var.feeds

  statement {
    sid       = "LakeBucketNotifications"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.feed[each.key].arn]
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

  # An identity policy in this account could otherwise allow sending too: deny every sender
  # whose request does not come from the lake bucket.
  statement {
    sid       = "DenyEveryOtherSender"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.feed[each.key].arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "ArnNotEquals"
      variable = "aws:SourceArn"
      values   = [local.lake_bucket_arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.feed[each.key].arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "feed" {
  for_each  = var.feeds
  queue_url = aws_sqs_queue.feed[each.key].id
  policy    = data.aws_iam_policy_document.feed_queue[each.key].json
}

data "aws_iam_policy_document" "dlq" {
  for_each = var.feeds

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.dlq[each.key].arn]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "dlq" {
  for_each  = var.feeds
  queue_url = aws_sqs_queue.dlq[each.key].id
  policy    = data.aws_iam_policy_document.dlq[each.key].json
}

resource "aws_s3_bucket_notification" "lake" {
  bucket = aws_s3_bucket.lake.id

  dynamic "queue" {
    for_each = var.feeds
    content {
      id            = "landing-${queue.key}"
      queue_arn     = aws_sqs_queue.feed[queue.key].arn
      events        = ["s3:ObjectCreated:*"]
      filter_prefix = "landing/${queue.value.prefix}/"
    }
  }

  # S3 sends a test message when the configuration is saved: the queue policies must allow it.
  depends_on = [aws_sqs_queue_policy.feed]
}
