"""Feast's Kubernetes materialization worker, where Feast's Job runs it.

Feast 0.49's k8s batch engine starts pods of the configured image with the command
`python main.py` in the image's working directory and mounts the job's
feature_store.yaml and materialization_config.yaml at /var/feast/. The steps image
copies this file to /app/main.py: it runs Feast's own worker module unchanged (reads
part JOB_COMPLETION_INDEX of the staged parquet parts and writes it to the online
store), with the project on PYTHONPATH for the offline store class the yaml names.
"""

import runpy

runpy.run_module("feast.infra.materialization.kubernetes.main", run_name="__main__")
