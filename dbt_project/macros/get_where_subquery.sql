{#- The relation a data test reads (dbt's `get_where_subquery`, overridden as dbt documents for custom logic): its
    `where` config as dbt has it and, on an interval run (vars start_date and end_date set, not --full-refresh),
    the interval's partitions of a table partitioned by date: an incremental model (its `partition_by`) or a source
    with `meta: {partition_column: ...}`. The run wrote those partitions only; the others were tested when they
    were written, so a night's tests read its days and not the history. -#}
{% macro get_where_subquery(relation) -%}
    {%- set bounds = [] -%}
    {%- if config.get('where') -%}
        {%- do bounds.append('(' ~ config.get('where') ~ ')') -%}
    {%- endif -%}
    {%- set column = tested_partition_column() -%}
    {%- if column -%}
        {%- do bounds.append(column ~ ' ' ~ interval_between()) -%}
    {%- endif -%}
    {%- if bounds -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ bounds | join(' and ') ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{#- The date partition column of the table the current test is attached to, on an interval run; else none. -#}
{% macro tested_partition_column() -%}
    {%- if not execute or flags.FULL_REFRESH or not has_interval() -%}
        {%- do return(none) -%}
    {%- endif -%}
    {#- a model's test names the model it is attached to; a source's test depends on its source alone -#}
    {%- set tested = model.attached_node or model.depends_on.nodes[0] -%}
    {%- if tested in graph.sources -%}
        {%- do return(graph.sources[tested].meta.get('partition_column')) -%}
    {%- endif -%}
    {%- set node = graph.nodes.get(tested) -%}
    {%- if node and node.config.materialized == 'incremental' and node.config.partition_by -%}
        {%- set partition_by = node.config.partition_by -%}
        {%- do return(partition_by if partition_by is string else partition_by[0]) -%}
    {%- endif -%}
    {%- do return(none) -%}
{%- endmacro %}
