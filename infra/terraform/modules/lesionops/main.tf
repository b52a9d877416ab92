# The whole LesionOps stack of one environment: buckets + their KMS key, the ECR repository, the pipeline and
# serving roles and, when enable_eks, an EKS cluster whose service accounts those roles trust through IRSA.
# Roots (envs/*, tests/loopback) configure the provider and choose the environment's values; the wiring
# between the parts lives only here, so every environment gets the same least-privilege links.

locals {
  name = "${var.name_prefix}-${var.environment}"
  # MLflow writes under this prefix of the artifacts bucket; the serving role may read only there.
  mlflow_prefix        = "mlflow"
  mlflow_artifact_root = "${module.storage.bucket_uris["artifacts"]}/${local.mlflow_prefix}"
  kfp_pipeline_root    = "${module.storage.bucket_uris["artifacts"]}/pipeline-root"
  raw_data_uri         = "${module.storage.bucket_uris["data"]}/raw"
}

data "aws_region" "current" {}

module "storage" {
  source = "../storage"

  name_prefix                        = var.name_prefix
  environment                        = var.environment
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  abort_incomplete_multipart_days    = var.abort_incomplete_multipart_days
  artifacts_transition_days          = var.artifacts_transition_days
  kms_deletion_window_days           = var.kms_deletion_window_days
  access_log_bucket                  = var.access_log_bucket
  force_destroy                      = var.force_destroy
}

module "ecr" {
  source = "../ecr"

  repository_name = "${local.name}/lesionops"
  keep_images     = var.ecr_keep_images
  force_delete    = var.force_destroy
}

module "eks" {
  source = "../eks"
  count  = var.enable_eks ? 1 : 0

  cluster_name           = local.name
  kubernetes_version     = var.eks_kubernetes_version
  subnet_ids             = var.eks_subnet_ids
  endpoint_public_access = var.eks_endpoint_public_access
  public_access_cidrs    = var.eks_public_access_cidrs
  admin_principal_arns   = var.eks_admin_principal_arns
  log_retention_days     = var.eks_log_retention_days
  cpu_node_count         = var.eks_cpu_node_count
  gpu_instance_types     = var.eks_gpu_instance_types
  gpu_node_count         = var.eks_gpu_node_count
}

module "iam" {
  source = "../iam"

  name_prefix               = var.name_prefix
  environment               = var.environment
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
