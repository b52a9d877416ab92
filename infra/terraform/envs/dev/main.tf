# LesionOps dev: buckets, ECR, IAM roles and (when enable_eks) an EKS cluster with GPU nodes.
# Credentials, profile and endpoints come from the standard AWS environment/config, never from here.

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Project     = "lesionops"
      Environment = local.environment
      ManagedBy   = "terraform"
    })
  }
}

locals {
  environment = "dev"
  # dev: short undo windows and cheap cleanup; nothing here is the system of record.
  noncurrent_version_expiration_days = 14
  artifacts_transition_days          = null
  kms_deletion_window_days           = 7
  ecr_keep_images                    = 10
  eks_log_retention_days             = 365
  eks_cpu_node_count                 = { min = 1, desired = 2, max = 3 }
  # MLflow writes under this prefix of the artifacts bucket; the serving role may read only there.
  mlflow_prefix = "mlflow"
  kfp_prefix    = "pipeline-root"
}

module "storage" {
  source = "../../modules/storage"

  name_prefix                        = var.name_prefix
  environment                        = local.environment
  noncurrent_version_expiration_days = local.noncurrent_version_expiration_days
  artifacts_transition_days          = local.artifacts_transition_days
  kms_deletion_window_days           = local.kms_deletion_window_days
  access_log_bucket                  = var.access_log_bucket
}

module "ecr" {
  source = "../../modules/ecr"

  repository_name = "${var.name_prefix}-${local.environment}/lesionops"
  keep_images     = local.ecr_keep_images
}

module "eks" {
  source = "../../modules/eks"
  count  = var.enable_eks ? 1 : 0

  cluster_name           = "${var.name_prefix}-${local.environment}"
  kubernetes_version     = var.eks_kubernetes_version
  subnet_ids             = var.eks_subnet_ids
  endpoint_public_access = var.eks_endpoint_public_access
  public_access_cidrs    = var.eks_public_access_cidrs
  admin_principal_arns   = var.eks_admin_principal_arns
  log_retention_days     = local.eks_log_retention_days
  cpu_node_count         = local.eks_cpu_node_count
  gpu_instance_types     = var.eks_gpu_instance_types
  gpu_node_count         = var.eks_gpu_node_count
}

module "iam" {
  source = "../../modules/iam"

  name_prefix               = var.name_prefix
  environment               = local.environment
  data_bucket_arn           = module.storage.bucket_arns["data"]
  artifacts_bucket_arn      = module.storage.bucket_arns["artifacts"]
  dvc_bucket_arn            = module.storage.bucket_arns["dvc"]
  serving_artifacts_prefix  = "${local.mlflow_prefix}/"
  kms_key_arn               = module.storage.kms_key_arn
  ecr_repository_arn        = module.ecr.repository_arn
  use_irsa                  = var.enable_eks
  oidc_provider_arn         = var.enable_eks ? module.eks[0].oidc_provider_arn : null
  pipeline_service_accounts = var.pipeline_service_accounts
  serving_service_accounts  = var.serving_service_accounts
  trusted_principal_arns    = var.trusted_principal_arns
}
