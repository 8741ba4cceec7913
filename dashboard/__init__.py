"""Streamlit dashboard of churn-mlops: `app.py` is the page, `data.py` its testable logic."""
