variable "repository_name" {
  type        = string
  description = "Name of the ECR repository holding the LesionOps component/serving image (tags come from the package version, never latest)."

  validation {
    condition     = can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", var.repository_name)) && length(var.repository_name) <= 256
    error_message = "repository_name must be lowercase letters, digits and . _ - / separators (ECR naming rules), at most 256 characters."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "Customer-managed KMS key for image encryption; null uses the AWS-managed aws/ecr key (KMS either way). A customer key must allow ECR to create grants."
  default     = null
}

variable "keep_images" {
  type        = number
  description = "How many images the lifecycle policy keeps; older ones are expired (images are immutable, so every release is a new image)."
  default     = 30

  validation {
    condition     = var.keep_images >= 1 && var.keep_images <= 1000 && floor(var.keep_images) == var.keep_images
    error_message = "keep_images must be a whole number between 1 and 1000."
  }
}

variable "untagged_expire_days" {
  type        = number
  description = "Days after which untagged images (failed or superseded pushes) are expired."
  default     = 7

  validation {
    condition     = var.untagged_expire_days >= 1 && floor(var.untagged_expire_days) == var.untagged_expire_days
    error_message = "untagged_expire_days must be a whole number of days, at least 1."
  }
}

variable "force_delete" {
  type        = bool
  description = "Let `terraform destroy` delete the repository while it still holds images. Keep false outside throwaway environments."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module (on top of the provider's default_tags)."
  default     = {}
}
