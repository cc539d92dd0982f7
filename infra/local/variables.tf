variable "nodes" {
  description = "Spark workers (processes on this machine)."
  type        = number
  validation {
    condition     = var.nodes >= 0 && floor(var.nodes) == var.nodes
    error_message = "The nodes variable must be a whole number >= 0."
  }
}

variable "spark_home" {
  description = "A Spark installation (pyspark's package folder will do: it has sbin/spark-daemon.sh)."
  type        = string
}

variable "run_dir" {
  description = "Where the daemons keep logs, pid files and work folders (the cluster's state folder)."
  type        = string
}

variable "bind_host" {
  description = "The address master and workers listen on."
  type        = string
  default     = "127.0.0.1"
}

variable "master_port" {
  type    = number
  default = 7077
}

variable "master_webui_port" {
  type    = number
  default = 8080
}

variable "cores_per_node" {
  description = "Cores each worker offers."
  type        = number
  default     = 1
}

variable "worker_memory" {
  description = "Memory each worker offers (Spark's notation, e.g. 1g)."
  type        = string
  default     = "1g"
}

variable "ready_timeout_s" {
  description = "How long a start waits for the master to lead or a worker to register."
  type        = number
  default     = 90
}

variable "slurm" {
  description = "Also run Slurm nodes (one per worker) on this machine."
  type        = bool
  default     = true
}

variable "python" {
  description = "The Python with bluewhale installed (starts and stops the local Slurm)."
  type        = string
}
