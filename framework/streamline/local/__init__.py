"""The embedded stack: moto for AWS, fakesnow for Snowflake, real Airflow, all on 127.0.0.1."""
