# An autoscaling CPU cluster on AWS: a head node (Slurm controller with cloud scheduling, Spark master)
# and an autoscaling group of workers between min_nodes and max_nodes. Slurm's ResumeProgram raises the
# group's desired capacity when jobs wait; its SuspendProgram terminates idle workers and lowers it.

data "aws_vpc" "default" {
  default = true
}

data "aws_subnets" "default" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default.id]
  }
}

data "aws_ami" "debian" {
  most_recent = true
  owners      = ["136693071363"] # Debian
  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
}

resource "random_bytes" "munge_key" {
  length = 1024
}

locals {
  image_id    = coalesce(var.image_id, data.aws_ami.debian.id)
  node_mem_mb = var.mem_gb * 1024
  bootstrap = {
    name            = var.name
    munge_key_b64   = random_bytes.munge_key.base64
    max_nodes       = var.max_nodes
    cores_per_node  = var.cores_per_node
    node_mem_mb     = local.node_mem_mb
    partition       = var.partition
    suspend_after_s = var.suspend_after_s
    repo_url        = var.repo_url
    repo_ref        = var.repo_ref
  }
  slurm_conf = templatefile("${path.module}/../bootstrap/slurm.conf.tftpl", local.bootstrap)
}

resource "aws_security_group" "cluster" {
  name        = "${var.name}-cluster"
  description = "bluewhale ${var.name}: open inside the cluster and to allowed_cidr only"
  vpc_id      = data.aws_vpc.default.id

  ingress {
    description = "everything between the cluster's nodes"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    self        = true
  }

  ingress {
    description = "ssh from the user"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = [var.allowed_cidr]
  }

  ingress {
    description = "Spark master UI from the user"
    from_port   = 8080
    to_port     = 8080
    protocol    = "tcp"
    cidr_blocks = [var.allowed_cidr]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

# The head node may resize the worker group and look up its instances (ResumeProgram/SuspendProgram).
resource "aws_iam_role" "head" {
  name = "${var.name}-head"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ec2.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy" "head_scaling" {
  name = "${var.name}-scaling"
  role = aws_iam_role.head.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect = "Allow"
      Action = [
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:SetDesiredCapacity",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        "ec2:DescribeInstances",
      ]
      Resource = "*"
    }]
  })
}

resource "aws_iam_instance_profile" "head" {
  name = "${var.name}-head"
  role = aws_iam_role.head.name
}

resource "aws_instance" "head" {
  ami                    = local.image_id
  instance_type          = var.head_instance_type
  subnet_id              = data.aws_subnets.default.ids[0]
  vpc_security_group_ids = [aws_security_group.cluster.id]
  key_name               = var.ssh_key_name
  iam_instance_profile   = aws_iam_instance_profile.head.name
  user_data = templatefile("${path.module}/../bootstrap/head.yaml.tftpl", merge(local.bootstrap, {
    slurm_conf      = local.slurm_conf
    resume_program  = templatefile("${path.module}/scripts/resume.sh.tftpl", { group = "${var.name}-workers", region = var.region })
    suspend_program = templatefile("${path.module}/scripts/suspend.sh.tftpl", { group = "${var.name}-workers", region = var.region })
  }))

  root_block_device {
    volume_size = var.disk_gb
  }

  tags = { Name = "${var.name}-head", "bluewhale:cluster" = var.name, "bluewhale:role" = "head" }
}

resource "aws_launch_template" "worker" {
  name_prefix   = "${var.name}-worker-"
  image_id      = local.image_id
  instance_type = var.instance_type
  key_name      = var.ssh_key_name
  user_data = base64encode(templatefile("${path.module}/../bootstrap/worker.yaml.tftpl", merge(local.bootstrap, {
    slurm_conf   = local.slurm_conf
    head_address = aws_instance.head.private_ip
  })))
  vpc_security_group_ids = [aws_security_group.cluster.id]

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size = var.disk_gb
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-worker", "bluewhale:cluster" = var.name, "bluewhale:role" = "worker" }
  }
}

resource "aws_autoscaling_group" "workers" {
  name                = "${var.name}-workers"
  min_size            = var.min_nodes
  max_size            = var.max_nodes
  desired_capacity    = var.min_nodes
  vpc_zone_identifier = data.aws_subnets.default.ids

  launch_template {
    id      = aws_launch_template.worker.id
    version = "$Latest"
  }

  lifecycle {
    ignore_changes = [desired_capacity] # Slurm's ResumeProgram/SuspendProgram own it after creation
  }
}
