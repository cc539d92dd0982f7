output "head_address" {
  description = "The head node's public address (ssh, `bluewhale cluster=...` from there)."
  value       = aws_instance.head.public_ip
}

output "spark_master" {
  value = "spark://${aws_instance.head.private_ip}:7077"
}

output "nodes" {
  description = "Slurm's worker node names (powered up on demand)."
  value       = [for i in range(1, var.max_nodes + 1) : "${var.name}-w${i}"]
}

output "worker_group" {
  value = aws_autoscaling_group.workers.name
}
