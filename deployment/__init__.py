"""Deployment: getting a champion served, locally or on Kubernetes.

Apart from serving (what runs inside MLServer), so that the inference server never
carries the builders and the cluster client, and ZenML steps can deploy without
importing MLServer:

- deployment.bundle: build a serving bundle from a saved model (+ drift detector);
- deployment.drift_model: the drift model's folder for Seldon Core v2 Pipelines;
- deployment.local_server: start, reload and stop the project's local MLServer;
- deployment.seldon: Seldon Core spec, rendered objects and applying them;
- deployment.deploy: the entry points the deployment pipeline's steps wrap.
"""
