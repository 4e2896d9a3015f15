{#- Whether this run is given a data interval (vars start_date and end_date; null on a full build). -#}
{% macro has_interval() -%}
    {%- if var('start_date', none) and var('end_date', none) -%}
        {{ return(true) }}
    {%- endif -%}
    {{ return(false) }}
{%- endmacro %}

{#- The data interval of an incremental run, [var start_date - lookback_days, var end_date] (inclusive local
    dates), as the right-hand side of a `between`. -#}
{% macro interval_between(lookback_days=0) -%}
    between date_sub(date'{{ var("start_date") }}', {{ lookback_days }}) and date'{{ var("end_date") }}'
{%- endmacro %}

{#- Restrict an incremental run to its data interval. Renders nothing on a full build (not incremental, or no
    interval given). -#}
{% macro interval_filter(date_column, lookback_days=0) -%}
    {%- if is_incremental() and has_interval() -%}
        where {{ date_column }} {{ interval_between(lookback_days) }}
    {%- endif -%}
{%- endmacro %}

{#- The incremental_predicates of a merge whose unique key fixes `date_column` (a key's rows all have one date):
    the target's rows outside the interval cannot match, so the merge reads the interval's partitions only instead
    of the whole table. None without an interval (a full build does not merge). -#}
{% macro interval_predicates(date_column) -%}
    {%- if has_interval() -%}
        {{ return(['DBT_INTERNAL_DEST.' ~ date_column ~ ' ' ~ interval_between()]) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}
