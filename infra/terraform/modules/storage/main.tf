# Buckets for LesionOps: raw images (data), pipeline + MLflow artifacts (artifacts) and the DVC remote (dvc).
# All three share one customer-managed KMS key so that the IAM module can grant kms:Decrypt on exactly one key.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  purposes = {
    data      = "raw labelImg images and annotations"
    artifacts = "KFP pipeline root and MLflow artifacts"
    dvc       = "DVC remote (content-addressed cache)"
  }
  bucket_names = { for purpose in keys(local.purposes) : purpose => "${var.name_prefix}-${var.environment}-${purpose}" }
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
}

resource "aws_kms_key" "storage" {
  description             = "LesionOps ${var.environment}: SSE-KMS for the data, artifacts and DVC buckets"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  # The account root statement delegates use of the key to IAM policies (the IAM module grants it per role);
  # without it nobody, the account included, could manage the key.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministersKeyThroughIam"
      Effect    = "Allow"
      Principal = { AWS = local.account_root }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
  tags = var.tags
}

resource "aws_kms_alias" "storage" {
  name          = "alias/${var.name_prefix}-${var.environment}-storage"
  target_key_id = aws_kms_key.storage.key_id
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles the footprint of patient images and needs a second region's data-residency approval; versioning + KMS cover recovery. Enable per deployment when approved.
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications: pipelines are started by `lesionops monitor`/KFP schedules and DVC, not by object events.
  for_each = local.bucket_names

  bucket        = each.value
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { Name = each.value, Purpose = local.purposes[each.key] })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.storage.arn
    }
    # S3 bucket keys cut KMS requests (and cost) by ~99% for the many small files DVC and MLflow write.
    bucket_key_enabled = true
  }
}

data "aws_iam_policy_document" "tls_only" {
  for_each = aws_s3_bucket.this

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  policy = data.aws_iam_policy_document.tls_only[each.key].json
  # S3 rejects concurrent changes to one bucket's configuration; the public access block goes first.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  dynamic "rule" {
    for_each = each.key == "artifacts" && var.artifacts_transition_days != null ? [var.artifacts_transition_days] : []
    content {
      id     = "transition-old-artifacts"
      status = "Enabled"
      filter {}

      transition {
        days          = rule.value
        storage_class = var.artifacts_transition_storage_class
      }
    }
  }

  # Noncurrent-version rules only make sense once versioning is on.
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_logging" "this" {
  for_each = var.access_log_bucket == null ? {} : aws_s3_bucket.this

  bucket        = each.value.id
  target_bucket = var.access_log_bucket
  target_prefix = "s3/${each.value.id}/"
}
