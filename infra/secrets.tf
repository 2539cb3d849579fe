# The warehouse connections the DAGs use (each spec's dag.snowflake_conn_id), as Secrets Manager
# secrets under airflow/connections/, encrypted with the StreamLine key. Terraform creates them
# empty; the operator puts the connection JSON (README, step 4), so no credential is in state.

resource "aws_secretsmanager_secret" "connection" {
  #checkov:skip=CKV2_AWS_57:The value is a Snowflake key-pair connection rotated in Snowflake (ALTER USER ... SET RSA_PUBLIC_KEY_2) by the operator; there is no rotation Lambda for it.
  for_each                = local.snowflake_conn_ids
  name                    = "${local.secret_prefix}/${each.value}"
  description             = "Airflow connection ${each.value} of StreamLine (set the value out of band)"
  kms_key_id              = aws_kms_key.streamline.arn
  recovery_window_in_days = 7
}

# Airflow Variables of the DAGs (the lake bucket), read through the same secrets backend under
# airflow/variables/. Deployment facts, not credentials: Terraform sets their values.
resource "aws_secretsmanager_secret" "variable" {
  #checkov:skip=CKV2_AWS_57:Not a credential: the lake bucket's name, set and changed by Terraform; nothing to rotate.
  for_each                = local.airflow_variables
  name                    = "${local.variable_prefix}/${each.key}"
  description             = "Airflow Variable ${each.key} of StreamLine"
  kms_key_id              = aws_kms_key.streamline.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "variable" {
  for_each      = local.airflow_variables
  secret_id     = aws_secretsmanager_secret.variable[each.key].id
  secret_string = each.value
}
