# bluewhale in a container: the same `make setup` CI runs, then `make run` by default.
#   docker build -t bluewhale .
#   docker run --rm -e MLFLOW_TRACKING_URI=http://mlflow:5000 bluewhale         # the default experiment
#   docker run --rm bluewhale make run ARGS="experiment=dien_amazon"             # any bluewhale overrides
# No passwords or keys are baked in: MLflow, SigOpt and cloud credentials come from the environment at
# `docker run -e ...` time (e.g. -e MLFLOW_TRACKING_URI, -e SIGOPT_API_TOKEN).
FROM python:3.11-slim-bookworm

# Java 17 for the Spark engine; make and git for setup; Slurm clients so the image can submit to a cluster.
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends openjdk-17-jre-headless make git slurm-client munge procps \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 bluewhale
WORKDIR /opt/bluewhale
COPY --chown=bluewhale:bluewhale . .
USER bluewhale
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN make setup

ENV PATH=/opt/bluewhale/.venv/bin:$PATH
CMD ["make", "run"]
