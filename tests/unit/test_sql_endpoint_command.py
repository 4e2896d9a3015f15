"""The SQL endpoint's command line (pure) and the one-line reasons taken from Spark's error messages."""

from __future__ import annotations

import pytest

from featurelake.services.thrift import _CONVERT, MAIN_CLASS, first_line, jdbc_url, thrift_server
from featurelake.spark import spark_conf


def test_the_server_is_spark_submit_of_the_thrift_server_on_loopback_with_the_drivers_settings(settings):
    port = settings.services.thrift.port
    cmd = thrift_server(settings).command(settings)
    assert cmd[cmd.index("--class") + 1 : cmd.index("--class") + 3] == [MAIN_CLASS, "spark-internal"]
    hiveconf = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--hiveconf"]
    assert hiveconf == [
        "hive.server2.thrift.bind.host=127.0.0.1",
        f"hive.server2.thrift.port={port}",
        "hive.server2.transport.mode=binary",
    ]
    conf = dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "--conf")
    base = spark_conf(settings)
    for key in ("spark.sql.warehouse.dir", "spark.hadoop.javax.jdo.option.ConnectionURL", "spark.sql.session.timeZone"):
        assert conf[key] == base[key]  # the catalog and warehouse every featurelake driver uses
    assert conf["spark.driver.memory"] == settings.services.thrift.driver_memory
    assert jdbc_url(settings) == f"jdbc:hive2://127.0.0.1:{port}/default"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "Error running query: [TABLE_OR_VIEW_NOT_FOUND] org.apache.spark.sql.AnalysisException: "
            "[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope` cannot be found. SQLSTATE: 42P01; line 1 pos 14;\n"
            "'Project [*]\n+- 'UnresolvedRelation [nope], [], false\n",
            "[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope` cannot be found. SQLSTATE: 42P01; line 1 pos 14;",
        ),
        (
            "Error running query: [PARSE_SYNTAX_ERROR] org.apache.spark.sql.catalyst.parser.ParseException: \n"
            "[PARSE_SYNTAX_ERROR] Syntax error at or near 'selec'. SQLSTATE: 42601 (line 1, pos 0)\n\n== SQL ==\n",
            "[PARSE_SYNTAX_ERROR] Syntax error at or near 'selec'. SQLSTATE: 42601 (line 1, pos 0)",
        ),
        ("[DIVIDE_BY_ZERO] Division by zero.", "[DIVIDE_BY_ZERO] Division by zero."),
    ],
)
def test_first_line_is_the_reason(message, reason):
    assert first_line(message) == reason


def test_a_map_the_server_sends_as_json_is_a_dict_and_one_it_cannot_is_its_text():
    """DESCRIBE HISTORY's operationParameters, as the Thrift server sent it in a run: quotes inside a value are not
    escaped, so it is not JSON; `featurelake sql "describe history ..."` must still print it."""
    sent = '{"mode":"Overwrite","partitionBy":"["event_date"]","predicate":"`event_date` >= \'2013-01-01\'"}'
    assert _CONVERT["MAP_TYPE"](sent) == sent
    assert _CONVERT["MAP_TYPE"]('{"a":"1","b":null}') == {"a": "1", "b": None}
    assert _CONVERT["ARRAY_TYPE"]("[1,2]") == [1, 2]
    assert _CONVERT["STRUCT_TYPE"]('{"x":1}').x == 1
