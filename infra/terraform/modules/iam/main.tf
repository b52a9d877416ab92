# Two least-privilege roles: the pipeline (KFP steps, DVC) and serving (the FastAPI app loading MLflow models).
# Every S3 statement names the bucket ARNs; the only "*" resource is ecr:GetAuthorizationToken, which
# AWS does not allow to be scoped to a repository.

locals {
  roles = {
    pipeline = {
      description      = "LesionOps ${var.environment} pipeline: read raw data, read/write artifacts and the DVC remote, pull images"
      service_accounts = var.pipeline_service_accounts
    }
    serving = {
      description      = "LesionOps ${var.environment} serving: read MLflow model artifacts only"
      service_accounts = var.serving_service_accounts
    }
  }
  # The issuer host/path, as IAM condition keys spell it: oidc.eks.REGION.amazonaws.com/id/ID
  oidc_issuer = var.oidc_provider_arn == null ? "" : regex(":oidc-provider/(.+)$", var.oidc_provider_arn)[0]
  # KMS is only usable through S3 in the key's own region (arn:aws:kms:REGION:ACCOUNT:key/ID).
  kms_via_s3 = "s3.${split(":", var.kms_key_arn)[3]}.amazonaws.com"
}

data "aws_iam_policy_document" "trust" {
  for_each = local.roles

  dynamic "statement" {
    for_each = var.use_irsa ? [each.value.service_accounts] : []
    content {
      sid     = "EksServiceAccounts"
      effect  = "Allow"
      actions = ["sts:AssumeRoleWithWebIdentity"]

      principals {
        type        = "Federated"
        identifiers = [var.oidc_provider_arn]
      }

      condition {
        test     = "StringEquals"
        variable = "${local.oidc_issuer}:aud"
        values   = ["sts.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "${local.oidc_issuer}:sub"
        values   = [for sa in statement.value : "system:serviceaccount:${sa}"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.use_irsa ? [] : [var.trusted_principal_arns]
    content {
      sid     = "TrustedPrincipals"
      effect  = "Allow"
      actions = ["sts:AssumeRole"]

      principals {
        type        = "AWS"
        identifiers = statement.value
      }
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.roles

  name                 = "${var.name_prefix}-${var.environment}-${each.key}"
  description          = each.value.description
  assume_role_policy   = data.aws_iam_policy_document.trust[each.key].json
  max_session_duration = var.max_session_duration_s
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags

  lifecycle {
    precondition {
      condition     = var.use_irsa ? var.oidc_provider_arn != null : length(var.trusted_principal_arns) > 0
      error_message = "Nobody could assume the LesionOps roles: set oidc_provider_arn when use_irsa is true (EKS), otherwise list at least one ARN in trusted_principal_arns."
    }
  }
}

data "aws_iam_policy_document" "pipeline" {
  statement {
    sid     = "ListLesionOpsBuckets"
    effect  = "Allow"
    actions = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [
      var.data_bucket_arn,
      var.artifacts_bucket_arn,
      var.dvc_bucket_arn,
    ]
  }

  statement {
    sid       = "ReadRawData"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${var.data_bucket_arn}/*"]
  }

  statement {
    sid    = "ReadWriteArtifactsAndDvcRemote"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${var.artifacts_bucket_arn}/*", "${var.dvc_bucket_arn}/*"]
  }

  statement {
    sid       = "UseStorageKeyThroughS3"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via_s3]
    }
  }

  statement {
    sid       = "EcrLogin"
    effect    = "Allow"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # AWS defines no resource type for this action
  }

  statement {
    sid       = "EcrPull"
    effect    = "Allow"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = [var.ecr_repository_arn]
  }
}

data "aws_iam_policy_document" "serving" {
  statement {
    sid       = "LocateArtifactsBucket"
    effect    = "Allow"
    actions   = ["s3:GetBucketLocation"]
    resources = [var.artifacts_bucket_arn]
  }

  statement {
    sid       = "ListModelArtifacts"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.artifacts_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.serving_artifacts_prefix, "${var.serving_artifacts_prefix}*"]
    }
  }

  statement {
    sid       = "ReadModelArtifacts"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${var.artifacts_bucket_arn}/${var.serving_artifacts_prefix}*"]
  }

  statement {
    sid       = "DecryptThroughS3"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via_s3]
    }
  }
}

resource "aws_iam_policy" "this" {
  for_each = local.roles

  name        = "${var.name_prefix}-${var.environment}-${each.key}"
  description = each.value.description
  policy      = each.key == "pipeline" ? data.aws_iam_policy_document.pipeline.json : data.aws_iam_policy_document.serving.json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each = local.roles

  role       = aws_iam_role.this[each.key].name
  policy_arn = aws_iam_policy.this[each.key].arn
}
