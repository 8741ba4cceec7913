# syntax=docker/dockerfile:1
# The base both images build FROM (PYTHON_IMAGE) when the official Python image is
# used: python:slim lacks libgomp1, which LightGBM's wheel links (XGBoost and
# scikit-learn carry their own copies). The image builds themselves run offline
# (--network none), so this small step, with the network, comes first:
# `make images` does it (deployment.containers.python_image), and so does cd.yml.
# Where the official image cannot be pulled, the debootstrapped stand-in
# (localhost/churn-python:3.11-bookworm-2) already carries libgomp1.
ARG OFFICIAL=python:3.11.15-slim-bookworm
FROM ${OFFICIAL}
# The bookworm security channel replaces package versions, so libgomp1 is not pinned
# (the Python base itself is pinned by tag).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
