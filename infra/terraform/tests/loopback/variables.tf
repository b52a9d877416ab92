variable "region" {
  type        = string
  description = "Region the emulator pretends to be in."
  default     = "us-east-1"
}

variable "name_prefix" {
  type        = string
  description = "Prefix of the throwaway bucket, role and repository names (the test makes it unique per run)."
}

variable "s3_use_path_style" {
  type        = bool
  description = "Address buckets as http://endpoint/bucket. Not needed for an emulator on a bare IP such as 127.0.0.1 (the SDK falls back to path style there); needed for one reached by host name (localhost, minio:9000)."
  default     = false
}
