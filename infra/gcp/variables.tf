variable "name" {
  description = "The cluster's name: prefix of every resource and the Slurm cluster name."
  type        = string
}

variable "project" {
  description = "The GCP project id."
  type        = string
}

variable "region" {
  type = string
}

variable "zone" {
  type = string
}

variable "machine_type" {
  description = "Workers' machine type."
  type        = string
}

variable "head_machine_type" {
  description = "The head node's machine type (Slurm controller, Spark master)."
  type        = string
}

variable "cores_per_node" {
  type = number
}

variable "mem_gb" {
  description = "Memory of a worker that jobs may use, in GB."
  type        = number
}

variable "min_nodes" {
  description = "Workers kept running when the queue is empty (the autoscaler's floor between jobs)."
  type        = number
  validation {
    condition     = var.min_nodes >= 0
    error_message = "The min_nodes variable must be >= 0."
  }
}

variable "max_nodes" {
  description = "Workers at most (Slurm's cloud node names and the autoscaler's ceiling)."
  type        = number
  validation {
    condition     = var.max_nodes >= 1
    error_message = "The max_nodes variable must be >= 1."
  }
}

variable "disk_gb" {
  type    = number
  default = 100
}

variable "image" {
  type    = string
  default = "debian-cloud/debian-12"
}

variable "allowed_cidr" {
  description = "The only address outside the cluster let in (ssh, Spark UI), e.g. your IP/32."
  type        = string
  validation {
    condition     = can(cidrhost(var.allowed_cidr, 0))
    error_message = "The allowed_cidr variable must be a CIDR block, e.g. 198.51.100.7/32."
  }
}

variable "partition" {
  type    = string
  default = "cpu"
}

variable "suspend_after_s" {
  type    = number
  default = 600
}

variable "repo_url" {
  description = "The git URL nodes clone bluewhale from (your repository or a mirror the nodes can reach)."
  type        = string
}

variable "repo_ref" {
  type    = string
  default = "main"
}
