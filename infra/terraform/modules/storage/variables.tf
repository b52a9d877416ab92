variable "name_prefix" {
  type        = string
  description = "Prefix of every bucket name; buckets are named <name_prefix>-<environment>-<purpose>. Must be globally unique in S3, so include an organisation or account marker."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-40 characters of lowercase letters, digits and hyphens, starting and ending with a letter or digit (S3 bucket naming rules)."
  }
}

variable "environment" {
  type        = string
  description = "Environment name (dev, staging, prod); part of bucket and key names."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lowercase letters or digits, starting with a letter."
  }
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days a replaced or deleted object version is kept before S3 expires it (the undo window for raw images, DVC cache entries and MLflow artifacts)."
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number of days, at least 1."
  }
}

variable "abort_incomplete_multipart_days" {
  type        = number
  description = "Days after which S3 aborts incomplete multipart uploads (interrupted large uploads otherwise keep billing)."
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && floor(var.abort_incomplete_multipart_days) == var.abort_incomplete_multipart_days
    error_message = "abort_incomplete_multipart_days must be a whole number of days, at least 1."
  }
}

variable "artifacts_transition_days" {
  type        = number
  description = "Days after which objects in the artifacts bucket (pipeline outputs, old MLflow runs) move to artifacts_transition_storage_class; null keeps them in STANDARD."
  default     = null

  validation {
    condition     = var.artifacts_transition_days == null ? true : var.artifacts_transition_days >= 30
    error_message = "artifacts_transition_days must be null or at least 30 (S3 refuses earlier transitions to the infrequent-access classes)."
  }
}

variable "artifacts_transition_storage_class" {
  type        = string
  description = "Storage class old artifacts move to after artifacts_transition_days."
  default     = "STANDARD_IA"

  validation {
    condition     = contains(["STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"], var.artifacts_transition_storage_class)
    error_message = "artifacts_transition_storage_class must be one of STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR (classes MLflow can still read without a restore)."
  }
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period before the storage KMS key is deleted after a destroy; objects encrypted with it become unreadable afterwards."
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30 (the range KMS accepts)."
  }
}

variable "access_log_bucket" {
  type        = string
  description = "Existing bucket (usually the organisation's central log bucket) that receives S3 server access logs of all three buckets under <prefix>/<bucket>/; null disables server access logging."
  default     = null
}

variable "force_destroy" {
  type        = bool
  description = "Let `terraform destroy` delete non-empty buckets, every object version included. Keep false outside throwaway environments."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module (on top of the provider's default_tags)."
  default     = {}
}
