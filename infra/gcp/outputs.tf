output "head_address" {
  description = "The head node's public address."
  value       = google_compute_instance.head.network_interface[0].access_config[0].nat_ip
}

output "spark_master" {
  value = "spark://${google_compute_instance.head.network_interface[0].network_ip}:7077"
}

output "nodes" {
  description = "Slurm's worker node names (powered up on demand)."
  value       = [for i in range(1, var.max_nodes + 1) : "${var.name}-w${i}"]
}

output "worker_group" {
  value = google_compute_instance_group_manager.workers.name
}
