"""Seldon Core deployment of the churn model: spec (typed inputs), render (objects), apply.

What runs on the cluster (Seldon Core v2, the default):

    Server   <server>        Seldon's "mlserver" ServerConfig with the project's image
                             (the churn runtimes and their dependencies) on the mlserver
                             container; CHURN_* from a ConfigMap and Secret references;
                             resource limits and a non-root security context on every
                             container of the pod (agent and rclone included).
    Model    <model>         the serving bundle (storageUri), scheduled on that Server only
                             (requirement + server name): serving.runtime.ChurnRuntime.
    Model    <model>-drift   the drift model folder (deployment.drift_model.build_drift_model),
                             on the same Server: serving.drift_runtime.DriftRuntime.
    Pipeline <model>-pipeline  steps <model> -> <model>-drift (inputs "<model>.outputs",
                             batched); the output is the churn step's prediction tensors
                             (churn.inference.OUTPUTS, not the emitted feature rows), so
                             the drift step runs off the client's path (asynchronously,
                             over Seldon's Kafka).

Models are downloaded by the agent's rclone through the remote `s3`
(render.rclone_remote), which it reads from the Secret each Model names in
spec.secretName (churn-rclone: env_auth, i.e. IRSA, on EKS; MinIO keys on kind); v1's
storage initializer takes the same remote as RCLONE_CONFIG_S3_* from
graph.envSecretRefName (churn-rclone-env).

The Server sets CHURN_SERVING_EMIT_FEATURES=true (the churn step answers with the
feature rows it scored, which the drift step reads) and CHURN_SERVING_DRIFT_ENABLED=false
(drift is the Pipeline's job there, not the churn runtime's background monitor).
Without a drift model, the Pipeline has the churn step only and the runtime's own
monitor checks drift.

Seldon Core v1 alternative (`seldon_v1_objects`): one SeldonDeployment, protocol v2,
whose single container is the same image running MLServer with the churn runtime
configured from the environment (MLSERVER_MODEL_*), the bundle downloaded by Seldon's
storage initializer to /mnt/models (graph.modelUri), and drift checked in-process.

Facts these objects rely on (read from Seldon Core v2's sources, not guessed):

- the "mlserver" ServerConfig names its containers "mlserver", "agent" and "rclone",
  gives mlserver the port "server-http" (9000) and MLSERVER_MODELS_DIR, and sets no
  command (the image's would run): a Server's podSpec is merged into it container by
  container, by name (fields overridden, lists appended), so the Server here sets the
  mlserver command explicitly and only resources/securityContext on agent and rclone;
- Seldon's agent rewrites each model's model-settings.json keeping only name,
  implementation and a few parameters (uri, version, ...): custom parameters do not
  survive, so runtime options travel as environment variables;
- the agent serves the model-settings.json at the top of the downloaded storageUri.

Everything here is a pure function of a `SeldonDeploymentSpec`, which refuses values
that would deploy something wrong or unsafe (an image without a pinned tag or
"latest", a secret as a plain environment variable, limits below requests, models
that do not fit the server's memory). `apply_manifests` sends the objects with the
kubernetes client (create; on 409 Conflict, replace at the live resourceVersion) and
re-raises API failures as DeploymentError naming the object. Only deployment.seldon.apply
needs the kubernetes client, and it imports it when called.
"""
