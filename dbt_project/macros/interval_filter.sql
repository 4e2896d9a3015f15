{#- Restrict an incremental run to the data interval [var start_date - lookback_days, var end_date].
    Renders nothing on a full build (not incremental, or no interval given). -#}
{% macro interval_filter(date_column, lookback_days=0) -%}
    {%- if is_incremental() and var('start_date', none) and var('end_date', none) -%}
        where {{ date_column }} between date_sub(date'{{ var("start_date") }}', {{ lookback_days }}) and date'{{ var("end_date") }}'
    {%- endif -%}
{%- endmacro %}
