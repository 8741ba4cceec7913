"""The data layer: raw sources, the data contract and the offline store.

- telco: load and clean the IBM Telco CSV (path, or URL verified by sha256);
- synthetic: a seeded, vectorised generator with the same schema and monthly snapshots;
- timestamps: how untimed data gets event and label timestamps;
- contract: the pandera contract built from churn.schema, with readable failures;
- offline: validated, idempotent, atomic writes of the parquet tables Feast reads;
- outcomes: realized churn that arrives after a snapshot, checked against the offline
  store and the prediction log before it joins the labels table.

Submodules are imported explicitly (``from churn.data.telco import load_telco``) so
that importing the package stays cheap: pandera is only loaded by code that validates.
"""
