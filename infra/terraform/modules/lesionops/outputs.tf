# Everything LesionOps and its operators need from an environment; roots pass these through.

output "region" {
  description = "Region everything lives in (AWS_REGION for LesionOps, DVC and MLflow)."
  value       = data.aws_region.current.name
}

output "bucket_names" {
  description = "Bucket names by purpose (data, artifacts, dvc)."
  value       = module.storage.bucket_names
}

output "bucket_uris" {
  description = "s3:// URIs of the buckets by purpose (data, artifacts, dvc)."
  value       = module.storage.bucket_uris
}

output "raw_data_uri" {
  description = "Where raw labelImg images and annotations go; an s3:// source for `lesionops ingest`."
  value       = "${local.raw_data_uri}/"
}

output "mlflow_artifact_root" {
  description = "MLflow artifact root: params.yaml mlflow.artifact_root, or `mlflow server --default-artifact-root`."
  value       = local.mlflow_artifact_root
}

output "kfp_pipeline_root" {
  description = "Kubeflow Pipelines root for step outputs: params.yaml kubeflow.pipeline_root (the pipeline_root of every Kubeflow run)."
  value       = local.kfp_pipeline_root
}

output "dvc_remote_url" {
  description = "DVC remote URL: `dvc remote add -d s3 <this>`."
  value       = "${module.storage.bucket_uris["dvc"]}/"
}

output "kms_key_arn" {
  description = "KMS key encrypting the buckets (needed by anyone granting extra access to them)."
  value       = module.storage.kms_key_arn
}

output "pipeline_role_arn" {
  description = "Role of pipeline steps (read data, read/write artifacts + DVC, ECR pull); the eks.amazonaws.com/role-arn annotation of the pipeline service account."
  value       = module.iam.pipeline_role_arn
}

output "serving_role_arn" {
  description = "Role of the serving app (read MLflow model artifacts only); the eks.amazonaws.com/role-arn annotation of the serving service account."
  value       = module.iam.serving_role_arn
}

output "role_names" {
  description = "Names of the pipeline and serving roles (for `aws iam` and `aws sts assume-role` lookups)."
  value       = { pipeline = module.iam.pipeline_role_name, serving = module.iam.serving_role_name }
}

output "policy_arns" {
  description = "Managed policy attached to each role, by role (pipeline, serving)."
  value       = module.iam.policy_arns
}

output "ecr_repository_url" {
  description = "Where to push the LesionOps image: docker tag lesionops:<version> <this>:<version>."
  value       = module.ecr.repository_url
}

output "ecr_repository_name" {
  description = "Name of the ECR repository (aws ecr describe-images --repository-name <this>)."
  value       = module.ecr.repository_name
}

output "eks_cluster_name" {
  description = "EKS cluster name for `aws eks update-kubeconfig --name`; null when enable_eks is false."
  value       = var.enable_eks ? module.eks[0].cluster_name : null
}

output "eks_oidc_provider_arn" {
  description = "IRSA OIDC provider of the EKS cluster; null when enable_eks is false."
  value       = var.enable_eks ? module.eks[0].oidc_provider_arn : null
}

output "eks_gpu_node_taint" {
  description = "Taint on the GPU nodes that training pods must tolerate (key=value:effect); null when enable_eks is false."
  value       = var.enable_eks ? module.eks[0].gpu_node_taint : null
}

output "lesionops_params" {
  description = "params.yaml values pointing LesionOps at this environment (merge into the mlflow and kubeflow sections)."
  value = {
    mlflow = { artifact_root = local.mlflow_artifact_root }
    kubeflow = {
      pipeline_root    = local.kfp_pipeline_root
      source_uri       = local.raw_data_uri
      image_repository = module.ecr.repository_url
    }
  }
}
