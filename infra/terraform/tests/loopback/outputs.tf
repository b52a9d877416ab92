output "bucket_names" {
  description = "Bucket names by purpose, for the test's boto3 checks."
  value       = module.storage.bucket_names
}

output "kms_key_arn" {
  description = "ARN of the storage KMS key."
  value       = module.storage.kms_key_arn
}

output "pipeline_role_name" {
  description = "Name of the pipeline role."
  value       = module.iam.pipeline_role_name
}

output "serving_role_name" {
  description = "Name of the serving role."
  value       = module.iam.serving_role_name
}

output "policy_arns" {
  description = "Managed policy ARNs by role."
  value       = module.iam.policy_arns
}

output "ecr_repository_name" {
  description = "Name of the ECR repository."
  value       = module.ecr.repository_name
}
