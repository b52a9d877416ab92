output "bucket_names" {
  description = "Bucket names by purpose (data, artifacts, dvc)."
  value       = { for purpose, bucket in aws_s3_bucket.this : purpose => bucket.id }
}

output "bucket_arns" {
  description = "Bucket ARNs by purpose (data, artifacts, dvc), for IAM policies."
  value       = { for purpose, bucket in aws_s3_bucket.this : purpose => bucket.arn }
}

output "bucket_uris" {
  description = "s3:// URIs of the bucket roots by purpose (data, artifacts, dvc)."
  value       = { for purpose, bucket in aws_s3_bucket.this : purpose => "s3://${bucket.id}" }
}

output "kms_key_arn" {
  description = "ARN of the customer-managed KMS key encrypting all three buckets."
  value       = aws_kms_key.storage.arn
}

output "kms_alias_name" {
  description = "Alias of the storage KMS key."
  value       = aws_kms_alias.storage.name
}
