output "pipeline_role_arn" {
  description = "ARN of the pipeline role (annotate the KFP service account with eks.amazonaws.com/role-arn, or assume it from CI)."
  value       = aws_iam_role.this["pipeline"].arn
}

output "pipeline_role_name" {
  description = "Name of the pipeline role."
  value       = aws_iam_role.this["pipeline"].name
}

output "serving_role_arn" {
  description = "ARN of the serving role (annotate the serving service account with eks.amazonaws.com/role-arn)."
  value       = aws_iam_role.this["serving"].arn
}

output "serving_role_name" {
  description = "Name of the serving role."
  value       = aws_iam_role.this["serving"].name
}

output "policy_arns" {
  description = "ARNs of the managed policies attached to the roles, by role (pipeline, serving)."
  value       = { for role, policy in aws_iam_policy.this : role => policy.arn }
}
