# Optional role for edge hosts (the event generator, or the systems that emit the CSV records):
# it may put records into the streams of the feeds in edge_feeds (every feed by default) and
# nothing else. A host that emits one feed's records gets a role that cannot write another's.

data "aws_iam_policy_document" "edge_assume" {
  count = var.create_edge_role ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [var.edge_role_trusted_service]
    }
  }
}

resource "aws_iam_role" "edge" {
  count              = var.create_edge_role ? 1 : 0
  name               = "${var.name}-edge"
  description        = "StreamLine edge hosts: put records into the streams of ${join(", ", local.edge_feeds)} only"
  assume_role_policy = data.aws_iam_policy_document.edge_assume[0].json
}

data "aws_iam_policy_document" "edge" {
  statement {
    sid       = "PutRecordsIntoEdgeFeedStreams"
    actions   = ["firehose:PutRecord", "firehose:PutRecordBatch"]
    resources = [for feed in local.edge_feeds : aws_kinesis_firehose_delivery_stream.feed[feed].arn]
  }
}

resource "aws_iam_role_policy" "edge" {
  count  = var.create_edge_role ? 1 : 0
  name   = "put-records"
  role   = aws_iam_role.edge[0].id
  policy = data.aws_iam_policy_document.edge.json
}

resource "aws_iam_instance_profile" "edge" {
  count = var.create_edge_role && var.edge_role_trusted_service == "ec2.amazonaws.com" ? 1 : 0
  name  = "${var.name}-edge"
  role  = aws_iam_role.edge[0].name
}
