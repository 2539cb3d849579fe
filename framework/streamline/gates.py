"""Gates: queries inside a SQL step's transaction that decide whether the step may commit.

A gate is a query whose result has the columns GATE_COLUMNS, one row per check:

    STREAMLINE_CHECK  the check's name, e.g. accepted_values__status or rejected_rows
    SEVERITY          error (a failure blocks: the step rolls back and fails) or warn (logged)
    PASSED            TRUE or FALSE
    FAILING_ROWS      how many rows fail it
    DETAIL            what a person needs to find them: file, row, column, value

The SQL steps run through GatedSQLExecuteQueryOperator, the common.sql provider's operator with a
handler that reads every statement's rows (they become the task's XCom, as before) and, for a
gate, rolls the open transaction back and fails the task when an error-severity check failed.
The hook calls the handler after each statement, on the statement's cursor:
https://airflow.apache.org/docs/apache-airflow-providers-common-sql/stable/_api/airflow/providers/common/sql/hooks/sql/index.html
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

from streamline.lineage import LineageMixin, snowflake_namespace

log = logging.getLogger(__name__)

GATE_COLUMNS = ("STREAMLINE_CHECK", "SEVERITY", "PASSED", "FAILING_ROWS", "DETAIL")
SEVERITIES = ("error", "warn")


@dataclass(frozen=True)
class CheckResult:
    """One row of a gate."""

    name: str
    severity: str
    passed: bool
    failing_rows: int
    detail: str | None = None

    def describe(self) -> str:
        rows = f"{self.failing_rows} row{'s' if self.failing_rows != 1 else ''}"
        return f"{self.name}: {rows}" + (f" ({self.detail})" if self.detail else "")


class GateFailed(Exception):
    """An error-severity check of a gate failed; the step's transaction was rolled back.

    results holds every check of the gate, failed the error-severity ones that failed."""

    def __init__(self, results: Sequence[CheckResult]) -> None:
        self.results = tuple(results)
        self.failed = tuple(r for r in results if not r.passed and r.severity == "error")
        names = "; ".join(result.describe() for result in self.failed)
        count = len(self.failed)
        super().__init__(f"{count} check{'s' if count != 1 else ''} failed: {names}")


def gate_results(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[CheckResult] | None:
    """The checks of a gate's result (names: its column names), or None for any other result."""
    if tuple(name.upper() for name in names) != GATE_COLUMNS:
        return None
    return [
        CheckResult(str(name), str(severity).lower(), bool(passed), int(failing or 0), detail)
        for name, severity, passed, failing, detail in rows
    ]


def gated_fetch_all(cursor: Any) -> list[tuple[Any, ...]] | None:
    """The statement's rows (the hook's fetch_all_handler), after judging a gate.

    Raises GateFailed after a ROLLBACK when an error-severity check of a gate failed.
    """
    if cursor.description is None:
        return None
    rows: list[tuple[Any, ...]] = cursor.fetchall()
    results = gate_results([column[0] for column in cursor.description], rows)
    if results is None:
        return rows
    for result in results:
        if not result.passed and result.severity == "warn":
            log.warning("check failed (warn, publishing anyway): %s", result.describe())
    failed = GateFailed(results)
    if failed.failed:
        cursor.execute("ROLLBACK")
        raise failed
    return rows


def _is_gate_row(item: Sequence[Any]) -> bool:
    return (
        len(item) == len(GATE_COLUMNS)
        and isinstance(item[0], str)
        and str(item[1]).lower() in SEVERITIES
        and isinstance(item[2], bool)
    )


def checks_in(value: Any) -> list[CheckResult]:
    """Every gate row in a SQL step's XCom (its statements' rows), in order."""
    from streamline.lake import step_rows

    return gate_results(GATE_COLUMNS, step_rows(value, _is_gate_row)) or []


XCOM_CHECKS = "checks"
"""XCom key under which a step whose gate failed keeps that gate's checks (for the ledger)."""


class GatedSQLExecuteQueryOperator(LineageMixin, SQLExecuteQueryOperator):
    """SQLExecuteQueryOperator whose statements may be gates (see the module).

    A failed gate fails the task without retries (AirflowFailException: the data will not change
    by trying again), after pushing the gate's checks to XCom under XCOM_CHECKS. It reports the
    step's lineage (`lineage`, streamline.lineage) instead of the SQL parser's guess from its
    statements.
    """

    template_fields = (*SQLExecuteQueryOperator.template_fields, "lineage")

    def __init__(self, *, lineage: dict[str, Any] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("handler", gated_fetch_all)
        super().__init__(**kwargs)
        self.lineage = lineage

    def snowflake_namespace(self) -> str | None:
        return snowflake_namespace(self.get_db_hook().get_connection(self.conn_id))

    def execute(self, context: Any) -> Any:
        self.remember_batch(context)
        try:
            result = super().execute(context)  # type: ignore[no-untyped-call]
            self.remember_copied(result)
            return result
        except GateFailed as failed:
            context["ti"].xcom_push(key=XCOM_CHECKS, value=[asdict(r) for r in failed.results])
            from streamline.tasks import _fail

            raise _fail(str(failed)) from None
