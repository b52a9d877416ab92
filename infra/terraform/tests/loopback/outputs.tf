output "lesionops" {
  description = "Every output of the stack, for the test's boto3 checks (bucket names, role names, policy ARNs, ...)."
  value       = module.lesionops
}
